r"""Retrieval metrics of embeddings under each distance measure (issue 18, experiment 4).

MAP@R, R-Precision and P@1 (`A Metric Learning Reality Check <https://arxiv.org/abs/2003.08505>`_, Musgrave
et al. 2020; defined in :func:`~mmsheaf.evaluation.embeddings.retrieval_metrics`) with the neighbours ranked
by one of the distances of :data:`RETRIEVAL_DISTANCES` (formulas in :mod:`mmsheaf.losses.distances`):

- ``sq_l2``, ``l1``, ``cosine``: the squared Euclidean, Manhattan and cosine distances;
- ``mahalanobis_pooled``: :math:`(a - b)^{\top} S_w^{-1} (a - b)`, :math:`S_w` the class-pooled within-class
  covariance of a *training* set (:func:`~mmsheaf.losses.distances.class_pooled_precision`);
- ``mahalanobis_learned``: :math:`(a - b)^{\top} A^{\top} A (a - b)`, :math:`A` fitted on a training set by
  Neighbourhood Components Analysis (Goldberger et al., NeurIPS 2004; scikit-learn's
  ``NeighborhoodComponentsAnalysis``);
- ``hist_intersection``: one minus the histogram intersection of the rows made non-negative and sum-normalised.

.. code-block:: python

    table = retrieval_by_distance(test_emb, test_y, train_emb, train_y)
    # columns: distance, map_at_r, p_at_1, r_precision, n_queries; one row per distance
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from numpy.typing import ArrayLike
from pytorch_metric_learning.distances import BaseDistance
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from torch import Tensor

from mmsheaf.evaluation.embeddings import _as_inputs, retrieval_metrics
from mmsheaf.losses.distances import class_pooled_precision, paired_distance, pairwise_distance

__all__ = [
    "RETRIEVAL_DISTANCES",
    "LibraryDistance",
    "RetrievalDistance",
    "distance_retrieval_metrics",
    "fit_distance",
    "retrieval_by_distance",
]

COLUMNS: tuple[str, ...] = ("distance", "map_at_r", "p_at_1", "r_precision", "n_queries")


class LibraryDistance(BaseDistance):
    r"""A pytorch-metric-learning distance whose matrix is the library's
    :func:`~mmsheaf.losses.distances.pairwise_distance`, so ``CustomKNN(LibraryDistance(...))`` ranks
    neighbours by it (smallest first: ``is_inverted=False``; the rows are passed as they are:
    ``normalize_embeddings=False``, the distance itself normalising where its definition does).

    Args:
        name: a name accepted by ``pairwise_distance``: ``sq_l2``, ``l1``, ``cosine``, ``mahalanobis``,
            ``hist_intersection``.
        matrix: the PSD :math:`M` of ``mahalanobis`` (kept as a buffer, cast to the embeddings' dtype and
            device when used); ``None`` otherwise.
        chunk_size: queries per block of ``pairwise_distance``.

    **Shapes:** ``forward(query, ref)``: :math:`(N, D)` and :math:`(M, D)` to :math:`(N, M)`;
    ``pairwise_distance(a, b)``: :math:`(B, D)` each to :math:`(B,)`; ``matrix`` :math:`(D, D)`.
    """

    def __init__(self, name: str, matrix: Tensor | None = None, chunk_size: int = 1024) -> None:
        super().__init__(normalize_embeddings=False, is_inverted=False)
        self.name, self.chunk_size = name, chunk_size
        self.register_buffer("matrix", None if matrix is None else matrix.detach().clone())
        self.matrix: Tensor | None

    def extra_repr(self) -> str:
        return f"name={self.name!r}, matrix={None if self.matrix is None else tuple(self.matrix.shape)}"

    def _matrix_like(self, x: Tensor) -> Tensor | None:
        return None if self.matrix is None else self.matrix.to(x.device, x.dtype)

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor | None) -> Tensor:
        ref_emb = query_emb if ref_emb is None else ref_emb
        return pairwise_distance(
            self.name, query_emb, ref_emb, matrix=self._matrix_like(query_emb), chunk_size=self.chunk_size
        )

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return paired_distance(self.name, query_emb, ref_emb, matrix=self._matrix_like(query_emb))


_Fit = Callable[[Tensor, Tensor, int, int], Tensor]  # (train_x, train_y, seed, max_iter) -> PSD (D, D)


def _pooled(train_x: Tensor, train_y: Tensor, seed: int, max_iter: int) -> Tensor:
    """:func:`class_pooled_precision` (default shrinkage), computed in float64."""
    return class_pooled_precision(train_x.double(), train_y).to(train_x.dtype)


def _nca(train_x: Tensor, train_y: Tensor, seed: int, max_iter: int) -> Tensor:
    r""":math:`A^{\top} A` of sklearn's NCA (``init="auto"``, ``random_state=seed``), computed in float64."""
    nca = NeighborhoodComponentsAnalysis(init="auto", max_iter=max_iter, random_state=seed)
    nca.fit(train_x.cpu().double().numpy(), train_y.cpu().numpy())
    a = torch.as_tensor(nca.components_, dtype=torch.float64)  # (n_components, D) = (D, D)
    return (a.T @ a).to(train_x.device, train_x.dtype)


@dataclass(frozen=True)
class RetrievalDistance:
    """How one retrieval distance is obtained.

    Args:
        base: the name given to :func:`~mmsheaf.losses.distances.pairwise_distance`.
        fit: ``fit(train_x, train_y, seed, max_iter) -> M``, the PSD matrix of a Mahalanobis distance fitted
            on a training set; ``None`` for a distance without parameters.
    """

    base: str
    fit: _Fit | None = None

    @property
    def needs_training(self) -> bool:
        return self.fit is not None


RETRIEVAL_DISTANCES: dict[str, RetrievalDistance] = {
    "sq_l2": RetrievalDistance("sq_l2"),
    "l1": RetrievalDistance("l1"),
    "cosine": RetrievalDistance("cosine"),
    "mahalanobis_learned": RetrievalDistance("mahalanobis", _nca),
    "mahalanobis_pooled": RetrievalDistance("mahalanobis", _pooled),
    "hist_intersection": RetrievalDistance("hist_intersection"),
}
"""The retrieval distances of experiment 4 by name (see the module docstring); the two Mahalanobis distances
fit their matrix on a training set (:func:`fit_distance`)."""


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in RETRIEVAL_DISTANCES]
    if unknown:
        raise ValueError(
            f"unknown retrieval distance(s) {', '.join(map(repr, unknown))}: choose from "
            f"{', '.join(RETRIEVAL_DISTANCES)}"
        )


def fit_distance(
    name: str,
    train_emb: Tensor | ArrayLike | None = None,
    train_labels: Tensor | ArrayLike | None = None,
    seed: int = 0,
    *,
    max_iter: int = 50,
    chunk_size: int = 1024,
) -> LibraryDistance:
    r"""The distance of :data:`RETRIEVAL_DISTANCES` called ``name``, its matrix fitted on the training set
    when it has one: ``mahalanobis_pooled`` :math:`M = S_w^{-1}` (class-pooled precision, shrinkage
    :math:`10^{-3}`), ``mahalanobis_learned`` :math:`M = A^{\top} A` of NCA (L-BFGS, at most ``max_iter``
    iterations, :math:`O(N^2 D)` time and :math:`O(N^2)` memory per iteration for :math:`N` training rows).

    Args:
        name: a key of :data:`RETRIEVAL_DISTANCES`.
        train_emb: training embeddings (required by the Mahalanobis distances, ignored otherwise).
        train_labels: their integer labels.
        seed: NCA's ``random_state``.
        max_iter: NCA's iterations.
        chunk_size: queries per block of the distance matrix.

    Raises:
        ValueError: for an unknown name, or a Mahalanobis distance without ``train_emb`` and ``train_labels``.

    **Shapes:** ``train_emb`` :math:`(N, D)`, ``train_labels`` :math:`(N,)`; the fitted ``matrix``
    :math:`(D, D)`.
    """
    _check_names([name])
    spec = RETRIEVAL_DISTANCES[name]
    if spec.fit is None:
        return LibraryDistance(spec.base, chunk_size=chunk_size)
    if train_emb is None or train_labels is None:
        raise ValueError(
            f"{name!r} fits its PSD matrix on a training set: pass train_emb and train_labels "
            f"(or choose a distance without parameters: "
            f"{', '.join(n for n, s in RETRIEVAL_DISTANCES.items() if not s.needs_training)})"
        )
    train_x, train_y = _as_inputs(train_emb, train_labels, "train_")
    return LibraryDistance(spec.base, spec.fit(train_x, train_y, seed, max_iter), chunk_size=chunk_size)


def distance_retrieval_metrics(
    embeddings: Tensor | ArrayLike,
    labels: Tensor | ArrayLike,
    distance: BaseDistance,
    chunk_size: int = 1024,
) -> dict[str, float]:
    r"""MAP@R, R-Precision and P@1 of retrieval within one set, neighbours ranked by ``distance``:
    :func:`~mmsheaf.evaluation.embeddings.retrieval_metrics` with that distance. Each row is a query against all *other* rows; with :math:`R` the number of other rows sharing its label
    and :math:`\text{rel}(i) = 1` when the :math:`i`-th nearest neighbour shares it,
    :math:`\text{R-Precision} = \frac{1}{R}\sum_{i \le R} \text{rel}(i)`,
    :math:`\text{MAP@R} = \frac{1}{R}\sum_{i \le R} P(i)\,\text{rel}(i)` with
    :math:`P(i) = \frac{1}{i}\sum_{j \le i}\text{rel}(j)`, and P@1 :math:`= \text{rel}(1)`, averaged over the
    queries. Rows whose label occurs once are no queries but still neighbours. Order among exactly tied
    distances is ``torch.topk``'s.

    Args:
        embeddings: the embeddings.
        labels: integer labels.
        distance: a pytorch-metric-learning distance, e.g. from :func:`fit_distance`.
        chunk_size: queries per ``AccuracyCalculator`` call.

    Returns:
        ``{"map_at_r", "r_precision", "p_at_1"}`` in :math:`[0, 1]` and ``"n_queries"`` (an int).

    Raises:
        ValueError: no label occurs twice, a non-positive ``chunk_size``, or malformed input.

    **Shapes:** ``embeddings`` :math:`(N, D)`, ``labels`` :math:`(N,)`.
    """
    return retrieval_metrics(embeddings, labels, chunk_size, distance=distance)


def retrieval_by_distance(
    test_emb: Tensor | ArrayLike,
    test_labels: Tensor | ArrayLike,
    train_emb: Tensor | ArrayLike | None,
    train_labels: Tensor | ArrayLike | None,
    distances: Sequence[str] = tuple(RETRIEVAL_DISTANCES),
    seed: int = 0,
    *,
    max_iter: int = 50,
    chunk_size: int = 1024,
) -> pd.DataFrame:
    r"""Retrieval within the test set under each distance, the Mahalanobis matrices fitted on the training
    set (:func:`fit_distance`, :func:`distance_retrieval_metrics`).

    Args:
        test_emb: the evaluated embeddings.
        test_labels: their integer labels.
        train_emb: the embeddings the Mahalanobis matrices are fitted on (``None`` only when ``distances``
            has no Mahalanobis distance).
        train_labels: their integer labels.
        distances: keys of :data:`RETRIEVAL_DISTANCES`, in the order of the rows.
        seed: NCA's ``random_state``.
        max_iter: NCA's iterations.
        chunk_size: queries per block.

    Returns:
        One row per distance with the columns ``distance, map_at_r, p_at_1, r_precision, n_queries``.

    Raises:
        ValueError: an unknown distance (checked before any fit), a missing training set, or malformed input.

    **Shapes:** ``test_emb`` :math:`(M, D)`, ``test_labels`` :math:`(M,)`, ``train_emb`` :math:`(N, D)`,
    ``train_labels`` :math:`(N,)`.
    """
    distances = list(distances)
    _check_names(distances)
    rows = []
    for name in distances:
        distance = fit_distance(name, train_emb, train_labels, seed, max_iter=max_iter, chunk_size=chunk_size)
        scores = distance_retrieval_metrics(test_emb, test_labels, distance, chunk_size)
        rows.append({"distance": name, **scores})
    return pd.DataFrame(rows, columns=list(COLUMNS))
