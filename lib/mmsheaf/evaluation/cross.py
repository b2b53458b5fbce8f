r"""Retrieval from one set of embeddings into another (e.g. text queries, tabular database): Recall@K and MAP@R.

Cross-modal retrieval (HUSE, `arXiv 1911.05978 <https://arxiv.org/abs/1911.05978>`_, Section 4.2) ranks a
database of one modality for queries of another by cosine similarity; an item is relevant when it has the
query's class. **Recall@K** is the fraction of queries with at least one relevant item among their K nearest
(the cross-modal retrieval literature's definition), and **MAP@R** is `A Metric Learning Reality Check
<https://arxiv.org/abs/2003.08505>`_'s

.. math::
    \text{MAP@R} = \frac{1}{R}\sum_{i=1}^{R} P(i)\,\text{rel}(i), \qquad P(i) = \frac{1}{i}\sum_{j\le i}\text{rel}(j),

with :math:`R` the number of relevant database items. Hand-written (torch, in query chunks) because
pytorch-metric-learning's ``AccuracyCalculator`` has no Recall@K for :math:`K > 1`; its MAP@R on one set is
the reference of the tests (:func:`~mmsheaf.evaluation.embeddings.retrieval_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_retrieval_metrics"]


def cross_retrieval_metrics(
    query: Tensor,
    query_labels: Tensor,
    database: Tensor,
    database_labels: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    *,
    same_rows: bool = False,
    chunk_size: int = 1024,
) -> dict[str, float]:
    r"""Recall@K for each ``K`` and MAP@R of cosine retrieval of ``database`` rows for ``query`` rows.

    Args:
        query: :math:`(Q, D)` query embeddings (need not be normalised).
        query_labels: :math:`(Q,)` integer classes.
        database: :math:`(M, D)` database embeddings.
        database_labels: :math:`(M,)` integer classes.
        ks: The K of Recall@K.
        same_rows: Query :math:`i` and database row :math:`i` are the same item (retrieval within one modality,
            ``Q == M``): a query never retrieves itself. Across modalities, the query's own item in the other
            modality stays in the database (it has the query's class, so it is relevant).
        chunk_size: Queries per similarity block.

    Returns:
        ``{"r@1": ..., "r@5": ..., "map_at_r": ..., "n_queries": n}`` (fractions in :math:`[0, 1]`); queries
        without any relevant database item are not counted.

    Raises:
        ValueError: mismatched shapes, ``same_rows`` with ``Q != M``, or no query has a relevant item.
    """
    if query.dim() != 2 or database.dim() != 2 or query.size(1) != database.size(1):
        raise ValueError(f"query and database must be (Q, D) and (M, D), got {tuple(query.shape)} and "
                         f"{tuple(database.shape)}.")  # fmt: skip
    if query_labels.shape != (query.size(0),) or database_labels.shape != (database.size(0),):
        raise ValueError("query_labels / database_labels must hold one class per row.")
    if same_rows and query.size(0) != database.size(0):
        raise ValueError(f"same_rows needs as many queries as database rows, got {query.size(0)} and "
                         f"{database.size(0)}.")  # fmt: skip
    if not ks or min(ks) < 1 or chunk_size < 1:
        raise ValueError(f"ks must be positive integers and chunk_size positive, got {list(ks)}, {chunk_size}.")
    q, db = F.normalize(query.float(), dim=1), F.normalize(database.float(), dim=1)
    same = query_labels.unsqueeze(1) == database_labels.unsqueeze(0)  # (Q, M), only counted below
    relevant = same.sum(1) - (same.diagonal().long() if same_rows else 0)
    if not bool((relevant > 0).any()):
        raise ValueError("no query has a relevant database item (no shared class): nothing to retrieve.")
    depth = min(int(max(max(ks), int(relevant.max()))), database.size(0) - int(same_rows))
    hits = dict.fromkeys(ks, 0.0)
    ap_total, n = 0.0, 0
    for start in range(0, q.size(0), chunk_size):
        rows = torch.arange(start, min(start + chunk_size, q.size(0)))
        sim = q[rows] @ db.T
        if same_rows:
            sim[torch.arange(rows.numel()), rows] = -torch.inf
        top = sim.topk(depth, dim=1).indices
        rel = (database_labels[top] == query_labels[rows].unsqueeze(1)).float()  # (B, depth)
        r = relevant[rows]
        keep = r > 0
        rel, r = rel[keep], r[keep].float()
        for k in ks:
            hits[k] += float((rel[:, :k].sum(1) > 0).sum())
        position = torch.arange(1, depth + 1, dtype=rel.dtype)
        precision = rel.cumsum(1) / position
        within = position.unsqueeze(0) <= r.unsqueeze(1)
        ap_total += float(((precision * rel * within).sum(1) / r).sum())
        n += int(keep.sum())
    out = {f"r@{k}": hits[k] / n for k in ks}
    out["map_at_r"] = ap_total / n
    out["n_queries"] = n
    return out
