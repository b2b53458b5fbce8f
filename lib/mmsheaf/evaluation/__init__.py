"""Evaluation of embeddings, shared by the studies: retrieval (MAP@R, R-Precision, P@1), clustering (NMI, AMI)
and classification probes (:mod:`~mmsheaf.evaluation.embeddings`), and label-free collapse diagnostics
(normalised std, singular and covariance spectra, RankMe, α-ReQ, effective dimensions;
:mod:`~mmsheaf.evaluation.collapse`), and retrieval under any distance of :mod:`mmsheaf.losses.distances`
(:mod:`~mmsheaf.evaluation.distance_retrieval`: squared L2, L1, cosine, learned and class-pooled Mahalanobis,
histogram intersection). A building block: it imports only the other building blocks (the distances)."""

from mmsheaf.evaluation.collapse import (
    alpha_req,
    collapse_diagnostics,
    covariance_spectrum,
    effective_dims,
    normalised_std,
    rankme,
    singular_values,
)
from mmsheaf.evaluation.embeddings import (
    classification_metrics,
    clustering_metrics,
    evaluate_embeddings,
    retrieval_metrics,
)

__all__ = [
    "alpha_req",
    "classification_metrics",
    "clustering_metrics",
    "collapse_diagnostics",
    "covariance_spectrum",
    "effective_dims",
    "evaluate_embeddings",
    "normalised_std",
    "rankme",
    "retrieval_metrics",
    "singular_values",
]
