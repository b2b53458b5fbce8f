r"""Distances between embeddings (and between predicted class distributions), paired and pairwise.

The study of issue 18 regularises embeddings with a graph: the Neural Graph Machines objective (Bui et al.,
WSDM 2018, `arXiv:1703.04818 <https://arxiv.org/abs/1703.04818>`_, Eq. 2-3) adds
:math:`\alpha \sum_{(u, v) \in E} w_{uv}\, d(h_u, h_v)` to the supervised loss, with :math:`d` a distance
between the hidden representations (or the predictions) of the two ends of an edge. TensorFlow Neural
Structured Learning (``nsl.configs.DistanceType``) offers L1, L2, cosine, KL and JS for :math:`d`; this module
has those, a (learned or class-pooled) Mahalanobis distance and the histogram intersection. For two rows
:math:`a, b \in \mathbb{R}^D` (:math:`p, q` probability rows):

- ``sq_l2``: :math:`\|a - b\|_2^2 = \sum_i (a_i - b_i)^2`, NGM's and NSL's ``L2`` (squared, as NSL computes it);
- ``l1``: :math:`\|a - b\|_1 = \sum_i |a_i - b_i|`, NSL's ``L1``;
- ``cosine``: :math:`1 - \frac{\langle a, b\rangle}{\|a\|\,\|b\|} \in [0, 2]`, NSL's ``COSINE``;
- ``mahalanobis``: :math:`(a - b)^{\top} M (a - b)` for a positive semi-definite :math:`M`, the **squared**
  Mahalanobis distance (Mahalanobis 1936); :math:`M = I` gives ``sq_l2``, :math:`M = \Sigma^{-1}` the classical
  one (:func:`class_pooled_precision`), :math:`M = L L^{\top}` a learned metric (:class:`LearnedMahalanobis`);
- ``hist_intersection``: :math:`1 - \sum_i \min(\hat a_i, \hat b_i) \in [0, 1]` on the histograms
  :math:`\hat a = \mathrm{relu}(a) / \sum_i \mathrm{relu}(a)_i` (:func:`histogram`), one minus the histogram
  intersection of Swain & Ballard, "Color indexing", IJCV 1991;
- ``kl``: :math:`\mathrm{KL}(p \,\|\, q) = \sum_i p_i (\log p_i - \log q_i)`, NSL's ``KL_DIVERGENCE``;
- ``js``: :math:`\mathrm{JS}(p, q) = \tfrac{1}{2}\mathrm{KL}(p \,\|\, m) + \tfrac{1}{2}\mathrm{KL}(q \,\|\, m)`,
  :math:`m = \tfrac{1}{2}(p + q)`, in :math:`[0, \log 2]`, NSL's ``JENSEN_SHANNON_DIVERGENCE``.

``kl`` and ``js`` (:data:`PROBABILITY_DISTANCES`) compare predicted class distributions, not embeddings; the
others also rank a database for retrieval (:func:`pairwise_distance`, chunked over the queries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PAIRED_DISTANCES",
    "PROBABILITY_DISTANCES",
    "LearnedMahalanobis",
    "class_pooled_precision",
    "cosine",
    "hist_intersection",
    "histogram",
    "js",
    "kl",
    "l1",
    "mahalanobis",
    "paired_distance",
    "pairwise_distance",
    "sq_l2",
]

_LOG_EPS = 1e-12  # clamp inside the logarithms of kl / js
_HIST_EPS = 1e-12  # added to the row sums of histogram
_COS_EPS = 1e-8  # F.cosine_similarity's eps
_HIST_BLOCK = 2**24  # elements of the (rows, M, D) intermediate of the pairwise histogram intersection


def _check_pair(a: Tensor, b: Tensor) -> None:
    """Raise a :class:`ValueError` unless ``a`` and ``b`` are (B, D) tensors of one shape."""
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"expected two (B, D) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}: "
            f"pass aligned rows, one pair per row"
        )


def _check_matrix(matrix: Tensor, dim: int) -> None:
    if matrix.shape != (dim, dim):
        raise ValueError(
            f"expected a ({dim}, {dim}) matrix for embeddings of dimension {dim}, got {tuple(matrix.shape)}: "
            f"pass a square PSD matrix of the embedding dimension"
        )


def sq_l2(a: Tensor, b: Tensor) -> Tensor:
    r"""The squared Euclidean distance :math:`\|a - b\|_2^2` of each pair of rows.

    Args:
        a, b: aligned rows.

    **Shapes:** inputs :math:`(B, D)` each; output :math:`(B,)`, non-negative.
    """
    _check_pair(a, b)
    return (a - b).pow(2).sum(dim=1)


def l1(a: Tensor, b: Tensor) -> Tensor:
    r"""The Manhattan distance :math:`\|a - b\|_1` of each pair of rows (not differentiable at :math:`a_i = b_i`,
    where autograd takes the subgradient 0).

    Args:
        a, b: aligned rows.

    **Shapes:** inputs :math:`(B, D)` each; output :math:`(B,)`, non-negative.
    """
    _check_pair(a, b)
    return (a - b).abs().sum(dim=1)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    r"""The cosine distance :math:`1 - \cos(a, b)` of each pair of rows, in :math:`[0, 2]`
    (``F.cosine_similarity`` with ``eps=1e-8``: a zero row has cosine 0 with anything, distance 1).

    Args:
        a, b: aligned rows.

    **Shapes:** inputs :math:`(B, D)` each; output :math:`(B,)`.
    """
    _check_pair(a, b)
    return 1 - F.cosine_similarity(a, b, dim=1, eps=_COS_EPS)


def mahalanobis(a: Tensor, b: Tensor, matrix: Tensor) -> Tensor:
    r"""The **squared** Mahalanobis distance :math:`(a - b)^{\top} M (a - b)` of each pair of rows.

    Only the symmetric part of :math:`M` matters; the result is non-negative (up to rounding) when :math:`M`
    is positive semi-definite, which is the caller's to ensure (:class:`LearnedMahalanobis` and
    :func:`class_pooled_precision` give PSD matrices). :math:`M = I` gives :func:`sq_l2`.

    Args:
        a, b: aligned rows.
        matrix: :math:`M`, positive semi-definite.

    **Shapes:** inputs ``a, b`` :math:`(B, D)` each, ``matrix`` :math:`(D, D)`; output :math:`(B,)`.
    """
    _check_pair(a, b)
    _check_matrix(matrix, a.shape[1])
    diff = a - b
    return ((diff @ matrix) * diff).sum(dim=1)


def histogram(x: Tensor) -> Tensor:
    r"""Each row made a histogram: :math:`\hat x = \mathrm{relu}(x) / (\sum_i \mathrm{relu}(x)_i + \epsilon)`,
    :math:`\epsilon = 10^{-12}`: non-negative entries summing to 1. A row with no positive entry becomes a
    zero histogram (all zeros, summing to 0).

    **Shapes:** input :math:`(B, D)`; output :math:`(B, D)`.
    """
    if x.dim() != 2:
        raise ValueError(f"expected a (B, D) tensor, got {tuple(x.shape)}: pass one row per example")
    positive = F.relu(x)
    return positive / (positive.sum(dim=1, keepdim=True) + _HIST_EPS)


def hist_intersection(a: Tensor, b: Tensor) -> Tensor:
    r"""One minus the histogram intersection (Swain & Ballard 1991) of each pair of rows,
    :math:`1 - \sum_i \min(\hat a_i, \hat b_i)` in :math:`[0, 1]`, on the rows made histograms by
    :func:`histogram` (so negative entries count as 0 and the scale of a row does not matter). A row with no
    positive entry is a zero histogram: its intersection with anything is 0, its distance 1.

    Args:
        a, b: aligned rows (any real values; normalised here).

    **Shapes:** inputs :math:`(B, D)` each; output :math:`(B,)`.
    """
    _check_pair(a, b)
    return 1 - torch.minimum(histogram(a), histogram(b)).sum(dim=1)


def kl(p: Tensor, q: Tensor) -> Tensor:
    r"""The Kullback-Leibler divergence :math:`\mathrm{KL}(p \,\|\, q) = \sum_i p_i (\log p_i - \log q_i)` of each
    pair of probability rows (both logarithms' arguments clamped at :math:`10^{-12}`, so :math:`p_i = 0`
    contributes 0 and :math:`q_i = 0` a large finite value). Not symmetric; non-negative for rows that sum
    to 1 (the caller's to ensure, e.g. with a softmax).

    Args:
        p, q: aligned probability rows.

    **Shapes:** inputs :math:`(B, K)` each; output :math:`(B,)`.
    """
    _check_pair(p, q)
    return (p * (p.clamp_min(_LOG_EPS).log() - q.clamp_min(_LOG_EPS).log())).sum(dim=1)


def js(p: Tensor, q: Tensor) -> Tensor:
    r"""The Jensen-Shannon divergence :math:`\tfrac{1}{2}\mathrm{KL}(p \,\|\, m) + \tfrac{1}{2}\mathrm{KL}(q \,\|\, m)`,
    :math:`m = \tfrac{1}{2}(p + q)`, of each pair of probability rows: symmetric, in :math:`[0, \log 2]`.

    Args:
        p, q: aligned probability rows.

    **Shapes:** inputs :math:`(B, K)` each; output :math:`(B,)`.
    """
    _check_pair(p, q)
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


PAIRED_DISTANCES: dict[str, Callable[..., Tensor]] = {
    "sq_l2": sq_l2,
    "l1": l1,
    "cosine": cosine,
    "mahalanobis": mahalanobis,
    "hist_intersection": hist_intersection,
    "kl": kl,
    "js": js,
}
"""The paired distances by name: two aligned :math:`(B, D)` tensors to :math:`(B,)` (``mahalanobis`` also takes
``matrix``); see the module docstring for the formulas."""

PROBABILITY_DISTANCES: tuple[str, ...] = ("kl", "js")
"""The distances of :data:`PAIRED_DISTANCES` that compare probability rows (predicted class distributions),
not embeddings; :func:`pairwise_distance` refuses them."""


def _resolve(name: str) -> Callable[..., Tensor]:
    try:
        return PAIRED_DISTANCES[name]
    except KeyError:
        raise ValueError(f"unknown distance {name!r}: choose one of {', '.join(PAIRED_DISTANCES)}") from None


def _check_matrix_kwarg(name: str, matrix: Tensor | None) -> None:
    if name == "mahalanobis" and matrix is None:
        raise ValueError("the mahalanobis distance needs its PSD matrix: pass matrix=M, a (D, D) tensor")
    if name != "mahalanobis" and matrix is not None:
        raise ValueError(f"matrix= applies to the mahalanobis distance only, not {name!r}: drop it")


def paired_distance(name: str, a: Tensor, b: Tensor, **kwargs: Any) -> Tensor:
    r"""The paired distance of :data:`PAIRED_DISTANCES` called ``name`` between aligned rows.

    Args:
        name: one of ``sq_l2``, ``l1``, ``cosine``, ``mahalanobis``, ``hist_intersection``, ``kl``, ``js``.
        a, b: aligned rows (probability rows for ``kl`` and ``js``).
        **kwargs: ``matrix=`` (a :math:`(D, D)` PSD tensor), required by ``mahalanobis``; keyword arguments
            that are ``None`` are ignored, so ``matrix=None`` may be passed with any name.

    Raises:
        ValueError: for an unknown name (listing the choices), ``mahalanobis`` without ``matrix=``, ``matrix=``
            with another distance, another keyword, or inputs that are not two (B, D) tensors of one shape.

    **Shapes:** inputs ``a, b`` :math:`(B, D)` each; output :math:`(B,)`.
    """
    fn = _resolve(name)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    unknown = set(kwargs) - {"matrix"}
    if unknown:
        raise ValueError(
            f"unexpected keyword(s) {', '.join(sorted(unknown))}: pass only matrix= (mahalanobis)"
        )
    _check_matrix_kwarg(name, kwargs.get("matrix"))
    return fn(a, b, **kwargs)


# ------------------------------------------------------------------------------------------- pairwise

_Prepare = Callable[[Tensor, Tensor | None], Tensor]
_Block = Callable[[Tensor, Tensor], Tensor]


def _identity(x: Tensor, factor: Tensor | None) -> Tensor:
    return x


def _unit_rows(x: Tensor, factor: Tensor | None) -> Tensor:
    return F.normalize(x, dim=1, eps=_COS_EPS)


def _histogram_rows(x: Tensor, factor: Tensor | None) -> Tensor:
    return histogram(x)


def _apply_factor(x: Tensor, factor: Tensor | None) -> Tensor:
    assert factor is not None  # pairwise_distance computes it for mahalanobis
    return x @ factor


def _sq_l2_block(q: Tensor, d: Tensor) -> Tensor:
    sq = q.pow(2).sum(dim=1, keepdim=True) + d.pow(2).sum(dim=1) - 2 * q @ d.T
    return sq.clamp_min(0)


def _l1_block(q: Tensor, d: Tensor) -> Tensor:
    return torch.cdist(q, d, p=1)


def _cosine_block(q: Tensor, d: Tensor) -> Tensor:
    return (1 - q @ d.T).clamp(0, 2)


def _hist_block(q: Tensor, d: Tensor) -> Tensor:
    rows = max(1, _HIST_BLOCK // max(1, d.shape[0] * d.shape[1]))
    parts = [
        1 - torch.minimum(q[i : i + rows, None, :], d[None, :, :]).sum(dim=-1)
        for i in range(0, q.shape[0], rows)
    ]
    return torch.cat(parts) if parts else q.new_zeros(0, d.shape[0])


_PAIRWISE: dict[str, tuple[_Prepare, _Block]] = {
    "sq_l2": (_identity, _sq_l2_block),
    "l1": (_identity, _l1_block),
    "cosine": (_unit_rows, _cosine_block),
    "mahalanobis": (_apply_factor, _sq_l2_block),
    "hist_intersection": (_histogram_rows, _hist_block),
}
"""Per retrieval distance: how both sides are prepared once (normalised, made histograms, mapped by
:math:`L`), and the vectorised block of queries against the whole database."""


def _psd_factor(matrix: Tensor) -> Tensor:
    r"""A factor :math:`L` with :math:`L L^{\top} = M` for a PSD :math:`M`, from ``torch.linalg.eigh`` of the
    symmetrised matrix, negative eigenvalues (rounding, or a matrix that is not quite PSD) clamped to 0, so a
    singular :math:`M` works: :math:`L = V \operatorname{diag}(\sqrt{\max(\lambda, 0)})`.

    **Shapes:** input :math:`(D, D)`; output :math:`(D, D)`.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (matrix + matrix.T))
    return eigenvectors * eigenvalues.clamp_min(0).sqrt()


def pairwise_distance(
    name: str, queries: Tensor, database: Tensor, *, matrix: Tensor | None = None, chunk_size: int = 1024
) -> Tensor:
    r"""Every query's distance to every database row, for retrieval: entry :math:`(i, j)` equals
    ``paired_distance(name, queries[i:i+1], database[j:j+1])`` up to rounding.

    Computed ``chunk_size`` queries at a time (to bound memory), vectorised within a chunk: ``sq_l2`` by the
    expansion :math:`\|q\|^2 + \|d\|^2 - 2\langle q, d\rangle` clamped at 0; ``l1`` by
    ``torch.cdist(p=1)``; ``cosine`` by a matrix product of the unit rows (clamped to :math:`[0, 2]`);
    ``mahalanobis`` as ``sq_l2`` of :math:`x L` with :math:`M = L L^{\top}` (eigendecomposition, valid for a
    singular PSD :math:`M`); ``hist_intersection`` by ``torch.minimum`` over a :math:`(n, M, D)` block, its
    rows further split so that a block holds about :math:`2^{24}` elements (a single query row holds
    :math:`M D` of them).

    Args:
        name: a retrieval distance: ``sq_l2``, ``l1``, ``cosine``, ``mahalanobis``, ``hist_intersection``.
        queries: the query rows.
        database: the rows to rank.
        matrix: the PSD :math:`M` of ``mahalanobis`` (required there, refused elsewhere).
        chunk_size: queries per chunk, at least 1.

    Raises:
        ValueError: for an unknown name, ``kl``/``js``, a missing or misplaced ``matrix``, a non-positive
            ``chunk_size``, or inputs that are not 2-D with one dimension :math:`D`.

    **Shapes:** inputs ``queries`` :math:`(N, D)`, ``database`` :math:`(M, D)`, ``matrix`` :math:`(D, D)`;
    output :math:`(N, M)`.
    """
    _resolve(name)
    if name in PROBABILITY_DISTANCES:
        raise ValueError(
            f"{name!r}: kl/js compare probability distributions, not embeddings for retrieval: choose one of "
            f"{', '.join(_PAIRWISE)}"
        )
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"expected (N, D) queries and an (M, D) database, got {tuple(queries.shape)} and "
            f"{tuple(database.shape)}: pass 2-D tensors of one embedding dimension"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}: pass a positive number of queries")
    _check_matrix_kwarg(name, matrix)
    factor = None
    if matrix is not None:
        _check_matrix(matrix, queries.shape[1])
        factor = _psd_factor(matrix)
    prepare, block = _PAIRWISE[name]
    q, d = prepare(queries, factor), prepare(database, factor)
    parts = [block(q[i : i + chunk_size], d) for i in range(0, q.shape[0], chunk_size)]
    return torch.cat(parts) if parts else q.new_zeros(0, d.shape[0])


# --------------------------------------------------------------------------------------- metrics


class LearnedMahalanobis(nn.Module):
    r"""A learned squared Mahalanobis distance :math:`(a - b)^{\top} L L^{\top} (a - b) = \|(a - b) L\|^2`,
    :math:`M = L L^{\top}` PSD by construction (a low-rank metric when ``rank < dim``).

    ``L`` starts as the first ``rank`` columns of the identity: :math:`M = I` (the ``sq_l2`` distance) when
    ``rank >= dim``, the projection onto the first ``rank`` coordinates otherwise.

    Args:
        dim: embedding dimension :math:`D`.
        rank: columns of :math:`L`; ``None`` for :math:`D`.

    **Shapes:** inputs ``a, b`` :math:`(B, D)` each; output :math:`(B,)` (:meth:`matrix`: :math:`(D, D)`).
    """

    def __init__(self, dim: int, rank: int | None = None) -> None:
        super().__init__()
        rank = dim if rank is None else rank
        if dim < 1 or rank < 1:
            raise ValueError(f"dim and rank must be >= 1, got dim={dim}, rank={rank}: pass positive sizes")
        self.dim, self.rank = dim, rank
        self.L = nn.Parameter(torch.eye(dim, rank))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.rank}"

    def matrix(self) -> Tensor:
        r"""The PSD matrix :math:`M = L L^{\top}`, :math:`(D, D)`."""
        return self.L @ self.L.T

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return mahalanobis(a, b, self.matrix())


def class_pooled_precision(embeddings: Tensor, labels: Tensor, shrinkage: float = 1e-3) -> Tensor:
    r"""The inverse of the class-pooled within-class covariance, the :math:`M = \Sigma^{-1}` of the classical
    Mahalanobis distance (as in linear discriminant analysis):

    .. math::
        S_w = \frac{1}{N - C} \sum_c \sum_{i \in c} (x_i - \mu_c)(x_i - \mu_c)^{\top}, \qquad
        P = \Big(S_w + \text{shrinkage} \cdot \frac{\operatorname{tr} S_w}{D} I\Big)^{-1},

    :math:`\mu_c` the mean of class :math:`c`, :math:`C` the number of classes present. The shrinkage
    towards a scaled identity keeps :math:`P` finite when :math:`N - C < D`; both the matrix inverted and
    :math:`P` are symmetrised.

    Args:
        embeddings: the rows :math:`x_i`.
        labels: their classes (any integer values).
        shrinkage: weight of :math:`\frac{\operatorname{tr} S_w}{D} I`, at least 0.

    Raises:
        ValueError: for mismatched shapes, a negative shrinkage, :math:`N \le C` (no within-class
            degrees of freedom) or a singular regularised scatter.

    **Shapes:** inputs ``embeddings`` :math:`(N, D)`, ``labels`` :math:`(N,)`; output :math:`(D, D)`.
    """
    if embeddings.dim() != 2 or labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"expected (N, D) embeddings and (N,) labels, got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}: pass one label per row"
        )
    if not shrinkage >= 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}: pass a non-negative weight")
    n, dim = embeddings.shape
    classes, inverse = torch.unique(labels, return_inverse=True)
    if n <= len(classes):
        raise ValueError(
            f"{n} rows in {len(classes)} classes leave no within-class degrees of freedom (need N > C): "
            f"pass more rows per class"
        )
    sums = embeddings.new_zeros(len(classes), dim).index_add(0, inverse, embeddings)
    counts = torch.bincount(inverse, minlength=len(classes)).to(embeddings.dtype)
    centred = embeddings - (sums / counts[:, None])[inverse]
    scatter = centred.T @ centred / (n - len(classes))
    eye = torch.eye(dim, dtype=scatter.dtype, device=scatter.device)
    scatter = scatter + shrinkage * torch.trace(scatter) / dim * eye
    try:
        precision = torch.linalg.inv(0.5 * (scatter + scatter.T))
    except torch.linalg.LinAlgError as error:
        raise ValueError(
            f"the regularised within-class scatter is singular ({error}): pass a larger shrinkage, or "
            f"embeddings that vary within their classes"
        ) from None
    return 0.5 * (precision + precision.T)
