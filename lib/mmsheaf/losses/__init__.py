"""Metric-learning losses behind one interface: ``build_loss(name, C, D)(embeddings, labels) -> scalar``.

- :mod:`~mmsheaf.losses.registry`: :class:`LossSpec` (name, family, hyperparameters, Optuna search space),
  :class:`MetricLoss` (a PML loss and its miner), :data:`METRIC_LOSSES`, :func:`resolve_loss`,
  :func:`build_loss`;
- :mod:`~mmsheaf.losses.margin`: angular-margin classification heads (ArcFace, Sub-center ArcFace,
  CosFace, NormSoftmax);
- :mod:`~mmsheaf.losses.contrastive`: pair-based losses (SupCon, NT-Xent, semi-hard triplet,
  multi-similarity) and :func:`stack_views` for the two-view NT-Xent;
- :mod:`~mmsheaf.losses.ssl`: the non-contrastive self-supervised losses (SimSiam / BYOL's
  :class:`PredictionLoss`, :class:`BarlowTwinsLoss`, :class:`VICRegLoss`) and the view distances they compare
  two views with (:data:`VIEW_DISTANCES`); these take two views, not labels, and are not in the registry.
- :mod:`~mmsheaf.losses.distances`: the distances a graph regulariser compares neighbours with
  (:data:`PAIRED_DISTANCES`: squared L2, L1, cosine, Mahalanobis, histogram intersection, KL, JS;
  :func:`paired_distance`), their retrieval form (:func:`pairwise_distance`), a learned metric
  (:class:`LearnedMahalanobis`) and the class-pooled precision (:func:`class_pooled_precision`).
- :mod:`~mmsheaf.losses.graph_reg`: graph regularisers of embeddings over the edges of a training graph:
  Neural Graph Machines' :class:`GraphRegulariser` (per-edge-type weights, :func:`edge_types`) and the sheaf
  regulariser :class:`SheafRegulariser` (neighbours compared after restriction maps learned as in NSD).

The metric-learning losses come from `pytorch-metric-learning <https://kevinmusgrave.github.io/pytorch-metric-learning/>`_.
"""

from .contrastive import (
    CONTRASTIVE_LOSSES,
    DenseNTXentLoss,
    multisimilarity,
    ntxent,
    stack_views,
    supcon,
    triplet,
)
from .distances import (
    PAIRED_DISTANCES,
    PROBABILITY_DISTANCES,
    LearnedMahalanobis,
    class_pooled_precision,
    cosine,
    hist_intersection,
    histogram,
    js,
    kl,
    l1,
    mahalanobis,
    paired_distance,
    pairwise_distance,
    sq_l2,
)
from .graph_reg import (
    EDGE_TYPES,
    REDUCTIONS,
    EdgeMaps,
    GraphRegulariser,
    SheafRegulariser,
    edge_types,
    restrict_stalks,
)
from .margin import MARGIN_LOSSES, arcface, cosface, normsoftmax, subcenter_arcface
from .registry import FAMILIES, METRIC_LOSSES, LossSpec, MetricLoss, build_loss, register_loss, resolve_loss
from .ssl import VIEW_DISTANCES, BarlowTwinsLoss, PredictionLoss, VICRegLoss, view_distance

for _spec in (*MARGIN_LOSSES, *CONTRASTIVE_LOSSES):  # registry order: the angular-margin family first
    register_loss(_spec)
del _spec

__all__ = [
    "CONTRASTIVE_LOSSES",
    "EDGE_TYPES",
    "FAMILIES",
    "MARGIN_LOSSES",
    "METRIC_LOSSES",
    "PAIRED_DISTANCES",
    "PROBABILITY_DISTANCES",
    "REDUCTIONS",
    "VIEW_DISTANCES",
    "BarlowTwinsLoss",
    "DenseNTXentLoss",
    "EdgeMaps",
    "GraphRegulariser",
    "LearnedMahalanobis",
    "LossSpec",
    "MetricLoss",
    "PredictionLoss",
    "SheafRegulariser",
    "VICRegLoss",
    "arcface",
    "build_loss",
    "class_pooled_precision",
    "cosface",
    "cosine",
    "edge_types",
    "hist_intersection",
    "histogram",
    "js",
    "kl",
    "l1",
    "mahalanobis",
    "multisimilarity",
    "normsoftmax",
    "ntxent",
    "paired_distance",
    "pairwise_distance",
    "register_loss",
    "resolve_loss",
    "restrict_stalks",
    "sq_l2",
    "stack_views",
    "subcenter_arcface",
    "supcon",
    "triplet",
    "view_distance",
]
