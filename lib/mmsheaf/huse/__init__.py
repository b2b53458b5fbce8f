"""HUSE baselines (`Narayana et al., 2019 <https://arxiv.org/abs/1911.05978>`_): one universal embedding space
for any number of modalities, trained with a shared classification layer, a semantic-graph loss and a
cross-modal gap loss, and scored by hierarchical precision over the class hierarchy.

- :mod:`~mmsheaf.huse.losses`: :func:`classification_loss`, :func:`semantic_graph_loss`,
  :func:`cross_modal_gap_loss` and their weighted sum :class:`HuseLoss` (:class:`HuseLossConfig`);
- :mod:`~mmsheaf.huse.hierarchy`: :class:`ClassHierarchy` (the Division > Department > Class tree, the texts
  whose embeddings give the semantic graph, :meth:`ClassHierarchy.semantic_distance`) and
  :func:`hierarchical_precision` (HP@K);
- :mod:`~mmsheaf.huse.model`: :class:`HuseModel`, one tower per modality (:class:`EncoderTower`: notebook
  03's encoders, one modality each; :class:`FeatureTower`: any precomputed features) and one shared
  classification layer;
- :mod:`~mmsheaf.huse.train`: how one run trains (:func:`train_huse`, early stopping on the validation MAP@R
  of the fused embeddings).
"""

from .hierarchy import HUSE_LEVELS, ClassHierarchy, hierarchical_precision
from .model import EncoderTower, FeatureTower, HuseModel, HuseOutput
from .train import HuseTrainConfig, HuseTrainResult, train_huse
from .losses import (
    HuseLoss,
    HuseLossConfig,
    HuseLossParts,
    classification_loss,
    cosine_distance,
    cross_modal_gap_loss,
    observed_matrix,
    pairwise_cosine_distance,
    semantic_graph_loss,
)

__all__ = [
    "HUSE_LEVELS",
    "ClassHierarchy",
    "EncoderTower",
    "FeatureTower",
    "HuseModel",
    "HuseOutput",
    "HuseTrainConfig",
    "HuseTrainResult",
    "HuseLoss",
    "HuseLossConfig",
    "HuseLossParts",
    "classification_loss",
    "cosine_distance",
    "cross_modal_gap_loss",
    "hierarchical_precision",
    "observed_matrix",
    "pairwise_cosine_distance",
    "semantic_graph_loss",
    "train_huse",
]
