"""Evaluation of embeddings, shared by the studies: retrieval (MAP@R, R-Precision, P@1), clustering (NMI, AMI)
and classification probes (:mod:`~mmsheaf.evaluation.embeddings`). A building block: it imports no other
part of the library."""

from mmsheaf.evaluation.embeddings import (
    classification_metrics,
    clustering_metrics,
    evaluate_embeddings,
    retrieval_metrics,
)

__all__ = ["classification_metrics", "clustering_metrics", "evaluate_embeddings", "retrieval_metrics"]
