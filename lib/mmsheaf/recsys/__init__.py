"""The recommendation study (notebook 02): multimodal sheaves against graph and multimodal baselines on
user-item interactions.

- :mod:`~mmsheaf.recsys.registry`: the :class:`Recommender` interface and the registry :data:`RECOMMENDERS`
  (:func:`register_recommender`, :func:`build_recommender`).
- :mod:`~mmsheaf.recsys.models`: the baselines MF-BPR, LightGCN, VBPR and a late-fusion multimodal GCN.
- :mod:`~mmsheaf.recsys.sheaf`: the multimodal sheaf recommender and its id-only version.
- :mod:`~mmsheaf.recsys.coldstart`: the item cold-start baselines content-only, DropoutNet and CLCRec.
- :mod:`~mmsheaf.recsys.losses`: :func:`bpr_loss`, every model's objective unless it defines its own.
- :mod:`~mmsheaf.recsys.train`: :func:`fit_recommender` (BPR, early stopping on a validation metric).
- :mod:`~mmsheaf.recsys.evaluate`: :func:`ranking_metrics` / :func:`per_user_metrics` (Recall@K, NDCG@K).
- :mod:`~mmsheaf.recsys.synthetic`: :func:`planted_interactions`, a tiny data set with planted groups.
- :mod:`~mmsheaf.recsys.protocol`: what is run (run specs, cached runs over seeds, tuning) and the tables.
- :mod:`~mmsheaf.recsys.plan`: the notebook's lists of runs and searches, from its parameters (:class:`RecPlan`).
- :mod:`~mmsheaf.recsys.numbers`: the numbers the paper quotes.
- :mod:`~mmsheaf.recsys.ml1m`: the MovieLens-1M cold-start study of notebook 05 (a plan per protocol, its table
  and numbers).

The data container is :class:`mmsheaf.data.interactions.InteractionData`.
"""

from mmsheaf.recsys.evaluate import METRIC_NAMES, metric_keys, per_user_metrics, ranking_metrics
from mmsheaf.recsys.registry import (
    RECOMMENDERS,
    Recommender,
    RecommenderSpec,
    build_recommender,
    modality_mask,
    recommender_names,
    register_recommender,
    resolve_recommender,
)
from mmsheaf.recsys.models import (  # registers the baselines first: "mf", "lightgcn", "vbpr", "late-fusion"
    MF,
    VBPR,
    LateFusionGCN,
    LightGCN,
    lightgcn_propagate,
    symmetric_spmm,
)
from mmsheaf.recsys.sheaf import IdSheafRec, MultimodalSheafRec  # then "mm-sheaf" and "sheaf-id"
from mmsheaf.recsys.coldstart import CLCRec, ContentRec, DropoutNet  # then "content", "dropoutnet", "clcrec"
from mmsheaf.recsys.synthetic import planted_interactions
from mmsheaf.recsys.train import (
    BPRSampler,
    NonFiniteTrainingError,
    RecFitResult,
    RecTrainConfig,
    bpr_loss,
    evaluate_recommender,
    fit_recommender,
    interactions_to,
)

__all__ = [
    "CLCRec",
    "ContentRec",
    "DropoutNet",
    "IdSheafRec",
    "MultimodalSheafRec",
    "NonFiniteTrainingError",
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
