"""Recommendation on multimodal user-item interactions: models, BPR training and full-ranking evaluation.

- :mod:`~mmsheaf.recsys.models`: the :class:`Recommender` interface, the registry :data:`RECOMMENDERS`
  (:func:`register_recommender`, :func:`build_recommender`) and the baselines MF-BPR, LightGCN, VBPR and a
  late-fusion multimodal GCN.
- :mod:`~mmsheaf.recsys.train`: :func:`fit_recommender` (BPR, early stopping on a validation metric).
- :mod:`~mmsheaf.recsys.evaluate`: :func:`ranking_metrics` / :func:`per_user_metrics` (Recall@K, NDCG@K).
- :mod:`~mmsheaf.recsys.synthetic`: :func:`planted_interactions`, a tiny data set with planted groups.

The data container is :class:`mmsheaf.data.interactions.InteractionData`.
"""

from mmsheaf.recsys.evaluate import METRIC_NAMES, metric_keys, per_user_metrics, ranking_metrics
from mmsheaf.recsys.models import (
    MF,
    RECOMMENDERS,
    VBPR,
    LateFusionGCN,
    LightGCN,
    Recommender,
    RecommenderSpec,
    build_recommender,
    lightgcn_propagate,
    symmetric_spmm,
    modality_mask,
    recommender_names,
    register_recommender,
    resolve_recommender,
)
from mmsheaf.recsys.synthetic import planted_interactions
from mmsheaf.recsys.train import (
    BPRSampler,
    RecFitResult,
    RecTrainConfig,
    bpr_loss,
    evaluate_recommender,
    fit_recommender,
    interactions_to,
)

from mmsheaf.recsys import sheaf as _sheaf  # noqa: E402,F401  (registers "mm-sheaf" and "sheaf-id")
from mmsheaf.recsys.sheaf import IdSheafRec, MultimodalSheafRec  # noqa: E402

__all__ = [
    "IdSheafRec",
    "MultimodalSheafRec",
    "METRIC_NAMES",
    "MF",
    "RECOMMENDERS",
    "VBPR",
    "BPRSampler",
    "LateFusionGCN",
    "LightGCN",
    "RecFitResult",
    "RecTrainConfig",
    "Recommender",
    "RecommenderSpec",
    "bpr_loss",
    "build_recommender",
    "evaluate_recommender",
    "fit_recommender",
    "interactions_to",
    "lightgcn_propagate",
    "symmetric_spmm",
    "metric_keys",
    "modality_mask",
    "per_user_metrics",
    "planted_interactions",
    "ranking_metrics",
    "recommender_names",
    "register_recommender",
    "resolve_recommender",
]
