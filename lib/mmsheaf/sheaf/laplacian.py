r"""Sheaf Laplacians as pure tensor functions over an index built once per graph.

`Neural Sheaf Diffusion <https://arxiv.org/abs/2202.04579>`_ (Bodnar et al., NeurIPS 2022) diffuses node
features with the Laplacian of a cellular sheaf on the graph: every node :math:`v` and every edge :math:`e`
carry a stalk :math:`\mathbb{R}^d`, and every incidence :math:`v \trianglelefteq e` a restriction map
:math:`\mathcal{F}_{v \trianglelefteq e} \in \mathbb{R}^{d \times d}`. With the coboundary
:math:`(\delta x)_e = \mathcal{F}_{v \trianglelefteq e} x_v - \mathcal{F}_{u \trianglelefteq e} x_u` for
:math:`e = (u, v)`, the sheaf Laplacian is :math:`L_\mathcal{F} = \delta^\top \delta`, with blocks

.. math::
    L_{vv} = \sum_{v \trianglelefteq e}
    \mathcal{F}_{v \trianglelefteq e}^\top \mathcal{F}_{v \trianglelefteq e},
    \qquad
    L_{uv} = -\mathcal{F}_{u \trianglelefteq e}^\top \mathcal{F}_{v \trianglelefteq e},

and its normalised form is :math:`\Delta_\mathcal{F} = (D + I)^{-1/2} L_\mathcal{F} (D + I)^{-1/2}` with
:math:`D` the block diagonal of :math:`L_\mathcal{F}`. Its quadratic form
:math:`E_\mathcal{F}(x) = x^\top \Delta_\mathcal{F} x` is the sheaf Dirichlet energy.

This module holds the builders: :func:`sheaf_laplacian` (restriction maps -> :class:`SheafLaplacian`, one
builder per map family, three normalisations) and :func:`dirichlet_energy`. The graph's bookkeeping is in
:mod:`mmsheaf.sheaf.index`, the autograd kernels (and what was measured) in :mod:`mmsheaf.sheaf.kernels`,
the dense reference of the tests in :mod:`mmsheaf.sheaf.reference`.

Layout
------
* :math:`\Delta x` is a CSR product (:func:`~mmsheaf.sheaf.kernels.sheaf_spmm`), never a dense matrix;
  building the Laplacian from maps and applying it, forward+backward, takes 23 ms (diag) and 103 ms
  (general) on a squirrel-sized graph (see :mod:`mmsheaf.sheaf.kernels`);
* the normalisation :math:`(D+I)^{-1/2}` scales the features on both sides of the sparse product
  (:math:`N`-sized work) instead of the :math:`E` off-diagonal blocks;
* per-edge algebra runs edge-last ``(d, d, E)``; public functions take and return the documented edge-major
  shapes ``(E, d, d)``; the learners of :mod:`mmsheaf.sheaf.maps` return edge-major *views* of edge-last
  storage, so nothing is copied in between.

Whole models (5 layers, 32 channels, one forward+backward): see :mod:`mmsheaf.sheaf.models`.

Differences from the reference implementation (none changes the operator in exact arithmetic): general
normalised blocks are not clamped to :math:`[-1, 1]` (their entries are bounded by 1 anyway) and need no
random perturbation of the eigenvalues during training (:func:`~mmsheaf.sheaf.kernels.batched_sym_inv_sqrt`
has a finite gradient for repeated eigenvalues); ``"deg"`` normalisation also scales the fixed
``add_lp``/``add_hp`` dimensions (the reference leaves them unnormalised, which makes their diagonal the raw
degree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .index import SheafIndex
from .kernels import atb_edge_last, batched_sym_inv_sqrt, const_sym_spmm, cut, sheaf_spmm, symmetric_gather

__all__ = [
    "NORMALISATIONS",
    "SHEAF_KINDS",
    "SheafLaplacian",
    "dirichlet_energy",
    "sheaf_laplacian",
]

SHEAF_KINDS: tuple[str, ...] = ("diag", "orth", "gen")
"""Restriction-map families: diagonal ``(E, d)``, orthogonal ``(E, d, d)`` and general ``(E, d, d)`` maps."""

NORMALISATIONS: tuple[str | None, ...] = (None, "sym", "deg")
r"""``None``: :math:`L`; ``"sym"``: :math:`(D+I)^{-1/2} L (D+I)^{-1/2}` (NSD's ``normalised``); ``"deg"``:
the reference's ``deg_normalised``, :math:`(\deg+1)^{-1/2} L (\deg+1)^{-1/2}` (``(d \deg + 1)`` for general
maps, the largest possible norm of a diagonal block)."""


def _apply_scale(scale: Tensor | None, x: Tensor) -> Tensor:
    """Multiply node-major ``x (N, d, C)`` by a scaling: ``None``, ``(N,)``, ``(N, d)`` or ``(N, d, d)``."""
    if scale is None:
        return x
    if scale.dim() == 1:
        return scale.view(-1, 1, 1) * x
    if scale.dim() == 2:
        return scale.unsqueeze(-1) * x
    return torch.matmul(scale, x)


@dataclass(frozen=True, eq=False)
class SheafLaplacian:
    r"""A (normalised) sheaf Laplacian in factorised form, applied without forming a dense matrix.

    .. math::
        \Delta = \operatorname{blockdiag}(\Delta_{vv}) + S\, A\, S,

    with :math:`A` the off-diagonal part of the unnormalised Laplacian :math:`L` (blocks :math:`L_{uv}`) and
    :math:`S` the node normalisation (:math:`(D+I)^{-1/2}`, the degree scaling, or the identity). Trailing
    *fixed* stalk dimensions (NSD's ``add_lp`` / ``add_hp``) carry the graph Laplacian
    :math:`\deg \pm A_G`, normalised like the rest.

    Build it with :func:`sheaf_laplacian`; apply it with :meth:`apply`.

    Attributes:
        index: the graph's :class:`~mmsheaf.sheaf.index.SheafIndex`.
        offdiag: unnormalised off-diagonal blocks :math:`L_{uv}` of the undirected edges :math:`e = (u, v)`,
            :math:`u < v` (``index.edge_index[:, e]``): ``(E, d)`` for diagonal blocks, else ``(E, d, d)``;
            :math:`L_{vu} = L_{uv}^\top`.
        diag: normalised diagonal blocks :math:`\Delta_{vv}`: ``(N, d)`` (diagonal) or ``(N, d, d)``.
        scale: ``None``, ``(N,)``, ``(N, d)`` or ``(N, d, d)``: the normalisation :math:`S`.
        fixed_signs: one sign per fixed trailing dimension: the off-diagonal entry of its Laplacian
            (``+1.0`` is the reference's ``add_lp``, ``-1.0`` its ``add_hp``).
        fixed_normalised: whether the fixed dimensions are normalised by :math:`(\deg+1)^{-1/2}`.
    """

    index: SheafIndex
    offdiag: Tensor
    diag: Tensor
    scale: Tensor | None = None
    fixed_signs: tuple[float, ...] = ()
    fixed_normalised: bool = True
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def block(self) -> bool:
        """Whether the off-diagonal blocks are full ``d x d`` matrices (orthogonal/general maps)."""
        return self.offdiag.dim() == 3

    @property
    def d(self) -> int:
        """Learned stalk dimension."""
        return self.offdiag.size(1)

    @property
    def total_d(self) -> int:
        """Stalk dimension including the fixed trailing dimensions."""
        return self.d + len(self.fixed_signs)

    @property
    def num_nodes(self) -> int:
        return self.index.num_nodes

    def tensors(self) -> tuple[Tensor, ...]:
        """What :meth:`apply` reads: the CSR non-zeros (from :attr:`offdiag`), :attr:`diag`, :attr:`scale`."""
        return tuple(t for t in (self._values(), self.diag, self.scale) if t is not None)

    def independent(self) -> SheafLaplacian:
        """The same operator whose :meth:`tensors` are sibling outputs of one autograd node.

        ``torchdiffeq.odeint_adjoint`` differentiates the vector field with respect to its ``adjoint_params``
        and hands those gradients back to autograd; if one listed tensor were computed from another (the
        general normalised ``diag`` is :math:`S D S`, from ``scale``), a gradient would be counted twice.
        """
        parts = iter(cut(*self.tensors()))
        values = next(parts)
        diag = next(parts)
        scale = next(parts) if self.scale is not None else None
        lap = SheafLaplacian(self.index, self.offdiag, diag, scale, self.fixed_signs, self.fixed_normalised)
        lap._cache["values"] = values
        return lap

    def _values(self) -> Tensor:
        """CSR non-zeros of the off-diagonal part, computed once per Laplacian."""
        if "values" not in self._cache:
            pattern = self.index.csr_pattern(self.d, self.block)
            blocks = self.offdiag.permute(1, 2, 0) if self.block else self.offdiag.t()  # edge-last
            self._cache["values"] = symmetric_gather(blocks.reshape(-1), pattern)
        return self._cache["values"]

    def _apply_learned(self, x: Tensor) -> Tensor:
        pattern = self.index.csr_pattern(self.d, self.block)
        y = sheaf_spmm(self._values(), _apply_scale(self.scale, x), pattern)
        y = _apply_scale(self.scale, y)
        if self.diag.dim() == 2:
            return y + self.diag.unsqueeze(-1) * x
        return y + torch.matmul(self.diag, x)

    def _apply_fixed(self, x: Tensor) -> Tensor:
        n, k, c = x.shape
        values, diag = self.index.normalised_adjacency(x.dtype, self.fixed_normalised)
        ax = const_sym_spmm(x.reshape(n, k * c), self.index.csr_pattern(1, block=False), values)
        signs = torch.tensor(self.fixed_signs, dtype=x.dtype, device=x.device).view(1, k, 1)
        return diag.view(-1, 1, 1) * x + signs * ax.view(n, k, c)

    def apply(self, x: Tensor) -> Tensor:
        r"""Compute :math:`\Delta x`.

        Args:
            x: ``(N, d_total, C)`` node-major features, or ``(N * d_total, C)`` (the reference's layout).

        Returns:
            :math:`\Delta x` with the shape of ``x``.
        """
        n, dt = self.num_nodes, self.total_d
        if x.dim() == 2 and x.size(0) == n * dt:
            return self.apply(x.view(n, dt, -1)).reshape(n * dt, -1)
        if x.dim() != 3 or x.size(0) != n or x.size(1) != dt:
            raise ValueError(
                f"x must have shape (N, d, C) = ({n}, {dt}, C) or (N*d, C) = ({n * dt}, C), "
                f"got {tuple(x.shape)}"
            )
        if not self.fixed_signs:
            return self._apply_learned(x)
        d = self.d
        return torch.cat([self._apply_learned(x[:, :d]), self._apply_fixed(x[:, d:])], dim=1)

    __matmul__ = apply

    def to_dense(self) -> Tensor:
        """The dense ``(N d_total, N d_total)`` matrix (node-major: row ``v * d_total + i``), for tests."""
        n, dt = self.num_nodes, self.total_d
        basis = torch.eye(n * dt, dtype=self.diag.dtype, device=self.diag.device).view(n, dt, n * dt)
        return self.apply(basis).reshape(n * dt, n * dt)  # columns of Delta @ I (Delta is symmetric)


def sheaf_laplacian(
    index: SheafIndex,
    maps: Tensor,
    sheaf: str = "diag",
    edge_weights: Tensor | None = None,
    normalisation: str | None = "sym",
    fixed_signs: Sequence[float] = (),
    eps: float = 1e-6,
) -> SheafLaplacian:
    r"""Build the sheaf Laplacian of restriction maps given for every directed edge.

    Row :math:`k` of ``maps`` is :math:`\mathcal{F}_{s \trianglelefteq e}` for the directed edge
    :math:`(s, t) =` ``index.edge_index[:, k]``: the map from the stalk of :math:`s` to the stalk of the edge
    :math:`e = \{s, t\}`. With edge weights :math:`w_e`, every map of edge :math:`e` is scaled by
    :math:`w_e` (as in the reference), so :math:`L_{uv} = -w_e^2 \mathcal{F}_u^\top \mathcal{F}_v`.

    .. math::
        L_{vv} = \sum_{v \trianglelefteq e} \mathcal{F}_{v \trianglelefteq e}^\top
        \mathcal{F}_{v \trianglelefteq e}, \quad
        L_{uv} = -\mathcal{F}_{u \trianglelefteq e}^\top \mathcal{F}_{v \trianglelefteq e}, \quad
        \Delta = (D + I)^{-1/2} L (D + I)^{-1/2}.

    For ``"orth"`` the maps are assumed orthogonal, so :math:`D_v = \sum_e w_e^2 I` is not computed from the
    maps; for ``"gen"`` :math:`(D_v + I)^{-1/2}` is a batched symmetric inverse square root
    (:func:`~mmsheaf.sheaf.kernels.batched_sym_inv_sqrt`); for ``"diag"`` everything is elementwise.

    Args:
        index: the graph's :class:`~mmsheaf.sheaf.index.SheafIndex`.
        maps: ``(2E, d)`` diagonal maps (``"diag"``) or ``(2E, d, d)`` matrices (``"orth"``, ``"gen"``).
        sheaf: one of :data:`SHEAF_KINDS`.
        edge_weights: optional ``(2E,)`` or ``(2E, 1)`` weights, equal on an edge and its reverse.
        normalisation: one of :data:`NORMALISATIONS`.
        fixed_signs: signs of extra trailing stalk dimensions with fixed maps (``(1.0,)`` for ``add_lp``,
            ``(-1.0,)`` for ``add_hp``, ``(1.0, -1.0)`` for both, in that order as in the reference).
        eps: eigenvalue floor of the inverse square root (``"gen"`` with ``"sym"``).

    Returns:
        :class:`SheafLaplacian`.

    **Shapes:** ``maps`` :math:`(2E, d)` or :math:`(2E, d, d)`; ``edge_weights`` :math:`(2E,)`.
    """
    builder = _BUILDERS.get(sheaf)
    if builder is None:
        raise ValueError(f"unknown sheaf type {sheaf!r}: choose one of {SHEAF_KINDS}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}: choose one of {NORMALISATIONS}")
    e2 = index.num_directed_edges
    expected_dim = 2 if sheaf == "diag" else 3
    if (
        maps.dim() != expected_dim
        or maps.size(0) != e2
        or (expected_dim == 3 and maps.size(1) != maps.size(2))
    ):
        shape = "(2E, d)" if sheaf == "diag" else "(2E, d, d)"
        raise ValueError(
            f"{sheaf!r} maps must have shape {shape} with 2E={e2} directed edges, got {tuple(maps.shape)}"
        )
    if maps.size(1) < 1:
        raise ValueError("the stalk dimension d must be at least 1")
    w = None
    if edge_weights is not None:
        w = edge_weights.reshape(-1)
        if w.numel() != e2:
            raise ValueError(f"edge_weights must have 2E={e2} entries, got {tuple(edge_weights.shape)}")
        e = index.num_edges
        if not torch.allclose(w[:e], w[e:]):
            raise ValueError(
                "edge_weights must be symmetric (equal on every edge and its reverse, index.reverse); "
                "symmetrise them, e.g. w * w[index.reverse] or (w + w[index.reverse]) / 2"
            )
        w = w[:e]
    offdiag, diag, scale = builder(index, maps, w, normalisation, eps)
    return SheafLaplacian(
        index=index,
        offdiag=offdiag,
        diag=diag,
        scale=scale,
        fixed_signs=tuple(float(s) for s in fixed_signs),
        fixed_normalised=normalisation is not None,
    )


def _scatter_src(index: SheafIndex, values: Tensor) -> Tensor:
    """Sum edge-last ``(..., 2E)`` values over the directed edges leaving each node: ``(..., N)``."""
    lead = values.shape[:-1]
    flat = values.reshape(
        lead.numel(), values.size(-1)
    )  # 2-D: a 3-D index_add's backward gather is 7x slower
    out = flat.new_zeros(flat.size(0), index.num_nodes).index_add_(1, index.src, flat)
    return out.view(*lead, index.num_nodes)


def _build_diag(
    index: SheafIndex, maps: Tensor, w: Tensor | None, normalisation: str | None, eps: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    e = index.num_edges
    f = maps.t()  # (d, 2E) edge-last
    if w is not None:
        f = f * torch.cat([w, w]).unsqueeze(0)
    fu, fv = f.split([e, e], dim=-1)  # forward / reverse copies (split: no zero-filled slice backward)
    off = -(fu * fv)  # (d, E)
    dsum = _scatter_src(index, f * f)  # (d, N)
    if normalisation == "sym":
        scale = (dsum + 1.0).rsqrt()
        diag = dsum / (dsum + 1.0)
    elif normalisation == "deg":
        s = (index.degree_as(maps.dtype) + 1.0).rsqrt()
        scale = s.unsqueeze(0).expand_as(dsum)
        diag = dsum * (s * s)
    else:
        scale, diag = None, dsum
    return off.t(), diag.t(), (scale.t() if scale is not None else None)


def _build_orth(
    index: SheafIndex, maps: Tensor, w: Tensor | None, normalisation: str | None, eps: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    e, d = index.num_edges, maps.size(1)
    q = maps.permute(1, 2, 0)  # (d, d, 2E) edge-last
    off = -atb_edge_last(*q.split([e, e], dim=-1))  # (d, d, E)
    if w is None:
        dsum = index.degree_as(maps.dtype)
    else:
        w2 = w * w
        off = off * w2
        dsum = _scatter_src(index, torch.cat([w2, w2]))
    if normalisation == "sym":
        scale = (dsum + 1.0).rsqrt()
        dval = dsum / (dsum + 1.0)
    elif normalisation == "deg":
        scale = (index.degree_as(maps.dtype) + 1.0).rsqrt()
        dval = dsum * scale * scale
    else:
        scale, dval = None, dsum
    return off.permute(2, 0, 1), dval.unsqueeze(-1).expand(-1, d), scale


def _build_gen(
    index: SheafIndex, maps: Tensor, w: Tensor | None, normalisation: str | None, eps: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    e, d = index.num_edges, maps.size(1)
    f = maps.permute(1, 2, 0)  # (d, d, 2E) edge-last
    if w is not None:
        f = f * torch.cat([w, w])
    off = -atb_edge_last(*f.split([e, e], dim=-1))  # (d, d, E)
    dsum = _scatter_src(index, atb_edge_last(f, f)).permute(2, 0, 1)  # (N, d, d)
    if normalisation == "sym":
        eye = torch.eye(d, dtype=maps.dtype, device=maps.device)
        scale = batched_sym_inv_sqrt(dsum + eye, eps)
        diag = scale @ dsum @ scale
    elif normalisation == "deg":
        scale = (index.degree_as(maps.dtype) * d + 1.0).rsqrt()
        diag = dsum * (scale * scale).view(-1, 1, 1)
    else:
        scale, diag = None, dsum
    return off.permute(2, 0, 1), diag, scale


_Builder = Callable[
    [SheafIndex, Tensor, "Tensor | None", "str | None", float], tuple[Tensor, Tensor, "Tensor | None"]
]
_BUILDERS: dict[str, _Builder] = {"diag": _build_diag, "orth": _build_orth, "gen": _build_gen}


def dirichlet_energy(laplacian: SheafLaplacian, x: Tensor) -> Tensor:
    r"""Sheaf Dirichlet energy :math:`E_\mathcal{F}(x) = \operatorname{tr}(x^\top \Delta x)`, a scalar tensor.

    Args:
        laplacian: the operator :math:`\Delta` (normalised or not).
        x: ``(N, d_total, C)`` or ``(N * d_total, C)`` features.
    """
    return (x * laplacian.apply(x)).sum()
