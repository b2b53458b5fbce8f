r"""Graph regularisers of embeddings: the plain one of Neural Graph Machines and a sheaf one.

The study of issue 18 trains a classifier with a penalty on the edges of a graph used only at training time:

.. math::
    \mathcal{L} = \mathcal{L}_{CE}
    + \alpha_1 \sum_{(u,v) \in E_{LL}} w_{uv}\, d(h_u, h_v)
    + \alpha_2 \sum_{(u,v) \in E_{LU}} w_{uv}\, d(h_u, h_v)
    + \alpha_3 \sum_{(u,v) \in E_{UU}} w_{uv}\, d(h_u, h_v),

the objective of **Neural Graph Machines** (Bui, Ravi & Ramavajjala, WSDM 2018,
`arXiv:1703.04818 <https://arxiv.org/abs/1703.04818>`_, Eq. 2-3), with separate weights for the
labelled-labelled, labelled-unlabelled and unlabelled-unlabelled edges (:data:`EDGE_TYPES`,
:func:`edge_types`); TensorFlow `Neural Structured Learning <https://www.tensorflow.org/neural_structured_learning>`_
implements the same graph regularisation with one multiplier. :class:`GraphRegulariser` computes the
penalty (without :math:`\mathcal{L}_{CE}`). With the squared L2 distance, unit weights and a sum it is the
Laplacian quadratic form

.. math::
    \sum_{(u,v) \in E} \|h_u - h_v\|^2 = \operatorname{tr}(H^\top L H), \qquad L = D - A,

every undirected edge counted once.

The **sheaf regulariser** (:class:`SheafRegulariser`, this project's proposal) compares the endpoints after
restriction maps learned from the endpoints' input features, as in Neural Sheaf Diffusion (Bodnar et al.,
NeurIPS 2022, `arXiv:2202.04579 <https://arxiv.org/abs/2202.04579>`_: the sheaf Laplacian
:math:`L_\mathcal{F} = \delta^\top \delta` and its Dirichlet energy, and the maps learned as
:math:`\mathcal{F}_{u \trianglelefteq e} = \Phi(x_u \| x_v)`, :mod:`mmsheaf.sheaf.maps`):

.. math::
    \mathcal{R}_\mathcal{F}(H) = \sum_{e = (u, v) \in E} \alpha_{\tau(e)}\, w_e\,
    d\big(\mathcal{F}_{u \trianglelefteq e}\, h_u,\ \mathcal{F}_{v \trianglelefteq e}\, h_v\big),

where every embedding :math:`h_u \in \mathbb{R}^D` is a stalk :math:`\mathbb{R}^{d \times D/d}` (``d`` rows
of ``D/d`` channels: ``h.view(N, d, D // d)``, NSD's layout). It can vanish on a heterophilic edge without
:math:`h_u \approx h_v` (e.g. :math:`h_v = -h_u`, maps :math:`+1` and :math:`-1`). With the squared L2
distance, fixed maps, unit weights and a sum it is the sheaf Dirichlet energy of the **unnormalised** sheaf
Laplacian :math:`L_\mathcal{F} = \delta^\top \delta` (:func:`~mmsheaf.sheaf.reference.dense_sheaf_laplacian`
with ``normalisation=None``):

.. math::
    \sum_{e = (u, v)} \big\|\mathcal{F}_{v \trianglelefteq e} h_v - \mathcal{F}_{u \trianglelefteq e} h_u\big\|_F^2
    = \operatorname{tr}\big(\mathbf{h}^\top L_\mathcal{F}\, \mathbf{h}\big),
    \qquad \mathbf{h} = H\text{.reshape}(N d, D/d).

**Caveat (degenerate minimum).** The maps enter only the regulariser, so a map learner trained on it alone
can shrink its maps towards 0 (``diag``/``gen`` maps with ``tanh``) and make the penalty vanish for any
:math:`H`; orthogonal maps (``sheaf="orth"``) keep :math:`\|\mathcal{F} h\| = \|h\|` and cannot do that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..sheaf.index import SheafIndex, SheafIndexCache
from ..sheaf.maps import ACTIVATIONS, MAP_LEARNERS, ORTHOGONAL_MAPS, validate_sheaf
from .distances import PAIRED_DISTANCES, PROBABILITY_DISTANCES, paired_distance

__all__ = [
    "EDGE_TYPES",
    "REDUCTIONS",
    "EdgeMaps",
    "GraphRegulariser",
    "SheafRegulariser",
    "edge_types",
    "restrict_stalks",
]

EDGE_TYPES: tuple[str, str, str] = ("LL", "LU", "UU")
"""Edge types of Neural Graph Machines by code: 0 labelled-labelled, 1 labelled-unlabelled, 2 unlabelled-unlabelled."""


def _sum(per_edge: Tensor) -> Tensor:
    return per_edge.sum()


def _mean(per_edge: Tensor) -> Tensor:
    return per_edge.sum() / max(per_edge.numel(), 1)


REDUCTIONS: dict[str, Callable[[Tensor], Tensor]] = {"mean": _mean, "sum": _sum}
"""Reductions over the undirected edges: ``"mean"`` divides the weighted sum by the number :math:`E` of
undirected edges (all of them, whatever their type weight), ``"sum"`` does not. An edgeless graph gives 0."""


def _lookup(registry: dict, name: str, what: str):
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {name!r}: choose one of {sorted(registry)}") from None


def edge_types(edge_index: Tensor, labelled: Tensor) -> Tensor:
    """The Neural Graph Machines type of every edge: 0 ``LL``, 1 ``LU`` (either direction), 2 ``UU``.

    Args:
        edge_index: ``(2, M)`` edges (any direction, any order).
        labelled: ``(N,)`` boolean mask of the labelled nodes (e.g. ``data.train_mask``).

    Returns:
        ``(M,)`` long tensor, codes into :data:`EDGE_TYPES` (the number of unlabelled endpoints).

    **Shapes:** ``edge_index`` :math:`(2, M)`, ``labelled`` :math:`(N,)`; output :math:`(M,)`.
    """
    if not isinstance(labelled, Tensor) or labelled.dtype != torch.bool or labelled.dim() != 1:
        raise ValueError(
            "labelled must be a 1-D boolean mask of the nodes (e.g. data.train_mask); from node ids idx use "
            "mask = torch.zeros(N, dtype=torch.bool); mask[idx] = True"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, M), got {tuple(edge_index.shape)}")
    if edge_index.numel() and int(edge_index.max()) >= labelled.numel():
        raise ValueError(
            f"labelled has {labelled.numel()} entries but edge_index has node id {int(edge_index.max())}: "
            "pass one entry per node"
        )
    unlabelled = (~labelled).long()
    return unlabelled[edge_index[0]] + unlabelled[edge_index[1]]


def _check_weights(weights: tuple[float, float, float]) -> tuple[float, float, float]:
    values = tuple(float(w) for w in weights)
    if len(values) != 3 or not all(w >= 0 and w < float("inf") for w in values):
        raise ValueError(
            f"weights must be three finite non-negative numbers (alpha_LL, alpha_LU, alpha_UU), got {weights}"
        )
    return values  # type: ignore[return-value]


def _undirected_weights(
    index: SheafIndex,
    edge_weight: Tensor | None,
    labelled: Tensor | None,
    weights: tuple[float, float, float],
    dtype: torch.dtype,
) -> Tensor | float:
    r"""The coefficient :math:`\alpha_{\tau(e)} w_e` of every undirected edge ``index.edge_index[:, e]``."""
    e = index.num_edges
    coeff: Tensor | float = 1.0
    if edge_weight is not None:
        w = edge_weight.reshape(-1)
        if w.numel() != 2 * e:
            raise ValueError(
                f"edge_weight must have one entry per column of edge_index (2E={2 * e}), got "
                f"{tuple(edge_weight.shape)}"
            )
        w = w[index.perm]  # into the index's undirected-major order
        if not torch.allclose(w[:e], w[e:]):
            raise ValueError(
                "edge_weight must be equal on every edge and its reverse; symmetrise it, e.g. with "
                "torch_geometric.utils.to_undirected(edge_index, edge_weight, reduce='mean')"
            )
        coeff = w[:e]
    if labelled is None:
        if len(set(weights)) > 1:
            raise ValueError(
                f"weights={weights} differ by edge type, so labelled (an (N,) boolean mask) is needed; "
                "pass labelled=data.train_mask or use equal weights"
            )
        return coeff * weights[0]
    if labelled.numel() != index.num_nodes:
        raise ValueError(f"labelled has {labelled.numel()} entries but there are {index.num_nodes} nodes")
    alpha = torch.tensor(weights, dtype=dtype, device=index.device)
    types = edge_types(index.edge_index[:, :e], labelled.to(index.device))
    return coeff * alpha[types]


def _check_probability_rows(h: Tensor, atol: float, name: str) -> None:
    with torch.no_grad():
        if h.numel() and (float(h.min()) < -atol or float((h.sum(-1) - 1).abs().max()) > atol):
            raise ValueError(
                f"distance {name!r} compares probability rows, but h has negative entries or rows that do "
                f"not sum to 1 (tolerance {atol}): pass torch.softmax(logits, dim=-1)"
            )


class GraphRegulariser(nn.Module):
    r"""The graph regulariser of Neural Graph Machines (`arXiv:1703.04818 <https://arxiv.org/abs/1703.04818>`_,
    Eq. 2-3), without the classification loss:

    .. math::
        \mathcal{R}(H) = \operatorname{reduce}_{e = (u, v),\, u < v}\;
        \alpha_{\tau(e)}\, w_e\, d(h_u, h_v).

    Every undirected edge is counted once, as the pair :math:`(u, v)` with :math:`u < v` (the order matters
    for the asymmetric ``kl``: :math:`\mathrm{KL}(h_u \| h_v)`); ``edge_index`` holds both directions of every
    edge, PyG's convention (the library's :func:`~mmsheaf.sheaf.index.build_index` checks it and is built
    once per graph). With ``"sq_l2"``, ``reduction="sum"`` and unit weights,
    :math:`\mathcal{R}(H) = \operatorname{tr}(H^\top L H)`, :math:`L = D - A`.

    Args:
        distance: a name of :data:`~mmsheaf.losses.distances.PAIRED_DISTANCES`. For the probability distances
            (``"kl"``, ``"js"``) ``h`` must hold probability rows (pass ``softmax`` outputs); they are checked
            (non-negative, rows summing to 1 within ``atol``).
        weights: :math:`(\alpha_1, \alpha_2, \alpha_3)` for the ``LL``, ``LU`` and ``UU`` edges
            (:data:`EDGE_TYPES`). Without ``labelled`` in :meth:`forward` all edges use the common weight,
            which needs the three to be equal (``ValueError`` otherwise).
        reduction: ``"mean"`` (the weighted sum divided by the number :math:`E` of undirected edges) or
            ``"sum"`` (:data:`REDUCTIONS`).
        atol: tolerance of the probability-row check.

    **Shapes:** ``h`` :math:`(N, D)`, ``edge_index`` :math:`(2, 2E)`, ``edge_weight`` :math:`(2E,)`,
    ``labelled`` :math:`(N,)` bool; output a scalar.
    """

    def __init__(
        self,
        distance: str = "sq_l2",
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        reduction: str = "mean",
        atol: float = 1e-4,
    ) -> None:
        super().__init__()
        _lookup(PAIRED_DISTANCES, distance, "distance")
        self.distance = distance
        self.weights = _check_weights(weights)
        self.reduction = reduction
        self.reduce = _lookup(REDUCTIONS, reduction, "reduction")
        self.atol = atol
        self._index_cache = SheafIndexCache()

    def extra_repr(self) -> str:
        return f"distance={self.distance!r}, weights={self.weights}, reduction={self.reduction!r}"

    def index(self, edge_index: Tensor | SheafIndex, num_nodes: int) -> SheafIndex:
        """The :class:`~mmsheaf.sheaf.index.SheafIndex` of ``edge_index``, built once per graph (cached by
        memory and shape; a :class:`SheafIndex` passed in is used as is)."""
        return self._index_cache(edge_index, num_nodes)

    def forward(
        self,
        h: Tensor,
        edge_index: Tensor | SheafIndex,
        edge_weight: Tensor | None = None,
        labelled: Tensor | None = None,
        **distance_kwargs,
    ) -> Tensor:
        """The regulariser; ``distance_kwargs`` go to the distance (``matrix=`` for ``"mahalanobis"``).

        ``edge_weight`` is aligned with the columns of ``edge_index`` (or, for a prebuilt index, of the
        ``edge_index`` it was built from) and must be equal on an edge and its reverse.
        """
        if h.dim() != 2:
            raise ValueError(f"h must have shape (N, D), got {tuple(h.shape)}")
        if self.distance in PROBABILITY_DISTANCES:
            _check_probability_rows(h, self.atol, self.distance)
        index = self.index(edge_index, h.size(0))
        e = index.num_edges
        coeff = _undirected_weights(index, edge_weight, labelled, self.weights, h.dtype)
        u, v = index.src[:e], index.dst[:e]
        per_edge = paired_distance(self.distance, h[u], h[v], **distance_kwargs)
        return self.reduce(coeff * per_edge)


class EdgeMaps(NamedTuple):
    r"""Restriction maps of every directed edge of a graph, in the order of its :class:`SheafIndex`.

    Row :math:`k` of :attr:`maps` is :math:`\mathcal{F}_{s \trianglelefteq e}` for
    :math:`(s, t) =` ``index.edge_index[:, k]``: rows :math:`0..E-1` are the maps of the smaller endpoints
    :math:`u` of the undirected edges :math:`(u, v)`, :math:`u < v`, rows :math:`E..2E-1` those of :math:`v`.
    ``dense_sheaf_laplacian(index, maps, sheaf)`` is the matching unnormalised sheaf Laplacian.
    """

    index: SheafIndex
    maps: Tensor  # (2E, d) diagonal or (2E, d, d)

    @property
    def source(self) -> Tensor:
        r""":math:`\mathcal{F}_{u \trianglelefteq e}` of every undirected edge, ``(E, d)`` or ``(E, d, d)``."""
        return self.maps[: self.index.num_edges]

    @property
    def target(self) -> Tensor:
        r""":math:`\mathcal{F}_{v \trianglelefteq e}` of every undirected edge, ``(E, d)`` or ``(E, d, d)``."""
        return self.maps[self.index.num_edges :]


def restrict_stalks(h: Tensor, maps: Tensor, index: SheafIndex, sheaf: str) -> tuple[Tensor, Tensor]:
    r"""The restricted endpoints :math:`\mathcal{F}_{u \trianglelefteq e} h_u` and
    :math:`\mathcal{F}_{v \trianglelefteq e} h_v` of every undirected edge :math:`e = (u, v)`, :math:`u < v`.

    ``h`` is seen as stalks ``h.view(N, d, D // d)``; the results are flattened back to ``(E, D)``.

    Args:
        h: ``(N, D)`` embeddings, ``D`` divisible by ``d``.
        maps: ``(2E, d)`` (``"diag"``) or ``(2E, d, d)`` maps in ``index`` order (see :class:`EdgeMaps`).
        index: the graph's :class:`~mmsheaf.sheaf.index.SheafIndex`.
        sheaf: ``"diag"``, ``"orth"`` or ``"gen"``.

    **Shapes:** ``h`` :math:`(N, D)`; outputs two :math:`(E, D)` tensors.
    """
    if maps.dim() not in (2, 3):
        raise ValueError(f"maps must have shape (2E, d) or (2E, d, d), got {tuple(maps.shape)}")
    n, e, d = index.num_nodes, index.num_edges, maps.size(1)
    kind = validate_sheaf(sheaf, d)
    expected = (2 * e, d) if kind.name == "diag" else (2 * e, d, d)
    if tuple(maps.shape) != expected:
        raise ValueError(f"{sheaf!r} maps must have shape {expected} (2E, d, ...), got {tuple(maps.shape)}")
    if h.dim() != 2 or h.size(0) != n or h.size(1) % d:
        raise ValueError(
            f"h must have shape (N, D) = ({n}, D) with D divisible by the stalk dimension d={d}, "
            f"got {tuple(h.shape)}"
        )
    stalks = h.view(n, d, h.size(1) // d)
    hu, hv = stalks[index.src[:e]], stalks[index.dst[:e]]  # (E, d, C)
    fu, fv = maps[:e], maps[e:]
    if kind.name == "diag":
        ru, rv = fu.unsqueeze(-1) * hu, fv.unsqueeze(-1) * hv
    else:
        ru, rv = fu @ hu, fv @ hv
    return ru.reshape(e, h.size(1)), rv.reshape(e, h.size(1))


class SheafRegulariser(nn.Module):
    r"""The sheaf regulariser: compare the endpoints of every edge after learned restriction maps.

    .. math::
        \mathcal{R}_\mathcal{F}(H) = \operatorname{reduce}_{e = (u, v),\, u < v}\; \alpha_{\tau(e)}\, w_e\,
        d\big(\mathcal{F}_{u \trianglelefteq e} h_u,\ \mathcal{F}_{v \trianglelefteq e} h_v\big),
        \qquad \mathcal{F}_{u \trianglelefteq e} = \sigma\big(W [x_u \| x_v]\big),

    the maps learned from the endpoints' input features ``x`` by the library's NSD learners
    (:data:`~mmsheaf.sheaf.maps.MAP_LEARNERS`: ``"linear"`` is :math:`\sigma(W [x_u \| x_v])`, ``"mlp"`` a
    two-layer one), :math:`\sigma` = ``sheaf_act`` (``tanh`` by default, as in NSD), then reshaped by sheaf
    type (``diag``: ``d`` numbers; ``orth``: Householder or matrix-exponential orthogonal maps; ``gen``:
    ``d x d``). ``h`` is seen as stalks ``h.view(N, d, D // d)`` (:func:`restrict_stalks`). Edges, edge weights,
    type weights and the reduction are those of :class:`GraphRegulariser`.

    With ``"sq_l2"``, ``reduction="sum"``, unit weights and fixed maps it equals
    :math:`\operatorname{tr}(\mathbf{h}^\top L_\mathcal{F} \mathbf{h})` with the *unnormalised* sheaf Laplacian
    (``dense_sheaf_laplacian(index, maps, sheaf)``, ``h.reshape(N * d, D // d)``); with edge weights
    :math:`w_e` it equals the dense reference built with ``edge_weights = sqrt(w)`` (which scales the maps).
    With identity maps it is :class:`GraphRegulariser`. See the module's caveat: ``diag``/``gen`` maps can
    shrink to 0 when only this penalty trains them; ``orth`` maps cannot.

    Args:
        in_features: feature size of ``x`` (the learner reads ``[x_u || x_v]``, ``2 * in_features`` numbers).
        d: stalk dimension (``orth`` needs ``d >= 2``).
        sheaf: ``"diag"``, ``"orth"`` or ``"gen"`` (:data:`~mmsheaf.sheaf.maps.SHEAF_TYPES`).
        distance: a non-probability name of :data:`~mmsheaf.losses.distances.PAIRED_DISTANCES` (restricted
            stalks are not probability vectors, so ``"kl"``/``"js"`` are refused).
        map_learner: ``"linear"`` or ``"mlp"``.
        reduction: ``"mean"`` or ``"sum"`` (:data:`REDUCTIONS`).
        weights: :math:`(\alpha_1, \alpha_2, \alpha_3)`, as in :class:`GraphRegulariser`.
        sheaf_act: activation of the map parameters (:data:`~mmsheaf.sheaf.maps.ACTIVATIONS`).
        orth: orthogonal parametrisation (:data:`~mmsheaf.sheaf.maps.ORTHOGONAL_MAPS`).
        map_learner_kwargs: extra arguments of the learner (``{"hidden_channels": 16}`` for ``"mlp"``).

    **Shapes:** ``h`` :math:`(N, D)`, :math:`d \mid D`; ``x`` :math:`(N, F)`; ``edge_index``
    :math:`(2, 2E)`; ``edge_weight`` :math:`(2E,)`; output a scalar.
    """

    def __init__(
        self,
        in_features: int,
        d: int,
        sheaf: str = "diag",
        distance: str = "sq_l2",
        map_learner: str = "linear",
        reduction: str = "mean",
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        sheaf_act: str = "tanh",
        orth: str = "householder",
        map_learner_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        validate_sheaf(sheaf, d)
        _lookup(PAIRED_DISTANCES, distance, "distance")
        if distance in PROBABILITY_DISTANCES:
            allowed = sorted(set(PAIRED_DISTANCES) - set(PROBABILITY_DISTANCES))
            raise ValueError(
                f"distance {distance!r} compares probability rows, but restricted stalks F h are not "
                f"probability vectors: choose one of {allowed}"
            )
        _lookup(ACTIVATIONS, sheaf_act, "sheaf_act")
        _lookup(ORTHOGONAL_MAPS, orth, "orthogonal parametrisation")
        learner_cls = _lookup(MAP_LEARNERS, map_learner, "map learner")
        self.in_features, self.d, self.sheaf = in_features, d, sheaf
        self.distance, self.map_learner = distance, map_learner
        self.weights = _check_weights(weights)
        self.reduction = reduction
        self.reduce = _lookup(REDUCTIONS, reduction, "reduction")
        self.sheaf_learner = learner_cls(
            in_features, d, sheaf, act=sheaf_act, orth=orth, **(map_learner_kwargs or {})
        )
        self._index_cache = SheafIndexCache()

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, d={self.d}, sheaf={self.sheaf!r}, distance={self.distance!r}, "
            f"weights={self.weights}, reduction={self.reduction!r}"
        )

    def reset_parameters(self) -> None:
        self.sheaf_learner.reset_parameters()

    def index(self, edge_index: Tensor | SheafIndex, num_nodes: int) -> SheafIndex:
        """The :class:`~mmsheaf.sheaf.index.SheafIndex` of ``edge_index``, built once per graph (cached by
        memory and shape; a :class:`SheafIndex` passed in is used as is)."""
        return self._index_cache(edge_index, num_nodes)

    def maps(self, x: Tensor, edge_index: Tensor | SheafIndex) -> EdgeMaps:
        """The learned maps of every directed edge (:class:`EdgeMaps`), e.g. for tests and figures."""
        if x.dim() != 2 or x.size(1) != self.in_features:
            raise ValueError(f"x must have shape (N, in_features={self.in_features}), got {tuple(x.shape)}")
        index = self.index(edge_index, x.size(0))
        return EdgeMaps(index, self.sheaf_learner(x, index))

    def forward(
        self,
        h: Tensor,
        x: Tensor | None,
        edge_index: Tensor | SheafIndex,
        edge_weight: Tensor | None = None,
        labelled: Tensor | None = None,
        maps: Tensor | None = None,
        **distance_kwargs,
    ) -> Tensor:
        """The regulariser. ``maps`` (``(2E, d)`` / ``(2E, d, d)`` in index order, e.g. ``self.maps(x,
        edge_index).maps`` or fixed maps) bypasses the learner, and ``x`` may then be ``None``;
        ``distance_kwargs`` go to the distance (``matrix=`` of size ``(D, D)`` for ``"mahalanobis"``)."""
        index = self.index(edge_index, h.size(0))
        if maps is None:
            if x is None:
                raise ValueError(
                    "x (the node features the maps are learned from) is needed unless maps is given"
                )
            if x.size(0) != h.size(0):
                raise ValueError(f"x has {x.size(0)} rows but h has {h.size(0)}: pass one row per node")
            maps = self.maps(x, index).maps
        elif maps.dim() < 2 or maps.size(1) != self.d:
            raise ValueError(f"maps must have stalk dimension d={self.d}, got shape {tuple(maps.shape)}")
        ru, rv = restrict_stalks(h, maps, index, self.sheaf)
        coeff = _undirected_weights(index, edge_weight, labelled, self.weights, h.dtype)
        return self.reduce(coeff * paired_distance(self.distance, ru, rv, **distance_kwargs))
