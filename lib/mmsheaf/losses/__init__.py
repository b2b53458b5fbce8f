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
from .margin import MARGIN_LOSSES, arcface, cosface, normsoftmax, subcenter_arcface
from .registry import FAMILIES, METRIC_LOSSES, LossSpec, MetricLoss, build_loss, register_loss, resolve_loss
from .ssl import VIEW_DISTANCES, BarlowTwinsLoss, PredictionLoss, VICRegLoss, view_distance

for _spec in (*MARGIN_LOSSES, *CONTRASTIVE_LOSSES):  # registry order: the angular-margin family first
    register_loss(_spec)
del _spec

__all__ = [
    "CONTRASTIVE_LOSSES",
    "FAMILIES",
    "MARGIN_LOSSES",
    "METRIC_LOSSES",
    "VIEW_DISTANCES",
    "BarlowTwinsLoss",
    "DenseNTXentLoss",
    "LossSpec",
    "MetricLoss",
    "PredictionLoss",
    "VICRegLoss",
    "arcface",
    "build_loss",
    "cosface",
    "multisimilarity",
    "normsoftmax",
    "ntxent",
    "register_loss",
    "resolve_loss",
    "stack_views",
    "subcenter_arcface",
    "supcon",
    "triplet",
    "view_distance",
]
