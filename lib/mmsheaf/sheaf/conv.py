r"""Sheaf diffusion layers with a PyG-style interface.

:class:`SheafDiffusionConv` is one step of discrete Neural Sheaf Diffusion
(`Bodnar et al., NeurIPS 2022 <https://arxiv.org/abs/2202.04579>`_); :class:`SheafDiffusionODEFunc` is the
vector field of its continuous version, for ``torchdiffeq``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .index import SheafIndex, SheafIndexCache
from .laplacian import NORMALISATIONS, SheafLaplacian, sheaf_laplacian
from .maps import MAP_LEARNERS, EdgeWeightLearner, _lookup, validate_sheaf

__all__ = ["SheafDiffusionConv", "SheafDiffusionODEFunc", "fixed_signs"]

_UNSET: Any = object()


def fixed_signs(add_lp: bool, add_hp: bool) -> tuple[float, ...]:
    """Signs of the fixed extra stalk dimensions, in the reference's order (``add_lp`` then ``add_hp``).

    The reference's ``add_lp`` dimension has the off-diagonal entry ``+1`` (Laplacian ``D + A``), its
    ``add_hp`` dimension ``-1`` (``D - A``); both have the degree on the diagonal and are normalised like the
    learned dimensions.
    """
    return ((1.0,) if add_lp else ()) + ((-1.0,) if add_hp else ())


class _SheafOperator(nn.Module):
    r"""Shared parts of the discrete and continuous layers: the sheaf learner and :math:`W_1`, :math:`W_2`."""

    def __init__(
        self,
        channels: int,
        d: int,
        sheaf: str = "diag",
        *,
        add_lp: bool = False,
        add_hp: bool = False,
        normalisation: str | None = "sym",
        learn_sheaf: bool = True,
        map_learner: str = "linear",
        map_learner_kwargs: dict[str, Any] | None = None,
        orth: str = "householder",
        sheaf_act: str = "tanh",
        edge_weights: bool = False,
        left_weights: bool = True,
        right_weights: bool = True,
        use_act: bool = True,
    ) -> None:
        super().__init__()
        validate_sheaf(sheaf, d)
        if channels < 1:
            raise ValueError(f"channels (features per stalk dimension) must be positive, got {channels}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {normalisation!r}: choose one of {NORMALISATIONS}")
        self.channels, self.d, self.sheaf = channels, d, sheaf
        self.normalisation = normalisation
        self.fixed_signs = fixed_signs(add_lp, add_hp)
        self.total_d = d + len(self.fixed_signs)
        self.use_act = use_act
        in_features = self.total_d * channels
        learner_cls = _lookup(MAP_LEARNERS, map_learner, "map learner")
        self.sheaf_learner: nn.Module | None = None
        self.edge_weight_learner: EdgeWeightLearner | None = None
        if learn_sheaf:
            self.sheaf_learner = learner_cls(
                in_features, d, sheaf, act=sheaf_act, orth=orth, **(map_learner_kwargs or {})
            )
            if edge_weights:
                self.edge_weight_learner = EdgeWeightLearner(in_features)
        self.left_weight = nn.Parameter(torch.empty(self.total_d, self.total_d)) if left_weights else None
        self.right_weight = nn.Parameter(torch.empty(channels, channels)) if right_weights else None
        self._index_cache = SheafIndexCache()

    @property
    def learns_sheaf(self) -> bool:
        """Whether the layer learns its own sheaf (else it needs a ``laplacian`` from an earlier layer)."""
        return self.sheaf_learner is not None

    def reset_parameters(self) -> None:
        for module in (self.sheaf_learner, self.edge_weight_learner):
            if module is not None:
                module.reset_parameters()
        if self.left_weight is not None:
            nn.init.eye_(self.left_weight)
        if self.right_weight is not None:
            nn.init.orthogonal_(self.right_weight)

    def index(self, edge_index: Tensor | SheafIndex, num_nodes: int) -> SheafIndex:
        """The :class:`SheafIndex` of ``edge_index``, built once per graph (cached by memory and shape)."""
        return self._index_cache(edge_index, num_nodes)

    def sheaf_laplacian(
        self, x: Tensor, edge_index: Tensor | SheafIndex, normalisation: str | None = _UNSET
    ) -> SheafLaplacian:
        r"""The sheaf Laplacian learned from ``x`` (:math:`(N, d_{total} C)` or :math:`(N, d_{total}, C)`).

        ``normalisation`` overrides the layer's (e.g. ``"sym"`` to measure normalised Dirichlet energies).
        """
        if self.sheaf_learner is None:
            raise ValueError(
                "this layer does not learn a sheaf (learn_sheaf=False): pass the laplacian of an earlier "
                "layer"
            )
        n = x.size(0)
        h = x.reshape(n, -1)
        index = self.index(edge_index, n)
        maps = self.sheaf_learner(h, index)
        weights = self.edge_weight_learner(h, index) if self.edge_weight_learner is not None else None
        norm = self.normalisation if normalisation is _UNSET else normalisation
        return sheaf_laplacian(index, maps, self.sheaf, weights, norm, self.fixed_signs)

    def transform(self, h: Tensor) -> Tensor:
        r""":math:`(I_N \otimes W_1)\, h\, W_2` for node-major ``h`` of shape :math:`(N, d_{total}, C)`."""
        if self.left_weight is not None:
            h = torch.einsum("ij,njc->nic", self.left_weight, h)
        if self.right_weight is not None:
            h = h @ self.right_weight.t()
        return h

    def _check_laplacian(self, laplacian: SheafLaplacian, n: int) -> None:
        if laplacian.num_nodes != n or laplacian.total_d != self.total_d:
            raise ValueError(
                f"the laplacian is for {laplacian.num_nodes} nodes with stalks of size {laplacian.total_d}, "
                f"the layer expects {n} nodes with stalks of size {self.total_d}"
            )

    def _as_stalks(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.total_d * self.channels:
            raise ValueError(
                f"x must have shape (N, d_total * channels) = (N, {self.total_d * self.channels}), "
                f"got {tuple(x.shape)}"
            )
        return x.view(x.size(0), self.total_d, self.channels)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, d={self.d}, sheaf={self.sheaf!r}, fixed_signs={self.fixed_signs}, "
            f"normalisation={self.normalisation!r}"
        )


class SheafDiffusionConv(_SheafOperator):
    r"""One layer of discrete Neural Sheaf Diffusion (`Bodnar et al., NeurIPS 2022
    <https://arxiv.org/abs/2202.04579>`_), Eq. (9) of the paper with the reference implementation's details:

    .. math::
        \mathbf{X}_{t+1} = \big(1 + \tanh \boldsymbol{\varepsilon}_t\big) \odot \mathbf{X}_t
        - \sigma\Big(\Delta_{\mathcal{F}(t)} \big(\mathbf{I}_N \otimes \mathbf{W}_1^t\big)
        \operatorname{dropout}(\mathbf{X}_t)\, \mathbf{W}_2^t\Big),

    where :math:`\mathbf{X}_t \in \mathbb{R}^{N d \times C}` stacks the stalks of the nodes,
    :math:`\Delta_{\mathcal{F}(t)}` is the (normalised) sheaf Laplacian of restriction maps learned from
    :math:`\mathbf{X}_t` (:mod:`mmsheaf.sheaf.maps`), :math:`\mathbf{W}_1 \in \mathbb{R}^{d \times d}` mixes
    stalk dimensions (initialised to :math:`I`), :math:`\mathbf{W}_2 \in \mathbb{R}^{C \times C}` mixes
    channels (orthogonal initialisation), :math:`\boldsymbol{\varepsilon} \in \mathbb{R}^d` (one per stalk
    dimension, initialised to 0) and :math:`\sigma` is ELU.

    Args:
        channels: feature channels :math:`C` per stalk dimension.
        d: learned stalk dimension.
        sheaf: restriction maps: ``"diag"``, ``"orth"`` or ``"gen"``.
        add_lp: add a fixed stalk dimension with off-diagonal ``+1`` (the reference's ``add_lp``).
        add_hp: add a fixed stalk dimension with off-diagonal ``-1`` (the reference's ``add_hp``).
        normalisation: ``"sym"`` (:math:`(D+I)^{-1/2} L (D+I)^{-1/2}`), ``"deg"`` or ``None``.
        learn_sheaf: learn a sheaf from the input in :meth:`forward`; if ``False`` the layer has no learner
            and :meth:`forward` needs ``laplacian`` (NSD's ``linear=True``: the first layer's sheaf is
            reused).
        map_learner: ``"linear"`` (paper) or ``"mlp"``; ``map_learner_kwargs`` go to its constructor.
        orth: ``"householder"`` or ``"matrix_exp"`` for ``sheaf="orth"``.
        sheaf_act: activation of the map parameters (``"tanh"``).
        edge_weights: learn symmetric edge weights that scale the maps.
        left_weights: use :math:`\mathbf{W}_1`; right_weights: use :math:`\mathbf{W}_2`.
        use_act: apply :math:`\sigma` (ELU).
        dropout: dropout on :math:`\mathbf{X}_t` before the diffusion (not on the residual).

    **Shapes:**
        - input ``x``: :math:`(N, d_{total} \cdot C)`, node :math:`v`'s row being its :math:`d_{total}` stalk
          dimensions of :math:`C` channels each (``x.view(N, d_total, C)``), :math:`d_{total} = d +
          \text{add\_lp} + \text{add\_hp}`; ``edge_index``: :math:`(2, 2E)` undirected, or a
          :class:`~mmsheaf.sheaf.index.SheafIndex`;
        - output: :math:`(N, d_{total} \cdot C)`.
    """

    def __init__(
        self, channels: int, d: int, sheaf: str = "diag", *, dropout: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(channels, d, sheaf, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = dropout
        self.epsilon = nn.Parameter(torch.zeros(self.total_d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.epsilon)

    def forward(
        self, x: Tensor, edge_index: Tensor | SheafIndex, laplacian: SheafLaplacian | None = None
    ) -> Tensor:
        """One diffusion step; the sheaf is learned from ``x`` unless ``laplacian`` is given."""
        h = self._as_stalks(x)
        if laplacian is None:
            laplacian = self.sheaf_laplacian(h, edge_index)
        self._check_laplacian(laplacian, h.size(0))
        z = F.dropout(h, p=self.dropout, training=self.training)
        z = laplacian.apply(self.transform(z))
        if self.use_act:
            z = F.elu(z)
        out = (1.0 + torch.tanh(self.epsilon)).view(1, -1, 1) * h - z
        return out.reshape(x.shape)


class SheafDiffusionODEFunc(_SheafOperator):
    r"""Vector field of continuous Neural Sheaf Diffusion, for ``torchdiffeq.odeint``:

    .. math::
        \frac{d\mathbf{X}(t)}{dt} = \sigma\Big(-\Delta_{\mathcal{F}(\mathbf{X}(t))}
        \big(\mathbf{I}_N \otimes \mathbf{W}_1\big) \mathbf{X}(t)\, \mathbf{W}_2\Big)

    (the reference's form: :math:`\sigma` = ELU when ``use_act``, else the identity, giving the paper's
    :math:`-\Delta (I \otimes W_1) X W_2`). The sheaf is learned from the state at every evaluation, or, when
    :attr:`laplacian` is set (NSD's ``linear=True``), that fixed Laplacian is used. Set :attr:`graph` (a
    :class:`~mmsheaf.sheaf.index.SheafIndex`) before integrating, or integrate :meth:`bind`.

    Args: as :class:`SheafDiffusionConv` (no dropout, no :math:`\varepsilon`).

    **Shapes:** state :math:`(N, d_{total}, C)` in, same out.
    """

    def __init__(self, channels: int, d: int, sheaf: str = "diag", **kwargs: Any) -> None:
        super().__init__(channels, d, sheaf, **kwargs)
        self.graph: SheafIndex | None = None
        self.laplacian: SheafLaplacian | None = None
        self.num_evals = 0
        self.reset_parameters()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.vector_field(t, x, self.graph, self.laplacian)

    def vector_field(
        self, t: Tensor, x: Tensor, graph: SheafIndex | None, laplacian: SheafLaplacian | None = None
    ) -> Tensor:
        """The vector field at state ``x`` on ``graph``, with a fixed ``laplacian`` if one is given."""
        self.num_evals += 1
        if laplacian is None:
            if graph is None:
                raise ValueError("set .graph (a SheafIndex) or .laplacian before integrating, or use .bind()")
            laplacian = self.sheaf_laplacian(x, graph)
        z = -laplacian.apply(self.transform(x))
        return F.elu(z) if self.use_act else z

    def bind(self, graph: SheafIndex, laplacian: SheafLaplacian | None = None) -> nn.Module:
        """A module ``f(t, x)`` for ``odeint`` that evaluates this field on ``graph`` (and ``laplacian``).

        Its parameters are this module's, so ``odeint_adjoint`` finds them; nothing is stored on ``self``.
        """
        return _BoundField(self, graph, laplacian)


class _BoundField(nn.Module):
    def __init__(
        self, field: SheafDiffusionODEFunc, graph: SheafIndex, laplacian: SheafLaplacian | None
    ) -> None:
        super().__init__()
        self.field = field
        self.graph, self.laplacian = graph, laplacian

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.field.vector_field(t, x, self.graph, self.laplacian)
