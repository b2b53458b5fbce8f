r"""Evaluation of an embedding: retrieval, clustering and a fixed classification probe.

The same three views serve every loss, with or without a class head, so that ArcFace-style heads and
contrastive losses are compared on equal terms:

- **retrieval** (:func:`retrieval_metrics`): MAP@R, R-Precision and P@1 with cosine neighbours, as defined
  in `A Metric Learning Reality Check <https://arxiv.org/abs/2003.08505>`_ (Musgrave et al., ECCV 2020)
  and computed by pytorch-metric-learning's ``AccuracyCalculator``;
- **clustering** (:func:`clustering_metrics`): NMI and AMI of k-means on the L2-normalised embeddings;
- **classification** (:func:`classification_metrics`): accuracy and macro-F1 of a probe fitted on training
  embeddings, a cosine k-NN vote or a logistic regression.

.. code-block:: python

    scores = evaluate_embeddings(test_emb, test_y, train_emb, train_y)
    # {"map_at_r", "r_precision", "p_at_1", "n_queries", "nmi", "ami", "accuracy", "macro_f1"}
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score, f1_score, normalized_mutual_info_score
from torch import Tensor

__all__ = [
    "CLASSIFICATION_METRICS",
    "CLUSTERING_METRICS",
    "PROBES",
    "RETRIEVAL_METRICS",
    "classification_metrics",
    "clustering_metrics",
    "evaluate_embeddings",
    "retrieval_metrics",
]

RETRIEVAL_METRICS: tuple[str, ...] = ("map_at_r", "r_precision", "p_at_1")
CLUSTERING_METRICS: tuple[str, ...] = ("nmi", "ami")
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "macro_f1")

_PML_NAMES = {  # our key -> AccuracyCalculator's
    "map_at_r": "mean_average_precision_at_r",
    "r_precision": "r_precision",
    "p_at_1": "precision_at_1",
}


def _as_inputs(
    embeddings: Tensor | ArrayLike, labels: Tensor | ArrayLike, what: str = ""
) -> tuple[Tensor, Tensor]:
    """``(N, D)`` float and ``(N,)`` long CPU-or-device tensors, checked."""
    x = torch.as_tensor(embeddings)
    y = torch.as_tensor(labels, device=x.device)
    name = f"{what}embeddings"
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) matrix, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if y.shape != x.shape[:1]:
        raise ValueError(f"{what}labels must be (N,) = ({x.shape[0]},) like the {name}, got {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{what}labels must be integers, got {y.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or inf values: check the model (or its learning rate)")
    return x.detach(), y.long()


# --------------------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------------------


def retrieval_metrics(
    embeddings: Tensor | ArrayLike,
    labels: Tensor | ArrayLike,
    chunk_size: int = 1024,
    query_mask: Tensor | ArrayLike | None = None,
    distance: BaseDistance | None = None,
) -> dict[str, float]:
    r"""MAP@R, R-Precision and P@1 of retrieval within one set (`A Metric Learning Reality Check
    <https://arxiv.org/abs/2003.08505>`_), neighbours ranked by cosine similarity unless ``distance`` says
    otherwise.

    Each row is a query against all *other* rows. With :math:`R` the number of other rows with the query's
    label and :math:`\text{rel}(i) = 1` when the :math:`i`-th nearest neighbour has that label,

    .. math::
        \text{R-Precision} = \frac{1}{R}\sum_{i=1}^{R} \text{rel}(i), \qquad
        \text{MAP@R} = \frac{1}{R}\sum_{i=1}^{R} P(i)\,\text{rel}(i), \quad
        P(i) = \frac{1}{i}\sum_{j=1}^{i} \text{rel}(j),

    and P@1 is :math:`\text{rel}(1)`; each is averaged over the queries. Rows whose label occurs once
    (:math:`R = 0`) are no queries but still serve as neighbours of the others.

    Computed by pytorch-metric-learning's ``AccuracyCalculator`` (``k="max_bin_count"``,
    ``CustomKNN(distance)``), on ``chunk_size`` queries at a time so that memory stays
    :math:`O(\text{chunk} \cdot (N + R_{\max}))`: a whole 12k-row set at once would hold several
    :math:`N \times R_{\max}` int64/float64 matrices. Order among exactly tied similarities is torch's.

    Args:
        embeddings: the embeddings (need not be normalised).
        labels: integer labels.
        chunk_size: queries per ``AccuracyCalculator`` call.
        query_mask: :math:`(N,)` bool: only these rows are queries (e.g. the rows whose text is missing);
            every row still serves as a neighbour. ``None``: every row.
        distance: the pytorch-metric-learning distance that ranks the neighbours (e.g.
            :func:`~mmsheaf.evaluation.distance_retrieval.fit_distance`); ``None``: ``CosineSimilarity()``.

    Returns:
        ``{"map_at_r", "r_precision", "p_at_1"}`` as fractions in :math:`[0, 1]`, and ``"n_queries"``
        (an int: rows whose label occurs at least twice).

    Raises:
        ValueError: no label occurs twice (no valid query), a non-positive ``chunk_size``, or malformed input.

    **Shapes:** input ``embeddings`` :math:`(N, D)`, ``labels`` :math:`(N,)`.
    """
    x, y = _as_inputs(embeddings, labels)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    _, y, counts = torch.unique(y, return_inverse=True, return_counts=True)  # labels 0..L-1 (exact as floats)
    is_query = counts[y] > 1
    if query_mask is not None:
        mask = torch.as_tensor(query_mask, device=y.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (len(y),):
            raise ValueError(f"query_mask must be a bool tensor of shape ({len(y)},), got "
                             f"{mask.dtype} {tuple(mask.shape)}")  # fmt: skip
        is_query &= mask
    queries = torch.nonzero(is_query).squeeze(1)
    if queries.numel() == 0:
        raise ValueError(
            f"No valid query among {len(y)} rows: every label occurs once, so no row has a relevant "
            "neighbour; retrieval metrics need at least two rows sharing a label"
        )
    calculator = AccuracyCalculator(
        include=tuple(_PML_NAMES.values()),
        k="max_bin_count",
        knn_func=CustomKNN(CosineSimilarity() if distance is None else distance),
        device=x.device,
    )
    totals = dict.fromkeys(RETRIEVAL_METRICS, 0.0)
    for start in range(0, queries.numel(), chunk_size):
        chunk = queries[start : start + chunk_size]
        rest = torch.ones(len(y), dtype=torch.bool, device=y.device)
        rest[chunk] = False
        # AccuracyCalculator excludes each query from its own neighbours when the reference set starts
        # with the queries (ref_includes_query=True): put the chunk first, then every other row.
        order = torch.cat([chunk, torch.nonzero(rest).squeeze(1)])
        reference, reference_labels = x[order], y[order]
        scores = calculator.get_accuracy(
            reference[: len(chunk)],
            reference_labels[: len(chunk)],
            reference,
            reference_labels,
            ref_includes_query=True,
        )
        for key, pml_key in _PML_NAMES.items():
            totals[key] += float(scores[pml_key]) * len(chunk)
    result: dict[str, float] = {key: total / queries.numel() for key, total in totals.items()}
    result["n_queries"] = int(queries.numel())
    return result


# --------------------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------------------


def clustering_metrics(
    embeddings: Tensor | ArrayLike,
    labels: Tensor | ArrayLike,
    n_clusters: int | None = None,
    seed: int = 0,
    n_init: int = 10,
) -> dict[str, float]:
    r"""NMI and AMI between the labels and k-means clusters of the L2-normalised embeddings.

    sklearn's ``KMeans`` (k-means++ initialisation, best of ``n_init`` runs) on
    :math:`x / \lVert x \rVert` (so Euclidean k-means ranks like cosine), then
    ``normalized_mutual_info_score`` and ``adjusted_mutual_info_score`` (which corrects NMI for chance).

    Args:
        embeddings: the embeddings.
        labels: integer labels.
        n_clusters: number of clusters :math:`k`; default the number of distinct labels.
        seed: k-means random state.
        n_init: k-means restarts.

    Returns:
        ``{"nmi", "ami"}`` (NMI in :math:`[0, 1]`, AMI at most 1, about 0 for chance).

    **Shapes:** input ``embeddings`` :math:`(N, D)`, ``labels`` :math:`(N,)`.
    """
    x, y = _as_inputs(embeddings, labels)
    k = int(torch.unique(y).numel()) if n_clusters is None else n_clusters
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"n_clusters must lie in 1..{x.shape[0]} (the number of rows), got {k}")
    points = F.normalize(x.float(), dim=1).cpu().numpy()
    clusters = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(points)
    truth = y.cpu().numpy()
    return {
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "ami": float(adjusted_mutual_info_score(truth, clusters)),
    }


# --------------------------------------------------------------------------------------------------------
# Classification probes
# --------------------------------------------------------------------------------------------------------


def _knn_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor, k: int) -> Tensor:
    """Cosine k-NN majority vote; a tie goes to the tied class with the most similar neighbour."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    k = min(k, train_x.shape[0])
    # Exactly tied similarities (duplicate rows, e.g. discrete tabular features) are returned in storage
    # order by topk, which can favour one class systematically; a fixed shuffle makes the tied neighbours a
    # random sample of the tie, so the vote follows the classes of the duplicates.
    perm = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(0)).to(train_x.device)
    train_x, train_y = train_x[perm], train_y[perm]
    classes, train_idx = torch.unique(train_y, return_inverse=True)
    knn = CustomKNN(CosineSimilarity(), batch_size=1024)
    _, neighbours = knn(test_x, k, train_x, False)  # (M, k), most similar first
    votes = train_idx[neighbours]
    counts = torch.zeros(len(test_x), len(classes), dtype=torch.long, device=votes.device)
    counts.scatter_add_(1, votes, torch.ones_like(votes))
    rank = torch.arange(k, device=votes.device).expand_as(votes)
    first = torch.full_like(counts, k).scatter_reduce_(1, votes, rank, reduce="amin")  # best rank per class
    return classes[torch.argmax(counts * (k + 1) - first, dim=1)]


def _linear_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor, k: int) -> Tensor:
    """sklearn ``LogisticRegression(max_iter=1000)`` on the embeddings (``k`` is unused)."""
    if torch.unique(train_y).numel() < 2:
        raise ValueError("The linear probe needs at least two classes in the training labels")
    model = LogisticRegression(max_iter=1000).fit(train_x.cpu().numpy(), train_y.cpu().numpy())
    return torch.as_tensor(model.predict(test_x.cpu().numpy()))


PROBES: dict[str, Callable[[Tensor, Tensor, Tensor, int], Tensor]] = {
    "knn": _knn_predict,
    "linear": _linear_predict,
}
"""Classification probes by name: ``probe(train_x, train_y, test_x, k) -> predicted test labels``."""


def classification_metrics(
    train_embeddings: Tensor | ArrayLike,
    train_labels: Tensor | ArrayLike,
    test_embeddings: Tensor | ArrayLike,
    test_labels: Tensor | ArrayLike,
    method: str = "knn",
    k: int = 10,
) -> dict[str, float]:
    r"""Accuracy and macro-F1 of a probe fitted on the training embeddings, the same for every loss.

    ``"knn"``: majority vote of the ``k`` training rows most cosine-similar to a test row (a tie goes to
    the tied class whose neighbour is the most similar); ``"linear"``: sklearn
    ``LogisticRegression(max_iter=1000)`` on the embeddings (see :data:`PROBES`). Macro-F1 is the
    unweighted mean of the per-class F1 over the classes present in ``test_labels`` (a class that is
    never predicted has F1 = 0).

    Args:
        train_embeddings: embeddings of the rows the probe is fitted on.
        train_labels: their integer labels.
        test_embeddings: embeddings of the evaluated rows.
        test_labels: their integer labels.
        method: ``"knn"`` or ``"linear"``.
        k: neighbours of the k-NN vote (at most the number of training rows).

    Returns:
        ``{"accuracy", "macro_f1"}`` in :math:`[0, 1]`.

    **Shapes:** ``train_embeddings`` :math:`(N, D)`, ``train_labels`` :math:`(N,)`, ``test_embeddings``
    :math:`(M, D)`, ``test_labels`` :math:`(M,)`.
    """
    if method not in PROBES:
        raise ValueError(f"Unknown classification method {method!r}: choose one of {', '.join(PROBES)}")
    train_x, train_y = _as_inputs(train_embeddings, train_labels, "train_")
    test_x, test_y = _as_inputs(test_embeddings, test_labels, "test_")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            "train and test embeddings must have the same size D, got "
            f"{train_x.shape[1]} and {test_x.shape[1]}"
        )
    predicted = PROBES[method](train_x, train_y, test_x.to(train_x.device, train_x.dtype), k).cpu().numpy()
    truth = test_y.cpu().numpy()
    f1 = f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0)
    return {"accuracy": float(np.mean(predicted == truth)), "macro_f1": float(f1)}


def evaluate_embeddings(
    embeddings: Tensor | ArrayLike,
    labels: Tensor | ArrayLike,
    train_embeddings: Tensor | ArrayLike | None = None,
    train_labels: Tensor | ArrayLike | None = None,
    method: str = "knn",
    k: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`retrieval_metrics` and :func:`clustering_metrics` of one set, and, given training embeddings,
    :func:`classification_metrics` of the set with a probe fitted on them.

    Args:
        embeddings: the evaluated (test) embeddings.
        labels: their integer labels.
        train_embeddings: embeddings to fit the classification probe on (``None``: no classification).
        train_labels: their labels.
        method: classification probe, ``"knn"`` or ``"linear"``.
        k: neighbours of the k-NN probe.
        seed: k-means random state.

    Returns:
        The keys of the three functions merged: ``map_at_r, r_precision, p_at_1, n_queries, nmi, ami`` and
        ``accuracy, macro_f1`` when training embeddings are given.

    **Shapes:** ``embeddings`` :math:`(M, D)`, ``labels`` :math:`(M,)`, ``train_embeddings``
    :math:`(N, D)`, ``train_labels`` :math:`(N,)`.
    """
    if (train_embeddings is None) != (train_labels is None):
        raise ValueError("Give both train_embeddings and train_labels, or neither")
    result = {**retrieval_metrics(embeddings, labels), **clustering_metrics(embeddings, labels, seed=seed)}
    if train_embeddings is not None:
        result |= classification_metrics(train_embeddings, train_labels, embeddings, labels, method, k)
    return result
