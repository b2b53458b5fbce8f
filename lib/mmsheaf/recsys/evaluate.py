r"""Full-ranking evaluation of recommenders: Recall@K and NDCG@K, as in MMRec (Zhou et al. 2023).

.. code-block:: python

    user_emb, item_emb = model(data)                       # (U, D), (I, D); scores are dot products
    ranking_metrics(user_emb, item_emb, data, "test")      # {"recall@10": ..., "ndcg@10": ..., "num_users": ...}
    per_user_metrics(user_emb, item_emb, data, "test")     # the same per user, for spreads and robustness

Every user with at least one positive in ``split`` (among the candidate items) ranks *all* candidate items by
:math:`s_{ui} = \langle \mathbf{e}_u, \mathbf{e}_i \rangle`, with the items it has in the ``exclude`` splits
(its training items, by default) set to :math:`-\infty`. With :math:`P_u` its positives in ``split`` and
:math:`r_1, r_2, \dots` its ranked list,

.. math::
    \mathrm{Recall@K}(u) = \frac{|\{r_1..r_K\} \cap P_u|}{|P_u|}, \qquad
    \mathrm{NDCG@K}(u) = \frac{\sum_{j=1}^{K} [r_j \in P_u] / \log_2(j + 1)}
                               {\sum_{j=1}^{\min(|P_u|, K)} 1 / \log_2(j + 1)},

(binary gains; Recall divides by :math:`|P_u|`, not :math:`\min(|P_u|, K)`, as MMRec does), and the reported
value is the mean over those users. The computation is batched over users (``user_batch`` rows of the score
matrix at a time) with no Python loop over users. Ties are broken by :func:`torch.topk`.

A positive that is also in an ``exclude`` split stays in :math:`P_u` but can never be retrieved: deduplicate
the splits (the project's loaders do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from mmsheaf.data.interactions import InteractionData

__all__ = ["METRIC_NAMES", "metric_keys", "per_user_metrics", "ranking_metrics"]

#: The metrics computed for every cutoff, in key order (``f"{name}@{k}"``).
METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg")

_SPLITS = ("train", "val", "test")


def metric_keys(ks: Sequence[int] = (10, 20)) -> list[str]:
    """The metric keys for cutoffs ``ks``: ``["recall@10", "ndcg@10", "recall@20", "ndcg@20"]``."""
    return [f"{name}@{k}" for k in ks for name in METRIC_NAMES]


def _check(split: str, ks: Sequence[int], exclude: Sequence[str], user_batch: int) -> tuple[int, ...]:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}.")
    bad = [s for s in exclude if s not in _SPLITS]
    if bad:
        raise ValueError(f"exclude must name splits among {_SPLITS}, got {bad}.")
    if split in exclude:
        raise ValueError(f"split {split!r} is also in exclude={tuple(exclude)}: its positives would all be "
                         "masked out; drop it from exclude.")  # fmt: skip
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of cutoffs >= 1, got {ks}.")
    if user_batch < 1:
        raise ValueError(f"user_batch must be >= 1, got {user_batch}.")
    return ks


def _resolve_candidates(data: InteractionData, candidates: Tensor | Literal["auto"] | None,
                        device: torch.device, split: str = "test") -> Tensor:  # fmt: skip
    """The candidate item ids (sorted, unique, long) on ``device``."""
    if isinstance(candidates, str):
        if candidates != "auto":
            raise ValueError(f"candidates must be 'auto', None or a tensor of item ids, got {candidates!r}.")
        candidates = data.candidates_of(split)
    if candidates is None:
        return torch.arange(data.num_items, device=device)
    cands = torch.as_tensor(candidates, device=device)
    if cands.dtype == torch.bool:
        if cands.shape != (data.num_items,):
            raise ValueError(
                f"a bool candidates mask must have shape ({data.num_items},), got {tuple(cands.shape)}."
            )
        cands = cands.nonzero().flatten()
    cands = torch.unique(cands.long())
    if cands.numel() == 0:
        raise ValueError("candidates is empty: pass None to rank all items.")
    if cands.min() < 0 or cands.max() >= data.num_items:
        raise ValueError(f"candidates must be item ids in 0..{data.num_items - 1}.")
    return cands


class _UserIndex:
    """The ``(user, candidate column)`` pairs of some edge lists sorted by user, to fill dense per-batch
    matrices without a loop over users."""

    def __init__(self, edges: Sequence[Tensor], column: Tensor) -> None:
        device = column.device
        users = torch.cat([e[0].to(device) for e in edges]) if edges else column.new_empty(0)
        cols = torch.cat([column[e[1].to(device)] for e in edges]) if edges else column.new_empty(0)
        keep = cols >= 0  # only candidate items
        users, cols = users[keep], cols[keep]
        order = torch.argsort(users, stable=True)
        self.users, self.cols = users[order], cols[order]

    def matrix(self, batch: Tensor, num_cols: int) -> Tensor:
        """``(B, C)`` bool: ``True`` where user ``batch[b]`` has candidate column ``c`` (``batch`` sorted)."""
        out = torch.zeros(batch.numel(), num_cols, dtype=torch.bool, device=batch.device)
        lo = int(torch.searchsorted(self.users, batch[:1]))
        hi = int(torch.searchsorted(self.users, batch[-1:], right=True))
        users, cols = self.users[lo:hi], self.cols[lo:hi]
        rows = torch.searchsorted(batch, users).clamp(max=batch.numel() - 1)
        hit = batch[rows] == users  # users between batch ids that are not evaluated
        out[rows[hit], cols[hit]] = True
        return out


@torch.no_grad()
def per_user_metrics(
    user_emb: Tensor,
    item_emb: Tensor,
    data: InteractionData,
    split: str = "test",
    ks: Sequence[int] = (10, 20),
    exclude: Sequence[str] = ("train",),
    candidates: Tensor | Literal["auto"] | None = "auto",
    user_batch: int = 1024,
) -> dict[str, Tensor]:
    r"""Recall@K and NDCG@K of every evaluated user (see the module docstring for the definitions).

    Args:
        user_emb: User embeddings :math:`(U, D)`.
        item_emb: Item embeddings :math:`(I, D)`; scores are :math:`\mathbf{E}_U \mathbf{E}_I^\top`.
        data: The interactions (positives from ``split``, masked items from ``exclude``).
        split: ``"val"`` or ``"test"`` (or ``"train"``).
        ks: Cutoffs :math:`K`.
        exclude: Splits whose items are removed from each user's ranking (set to :math:`-\infty`).
        candidates: Items that may be ranked: ``"auto"`` (``data.candidates_of(split)``, all items when it is
            ``None``),
            ``None`` (all items), or item ids :math:`(C,)` / a bool mask :math:`(I,)`.
        user_batch: Users scored at a time (memory :math:`\approx` ``user_batch`` :math:`\times C` floats).

    Returns:
        ``{"user": (n,) long ids (ascending), "num_positives": (n,) long, "recall@K": (n,) float, "ndcg@K":
        (n,) float, ...}`` over the :math:`n` users with at least one positive among the candidates, on the
        device of ``user_emb``.

    Raises:
        ValueError: bad arguments, or embeddings holding NaN or infinite values.

    Shapes:
        - **input:** :math:`(U, D)`, :math:`(I, D)`
        - **output:** tensors of shape :math:`(n,)`
    """
    ks = _check(split, ks, exclude, user_batch)
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
        raise ValueError(f"user_emb and item_emb must be (U, D) and (I, D) with the same D, got "
                         f"{tuple(user_emb.shape)} and {tuple(item_emb.shape)}.")  # fmt: skip
    if user_emb.size(0) != data.num_users or item_emb.size(0) != data.num_items:
        raise ValueError(f"embeddings have {user_emb.size(0)} users and {item_emb.size(0)} items but data has "
                         f"{data.num_users} and {data.num_items}: pass the embeddings of this data.")  # fmt: skip
    for side, emb in (("user", user_emb), ("item", item_emb)):  # NaN scores would still rank (arbitrarily)
        if not bool(torch.isfinite(emb).all()):
            raise ValueError(f"{side}_emb holds NaN or infinite values: no ranking metric is computed from them; "
                             "check the model (or its learning rate).")  # fmt: skip
    device = user_emb.device
    item_emb = item_emb.to(device)
    cands = _resolve_candidates(data, candidates, device, split)
    num_cands = cands.numel()
    column = torch.full((data.num_items,), -1, dtype=torch.long, device=device)
    column[cands] = torch.arange(num_cands, device=device)

    positives = _UserIndex([getattr(data, split)], column)
    excluded = _UserIndex([getattr(data, s) for s in exclude], column)
    users = torch.unique(positives.users)  # sorted
    cand_emb = item_emb[cands]

    k_max = min(max(ks), num_cands)
    discount = 1.0 / torch.log2(torch.arange(2, k_max + 2, device=device, dtype=torch.float64))
    ideal = torch.cumsum(discount, 0)
    out: dict[str, list[Tensor]] = {key: [] for key in ["num_positives", *metric_keys(ks)]}
    for start in range(0, users.numel(), user_batch):
        batch = users[start : start + user_batch]
        pos = positives.matrix(batch, num_cands)
        excl = excluded.matrix(batch, num_cands)
        scores = user_emb[batch] @ cand_emb.T
        scores = scores.masked_fill(excl, float("-inf"))
        top = torch.topk(scores, k_max, dim=1).indices
        hits = (pos.gather(1, top) & ~excl.gather(1, top)).to(torch.float64)  # an excluded item is no hit
        num_pos = pos.sum(1)
        out["num_positives"].append(num_pos)
        for k in ks:
            k_eff = min(k, num_cands)
            h = hits[:, :k_eff]
            out[f"recall@{k}"].append(h.sum(1) / num_pos)
            idcg = ideal[num_pos.clamp(max=k_eff) - 1]
            out[f"ndcg@{k}"].append((h * discount[:k_eff]).sum(1) / idcg)
    result = {"user": users}
    for key, parts in out.items():
        empty = torch.empty(0, device=device, dtype=torch.long if key == "num_positives" else torch.float64)
        result[key] = torch.cat(parts) if parts else empty
    return result


@torch.no_grad()
def ranking_metrics(user_emb: Tensor, item_emb: Tensor, data: InteractionData, split: str = "test",
                    ks: Sequence[int] = (10, 20), **options: Any) -> dict[str, float]:  # fmt: skip
    r"""Mean Recall@K and NDCG@K over the users with a positive in ``split`` (full ranking, MMRec protocol).

    Args:
        user_emb, item_emb, data, split, ks: as :func:`per_user_metrics`.
        **options: ``exclude``, ``candidates`` and ``user_batch`` of :func:`per_user_metrics`.

    Returns:
        ``{"recall@10": ..., "ndcg@10": ..., "recall@20": ..., "ndcg@20": ..., "num_users": n}`` (floats;
        the metrics are ``nan`` when no user has a positive).

    Shapes:
        - **input:** :math:`(U, D)`, :math:`(I, D)`
    """
    per_user = per_user_metrics(user_emb, item_emb, data, split, ks, **options)
    n = per_user["user"].numel()
    metrics = {key: float(per_user[key].mean()) if n else float("nan") for key in metric_keys(ks)}
    metrics["num_users"] = float(n)
    return metrics
