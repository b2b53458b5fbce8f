r"""The model of the graph-regularisation study: an MLP whose hidden embedding a graph regulariser shapes.

A :class:`RegularisedMLP` is the MLP of notebook 01 (``layers`` linear layers, ReLU and dropout between them).
Its embedding :math:`z` is the **pre-activation** of the last hidden layer (the classifier reads
:math:`\mathrm{relu}(z)`): a signed embedding, so that the sheaf regulariser's sign-flipping maps can match
two nodes with :math:`z_v \approx -z_u` (after a ReLU every entry is non-negative and that is impossible).
Training adds a penalty on the edges of a graph (:class:`RegConfig`) to the cross-entropy,

.. math::
    \mathcal{L} = \mathcal{L}_{CE} + \alpha\, \mathcal{R}(Z),

where :math:`\mathcal{R}` is the plain regulariser of Neural Graph Machines (Bui et al., WSDM 2018,
`arXiv:1703.04818 <https://arxiv.org/abs/1703.04818>`_), :math:`\sum_{(u,v)} \alpha_{\tau(u,v)} w_{uv}\,
d(z_u, z_v)`, or this project's sheaf regulariser :math:`\sum_e \alpha_{\tau(e)} w_e\, d(\mathcal{F}_{u
\trianglelefteq e} z_u, \mathcal{F}_{v \trianglelefteq e} z_v)` with maps learned from the endpoints'
embeddings, as NSD learns them from the endpoints' current features,
:math:`\mathcal{F}_{u \trianglelefteq e} = \Phi(\bar z_u \| \bar z_v)` (:class:`~mmsheaf.losses.graph_reg.SheafRegulariser`;
:math:`\bar z` is :math:`z` without gradient, so the penalty cannot move the embedding to please the maps, and
the learner reads 64 numbers per node rather than the raw features: on Cora's 1433 the learner's passes over
:math:`X` tripled the time of an epoch). The graph is read only by the penalty: at
inference the model is the MLP, at the MLP's cost.

**The sheaf starts as the plain regulariser, and cannot shrink to zero.** Diagonal and general maps are
:math:`\mathcal{F} = I + \Phi(x_u \| x_v)` with a linear :math:`\Phi` whose weights start at zero (so the
first step is the plain regulariser and weight decay pulls back towards it); orthogonal maps are Householder
products, whose zero parameters give the same reflection :math:`Q` on both ends, :math:`\|Q z_u - Q z_v\| =
\|z_u - z_v\|`. The penalty is the only term that sees the maps, so left alone it would shrink them to 0:
every edge's pair of maps is rescaled to a fixed size (:data:`MAP_NORMALISERS`): diagonal maps so that
:math:`f_{u,i}^2 + f_{v,i}^2 = 2` for every coordinate :math:`i` (the plain regulariser is :math:`f_u = f_v
= 1`; a heterophilic edge may take :math:`f_u = -f_v`), general maps so that :math:`\|\mathcal{F}_u\|_F^2 +
\|\mathcal{F}_v\|_F^2 = 2d`; orthogonal maps keep norms already.

**Distances** (:data:`REG_DISTANCES`): those of :mod:`mmsheaf.losses.distances` on :math:`z`; ``"kl"`` and
``"js"`` compare the predicted class distributions :math:`\operatorname{softmax}(\text{logits})` instead (as
Neural Structured Learning offers), ``"kl"`` symmetrised over the two directions of every edge. The learned
Mahalanobis matrix is :math:`M = \tfrac12 I + \tfrac12 D\, LL^\top / \operatorname{tr}(LL^\top)`: trace
:math:`D` like :math:`I`, and every eigenvalue at least :math:`\tfrac12`, so it cannot put all its weight on
directions where the embedding does not vary across edges (dead units). ``"mahalanobis_pooled"`` uses the
inverse class-pooled covariance of the labelled nodes' embeddings
(:func:`~mmsheaf.losses.distances.class_pooled_precision`), recomputed (without gradient) at every step and
rescaled to trace :math:`D`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmsheaf.losses.distances import LearnedMahalanobis, class_pooled_precision
from mmsheaf.losses.graph_reg import GraphRegulariser, SheafRegulariser

__all__ = ["MAP_NORMALISERS", "REGULARISERS", "REG_DISTANCES", "MLPConfig", "RegConfig", "RegDistance",
           "RegularisedMLP", "normalise_maps"]  # fmt: skip

REGULARISERS: tuple[str, ...] = ("none", "graph", "sheaf")
"""The penalties: none (the plain MLP), the plain graph regulariser, the sheaf regulariser."""


@dataclass(frozen=True)
class RegDistance:
    """A distance of the penalty.

    Args:
        paired: The :data:`~mmsheaf.losses.distances.PAIRED_DISTANCES` function it calls.
        matrix: Where a Mahalanobis matrix comes from: ``None``, ``"learned"`` or ``"pooled"``.
        on_probabilities: Compare ``softmax(logits)`` rather than the embedding (plain regulariser only).
        symmetric: Average both directions of every edge (an asymmetric distance).
    """

    paired: str
    matrix: str | None = None
    on_probabilities: bool = False
    symmetric: bool = False


REG_DISTANCES: dict[str, RegDistance] = {
    "sq_l2": RegDistance("sq_l2"),
    "l1": RegDistance("l1"),
    "cosine": RegDistance("cosine"),
    "mahalanobis": RegDistance("mahalanobis", matrix="learned"),
    "mahalanobis_pooled": RegDistance("mahalanobis", matrix="pooled"),
    "hist_intersection": RegDistance("hist_intersection"),
    "kl": RegDistance("kl", on_probabilities=True, symmetric=True),
    "js": RegDistance("js", on_probabilities=True),
}
"""The penalty's distances by name (module docstring)."""


@dataclass(frozen=True)
class MLPConfig:
    """The MLP (notebook 01's: hidden width 64, two layers, dropout 0.5).

    Args:
        hidden_channels: Width of the hidden layers (the embedding's width).
        layers: Linear layers (at least 2: the penalty needs a hidden embedding).
        dropout: Dropout on the hidden layers.
        input_dropout: Dropout on the input features.
    """

    hidden_channels: int = 64
    layers: int = 2
    dropout: float = 0.5
    input_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.layers < 2 or self.hidden_channels < 1:
            raise ValueError(f"the MLP needs layers >= 2 (a hidden embedding) and hidden_channels >= 1, got "
                             f"{self.layers} and {self.hidden_channels}.")  # fmt: skip
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.input_dropout < 1.0):
            raise ValueError(
                f"dropout and input_dropout must lie in [0, 1), got {self.dropout}, {self.input_dropout}."
            )


@dataclass(frozen=True)
class RegConfig:
    r"""The penalty.

    Args:
        kind: One of :data:`REGULARISERS`.
        distance: A key of :data:`REG_DISTANCES` (``"kl"``/``"js"``: on the predicted distributions, plain
            regulariser only).
        alpha: Its weight :math:`\alpha` in the loss.
        weights: Neural Graph Machines' weights of the labelled-labelled, labelled-unlabelled and
            unlabelled-unlabelled edges (multiplied by :attr:`alpha`).
        sheaf: The maps of the sheaf regulariser: ``"diag"``, ``"orth"`` or ``"gen"``.
        d: Its stalk dimension (divides the MLP's hidden width).
    """

    kind: str = "none"
    distance: str = "sq_l2"
    alpha: float = 0.0
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sheaf: str = "diag"
    d: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.kind not in REGULARISERS:
            raise ValueError(f"unknown regulariser {self.kind!r}: choose one of {', '.join(REGULARISERS)}.")
        if self.distance not in REG_DISTANCES:
            raise ValueError(f"unknown distance {self.distance!r}: choose one of {', '.join(REG_DISTANCES)}.")
        if self.kind == "sheaf" and REG_DISTANCES[self.distance].on_probabilities:
            raise ValueError(f"the sheaf regulariser compares restricted embeddings, not distributions: "
                             f"{self.distance!r} applies to the plain regulariser only.")  # fmt: skip
        if self.sheaf not in MAP_NORMALISERS:
            raise ValueError(f"unknown sheaf {self.sheaf!r}: choose one of {', '.join(MAP_NORMALISERS)}.")
        if self.alpha < 0 or len(self.weights) != 3 or min(self.weights) < 0:
            raise ValueError(
                f"alpha and the three edge-type weights must be >= 0, got {self.alpha}, {self.weights}."
            )


def _normalise_diag(fu: Tensor, fv: Tensor, eps: float) -> Tensor:
    return math.sqrt(2.0) / (fu.square() + fv.square() + eps).sqrt()  # per edge and coordinate


def _normalise_gen(fu: Tensor, fv: Tensor, eps: float) -> Tensor:
    d = fu.size(-1)
    norm = (fu.square().sum((1, 2)) + fv.square().sum((1, 2)) + eps).sqrt()
    return (math.sqrt(2.0 * d) / norm)[:, None, None]


MAP_NORMALISERS: dict[str, Callable[[Tensor, Tensor, float], Tensor] | None] = {
    "diag": _normalise_diag,
    "orth": None,  # orthogonal maps keep norms
    "gen": _normalise_gen,
}
"""Per sheaf type, the scale of every edge's pair of maps ``(F_u, F_v, eps) -> scale`` (module docstring)."""


def normalise_maps(maps: Tensor, num_edges: int, sheaf: str, eps: float = 1e-8) -> Tensor:
    r"""Rescale every edge's pair of maps to a fixed size (module docstring); orthogonal maps are returned as
    they are.

    Args:
        maps: ``(2E, d)`` diagonal or ``(2E, d, d)`` maps, the :math:`u` maps first (:class:`EdgeMaps` order).
        num_edges: :math:`E`.
        sheaf: A key of :data:`MAP_NORMALISERS`.
        eps: Added under the square root (a pair of zero maps stays zero instead of dividing by 0).

    **Shapes:** as ``maps``.
    """
    if sheaf not in MAP_NORMALISERS:
        raise ValueError(f"unknown sheaf {sheaf!r}: choose one of {', '.join(MAP_NORMALISERS)}.")
    expected = (2 * num_edges,) + ((maps.size(-1),) if sheaf == "diag" else (maps.size(-1), maps.size(-1)))
    if tuple(maps.shape) != expected:
        raise ValueError(f"{sheaf!r} maps of {num_edges} edges must have shape {expected} (both ends, u first), "
                         f"got {tuple(maps.shape)}.")  # fmt: skip
    scale = MAP_NORMALISERS[sheaf]
    if scale is None:
        return maps
    fu, fv = maps[:num_edges], maps[num_edges:]
    s = scale(fu, fv, eps)
    return torch.cat([fu * s, fv * s])


class RegularisedMLP(nn.Module):
    r"""The MLP and its penalty (module docstring).

    Args:
        in_features: Width of the input features.
        num_classes: Classes.
        mlp: The MLP.
        reg: The penalty.

    **Shapes:** :meth:`forward` :math:`(N, F) \to` ``(z, logits)`` of shapes :math:`(N, H)` (the
    pre-activation embedding) and :math:`(N, C)`.
    """

    def __init__(self, in_features: int, num_classes: int, mlp: MLPConfig, reg: RegConfig) -> None:
        super().__init__()
        self.mlp_cfg, self.reg_cfg = mlp, reg
        self.distance = REG_DISTANCES[reg.distance]
        widths = [in_features] + [mlp.hidden_channels] * (mlp.layers - 1)
        self.input_dropout = nn.Dropout(mlp.input_dropout)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(mlp.dropout)
        self.classifier = nn.Linear(mlp.hidden_channels, num_classes)
        self.metric: LearnedMahalanobis | None = None
        self.regulariser: nn.Module | None = None
        self._reversed: tuple[Tensor, Tensor] | None = None  # (edge_index, node ids reversed): symmetric kl
        if reg.kind == "sheaf" and mlp.hidden_channels % reg.d:
            raise ValueError(
                f"the stalk dimension d={reg.d} must divide hidden_channels={mlp.hidden_channels}."
            )
        if reg.kind == "none" or reg.alpha == 0:
            return  # no penalty is read: the plain MLP (its run key says so too)
        with (
            torch.random.fork_rng()
        ):  # the penalty draws nothing from the seed's stream, so every penalty's MLP
            self._build_penalty(
                mlp, reg
            )  # starts from the plain MLP's weights and dropout masks (paired runs)

    def _build_penalty(self, mlp: MLPConfig, reg: RegConfig) -> None:
        if self.distance.matrix == "learned":
            self.metric = LearnedMahalanobis(mlp.hidden_channels)
        if reg.kind == "graph":
            self.regulariser = GraphRegulariser(self.distance.paired, reg.weights, reduction="mean")
            return
        act = "tanh" if reg.sheaf == "orth" else "id"  # diag / gen: F = I + Phi, bounded by the rescaling
        self.regulariser = SheafRegulariser(
            mlp.hidden_channels, reg.d, reg.sheaf, self.distance.paired, weights=reg.weights, sheaf_act=act
        )
        with torch.no_grad():  # the first step is the plain regulariser (module docstring)
            self.regulariser.sheaf_learner.output_layer.weight.zero_()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.input_dropout(x)
        for layer in self.hidden[:-1]:
            h = self.dropout(torch.relu(layer(h)))
        z = self.hidden[-1](h)
        return z, self.classifier(self.dropout(torch.relu(z)))

    def _distance_kwargs(self, z: Tensor, y: Tensor | None, labelled: Tensor | None) -> Mapping[str, Any]:
        if self.distance.matrix is None:
            return {}
        dim = z.size(1)
        if self.metric is not None:
            low_rank = self.metric.matrix()
            m = 0.5 * torch.eye(dim, dtype=z.dtype, device=z.device) + (0.5 * dim) * low_rank / low_rank.trace(
            ).clamp_min(1e-8)  # fmt: skip
            return {"matrix": m}
        if y is None or labelled is None:
            raise ValueError("the class-pooled Mahalanobis penalty needs the labels y and the labelled mask.")
        with torch.no_grad():
            m = class_pooled_precision(z[labelled], y[labelled])
            m = m * (dim / m.trace().clamp_min(1e-8))
        return {"matrix": m}

    def maps(self, z: Tensor, edge_index: Tensor):
        """The sheaf regulariser's maps of every directed edge, learned from the embedding ``z`` (detached here)
        as the penalty uses them (rescaled, in the order of :class:`~mmsheaf.losses.graph_reg.EdgeMaps`)."""
        reg = self.regulariser
        if self.reg_cfg.kind != "sheaf" or not isinstance(reg, SheafRegulariser):
            raise ValueError("maps exist for the sheaf regulariser only (RegConfig(kind='sheaf')).")
        edge_maps = reg.maps(z.detach(), edge_index)
        raw = edge_maps.maps
        if self.reg_cfg.sheaf == "diag":
            raw = 1.0 + raw
        elif self.reg_cfg.sheaf == "gen":
            raw = torch.eye(reg.d, dtype=raw.dtype, device=raw.device) + raw
        return edge_maps._replace(maps=normalise_maps(raw, edge_maps.index.num_edges, self.reg_cfg.sheaf))

    def penalty(self, x: Tensor, z: Tensor, logits: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                labelled: Tensor | None = None, y: Tensor | None = None) -> Tensor:  # fmt: skip
        r"""The penalty :math:`\mathcal{R}` (without :math:`\alpha`; zero for ``kind="none"``).

        Args:
            x: Input features (unused: the sheaf maps are learned from ``z``; kept so that every penalty takes
                the same arguments).
            z, logits: The model's outputs.
            edge_index: The graph, both directions of every edge.
            edge_weight: Per-edge weights (equal on an edge and its reverse).
            labelled: Which nodes are labelled (Neural Graph Machines' edge types; the class-pooled Mahalanobis
                matrix); ``None``: one weight.
            y: The labels (read at the labelled nodes, by ``"mahalanobis_pooled"`` only).
        """
        if self.regulariser is None:
            return z.new_zeros(())
        kwargs = self._distance_kwargs(z, y, labelled)
        target = torch.softmax(logits, dim=1) if self.distance.on_probabilities else z
        if isinstance(self.regulariser, GraphRegulariser):
            value = self.regulariser(target, edge_index, edge_weight, labelled, **kwargs)
            if not self.distance.symmetric:
                return value
            # GraphRegulariser compares every edge as (u, v), u < v; reversing the node ids turns every edge
            # into (v, u), so the mean of the two is the distance averaged over both directions.
            n = target.size(0)
            if self._reversed is None or self._reversed[0] is not edge_index:
                self._reversed = (edge_index, (n - 1) - edge_index)
            flipped = None if labelled is None else labelled.flip(0)
            back = self.regulariser(target.flip(0), self._reversed[1], edge_weight, flipped, **kwargs)
            return 0.5 * (value + back)
        edge_maps = self.maps(z, edge_index)
        return self.regulariser(
            z, None, edge_maps.index, edge_weight, labelled, maps=edge_maps.maps, **kwargs
        )
