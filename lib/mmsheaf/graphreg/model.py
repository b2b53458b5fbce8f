r"""The model of the graph-regularisation study: an MLP whose hidden embedding a graph regulariser shapes.

A :class:`RegularisedMLP` is the MLP of notebook 01 (``layers`` linear layers, ReLU and dropout between them):
its last hidden layer is the embedding :math:`h` and a linear layer reads the classes from it. Training adds a
penalty on the edges of a graph (:class:`RegConfig`) to the cross-entropy,

.. math::
    \mathcal{L} = \mathcal{L}_{CE} + \alpha\, \mathcal{R}(H),

where :math:`\mathcal{R}` is the plain regulariser of Neural Graph Machines (Bui et al., WSDM 2018,
`arXiv:1703.04818 <https://arxiv.org/abs/1703.04818>`_), :math:`\sum_{(u,v)} \alpha_{\tau(u,v)} w_{uv}\,
d(h_u, h_v)`, or this project's sheaf regulariser :math:`\sum_e \alpha_{\tau(e)} w_e\, d(\mathcal{F}_{u
\trianglelefteq e} h_u, \mathcal{F}_{v \trianglelefteq e} h_v)` with maps learned from the endpoints' input
features (:class:`~mmsheaf.losses.graph_reg.SheafRegulariser`). The graph is read only by the penalty: at
inference the model is the MLP, at the MLP's cost.

**No trivial zero.** The penalty is the only term that sees the maps (and a learned Mahalanobis matrix), so left
alone it would shrink them to 0. Here every edge's pair of maps is rescaled to a fixed size: diagonal maps so
that :math:`f_{u,i}^2 + f_{v,i}^2 = 2` for every coordinate :math:`i` (the plain regulariser is
:math:`f_u = f_v = 1`; a heterophilic edge may take :math:`f_u = -f_v`), general maps so that
:math:`\|\mathcal{F}_u\|_F^2 + \|\mathcal{F}_v\|_F^2 = 2d`; orthogonal maps keep norms already. A learned
Mahalanobis matrix is rescaled to trace :math:`D`. For KL and JS the penalty compares the predicted class
distributions :math:`\operatorname{softmax}(\text{logits})` instead of the embeddings (as Neural Structured
Learning offers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mmsheaf.losses.distances import PAIRED_DISTANCES, PROBABILITY_DISTANCES, LearnedMahalanobis
from mmsheaf.losses.graph_reg import GraphRegulariser, SheafRegulariser

__all__ = ["REGULARISERS", "MLPConfig", "RegConfig", "RegularisedMLP", "normalise_maps"]

REGULARISERS: tuple[str, ...] = ("none", "graph", "sheaf")
"""The penalties: none (the plain MLP), the plain graph regulariser, the sheaf regulariser."""


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
        distance: A key of :data:`~mmsheaf.losses.distances.PAIRED_DISTANCES` (``"kl"``/``"js"``: on the
            predicted distributions, plain regulariser only).
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
        if self.distance not in PAIRED_DISTANCES:
            raise ValueError(
                f"unknown distance {self.distance!r}: choose one of {', '.join(PAIRED_DISTANCES)}."
            )
        if self.kind == "sheaf" and self.distance in PROBABILITY_DISTANCES:
            raise ValueError(f"the sheaf regulariser compares restricted embeddings, not distributions: "
                             f"{self.distance!r} applies to the plain regulariser only.")  # fmt: skip
        if self.alpha < 0 or len(self.weights) != 3 or min(self.weights) < 0:
            raise ValueError(
                f"alpha and the three edge-type weights must be >= 0, got {self.alpha}, {self.weights}."
            )


def normalise_maps(maps: Tensor, num_edges: int, sheaf: str, eps: float = 1e-8) -> Tensor:
    r"""Rescale every edge's pair of maps to a fixed size (module docstring); orthogonal maps are returned as
    they are.

    Args:
        maps: ``(2E, d)`` diagonal or ``(2E, d, d)`` maps, the :math:`u` maps first (:class:`EdgeMaps` order).
        num_edges: :math:`E`.
        sheaf: ``"diag"``, ``"orth"`` or ``"gen"``.

    **Shapes:** as ``maps``.
    """
    if sheaf == "orth":
        return maps
    fu, fv = maps[:num_edges], maps[num_edges:]
    if sheaf == "diag":
        scale = math.sqrt(2.0) / (fu.square() + fv.square() + eps).sqrt()  # per edge and coordinate
    else:
        d = maps.size(-1)
        norm = (fu.square().sum((1, 2)) + fv.square().sum((1, 2)) + eps).sqrt()
        scale = (math.sqrt(2.0 * d) / norm)[:, None, None]
    return torch.cat([fu * scale, fv * scale])


class RegularisedMLP(nn.Module):
    r"""The MLP and its penalty (module docstring).

    Args:
        in_features: Width of the input features.
        num_classes: Classes.
        mlp: The MLP.
        reg: The penalty.

    **Shapes:** :meth:`forward` :math:`(N, F) \to` ``(h, logits)`` of shapes :math:`(N, H)` and :math:`(N, C)`.
    """

    def __init__(self, in_features: int, num_classes: int, mlp: MLPConfig, reg: RegConfig) -> None:
        super().__init__()
        self.mlp_cfg, self.reg_cfg = mlp, reg
        widths = [in_features] + [mlp.hidden_channels] * (mlp.layers - 1)
        self.input_dropout = nn.Dropout(mlp.input_dropout)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(mlp.dropout)
        self.classifier = nn.Linear(mlp.hidden_channels, num_classes)
        self.metric = LearnedMahalanobis(mlp.hidden_channels) if reg.distance == "mahalanobis" else None
        self.regulariser: nn.Module | None = None
        if reg.kind == "graph":
            self.regulariser = GraphRegulariser(reg.distance, reg.weights, reduction="mean")
        elif reg.kind == "sheaf":
            if mlp.hidden_channels % reg.d:
                raise ValueError(
                    f"the stalk dimension d={reg.d} must divide hidden_channels={mlp.hidden_channels}."
                )
            self.regulariser = SheafRegulariser(
                in_features, reg.d, reg.sheaf, reg.distance, weights=reg.weights
            )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.input_dropout(x)
        for i, layer in enumerate(self.hidden):
            h = torch.relu(layer(h if i == 0 else self.dropout(h)))
        return h, self.classifier(self.dropout(h))

    def _distance_kwargs(self) -> Mapping[str, Any]:
        if self.metric is None:
            return {}
        m = self.metric.matrix()
        return {"matrix": m * (m.size(0) / m.diagonal().sum().clamp_min(1e-8))}  # trace D: no trivial zero

    def penalty(self, x: Tensor, h: Tensor, logits: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                labelled: Tensor | None = None) -> Tensor:  # fmt: skip
        r"""The penalty :math:`\mathcal{R}` (without :math:`\alpha`; zero for ``kind="none"``).

        Args:
            x: Input features (the sheaf maps are learned from them).
            h, logits: The model's outputs.
            edge_index: The graph, both directions of every edge.
            edge_weight: Per-edge weights (equal on an edge and its reverse).
            labelled: Which nodes are labelled (Neural Graph Machines' edge types); ``None``: one weight.
        """
        if self.regulariser is None:
            return h.new_zeros(())
        target = torch.softmax(logits, dim=1) if self.reg_cfg.distance in PROBABILITY_DISTANCES else h
        if isinstance(self.regulariser, GraphRegulariser):
            return self.regulariser(target, edge_index, edge_weight, labelled, **self._distance_kwargs())
        reg = self.regulariser
        edge_maps = reg.maps(x, edge_index)
        maps = normalise_maps(edge_maps.maps, edge_maps.index.num_edges, self.reg_cfg.sheaf)
        return reg(h, None, edge_maps.index, edge_weight, labelled, maps=maps, **self._distance_kwargs())
