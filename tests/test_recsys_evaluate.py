"""Tests of the full-ranking evaluation (mmsheaf.recsys.evaluate)."""

from __future__ import annotations

import math

import pytest
import torch
from mmsheaf.data.interactions import InteractionData
from mmsheaf.recsys import metric_keys, per_user_metrics, ranking_metrics
from torchmetrics.retrieval import RetrievalNormalizedDCG, RetrievalRecall


def random_data(
    seed: int, num_users: int = 9, num_items: int = 15, candidates: bool = False
) -> InteractionData:
    """Random disjoint train/val/test items per user (some users without val or test items)."""
    g = torch.Generator().manual_seed(seed)
    splits: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    for u in range(num_users):
        n = int(torch.randint(0, 9, (1,), generator=g))
        items = torch.randperm(num_items, generator=g)[:n].tolist()
        cut = sorted(torch.randint(0, n + 1, (2,), generator=g).tolist())
        splits["train"] += [(u, i) for i in items[: cut[0]]]
        splits["val"] += [(u, i) for i in items[cut[0] : cut[1]]]
        splits["test"] += [(u, i) for i in items[cut[1] :]]
    edges = {k: torch.tensor(v, dtype=torch.long).reshape(-1, 2).t() for k, v in splits.items()}
    cands = torch.randperm(num_items, generator=g)[: num_items // 2 + 1] if candidates else None
    return InteractionData("random", num_users, num_items, **edges, candidates=cands)


def embeddings(seed: int, data: InteractionData, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(data.num_users, dim, generator=g), torch.randn(data.num_items, dim, generator=g)


def brute_force(user_emb, item_emb, data, split, ks, exclude, candidates) -> dict[int, dict[str, float]]:
    """Pure-Python Recall@K / NDCG@K per user, straight from the definitions."""
    cands = list(range(data.num_items)) if candidates is None else sorted(set(candidates.tolist()))
    positives: dict[int, set[int]] = {}
    for u, i in getattr(data, split).t().tolist():
        if i in cands:
            positives.setdefault(u, set()).add(i)
    seen: dict[int, set[int]] = {}
    for s in exclude:
        for u, i in getattr(data, s).t().tolist():
            seen.setdefault(u, set()).add(i)
    out = {}
    for u, pos in positives.items():
        scores = {i: float(user_emb[u] @ item_emb[i]) for i in cands if i not in seen.get(u, set())}
        ranked = sorted(scores, key=lambda i: -scores[i])
        row = {}
        for k in ks:
            top = ranked[:k]
            hits = [1.0 if i in pos else 0.0 for i in top]
            row[f"recall@{k}"] = sum(hits) / len(pos)
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(pos), k)))
            row[f"ndcg@{k}"] = dcg / idcg
        out[u] = row
    return out


@pytest.mark.parametrize("seed", range(25))
def test_matches_brute_force_reference(seed: int) -> None:
    data = random_data(seed, candidates=seed % 3 == 0)
    user_emb, item_emb = embeddings(seed, data)
    ks = (1, 3, 5, 40)  # 40 > number of candidates
    split, exclude = ("test", ("train",)) if seed % 2 else ("val", ("train", "test"))
    ref = brute_force(user_emb, item_emb, data, split, ks, exclude, data.candidates)
    per_user = per_user_metrics(user_emb, item_emb, data, split, ks, exclude, user_batch=1 + seed % 4)
    assert per_user["user"].tolist() == sorted(ref)
    for key in metric_keys(ks):
        expected = torch.tensor([ref[u][key] for u in sorted(ref)], dtype=torch.float64)
        assert torch.allclose(per_user[key], expected), key
    means = ranking_metrics(user_emb, item_emb, data, split, ks, exclude=exclude)
    assert means["num_users"] == len(ref)
    for key in metric_keys(ks):
        assert means[key] == pytest.approx(sum(r[key] for r in ref.values()) / len(ref))


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_torchmetrics(seed: int) -> None:
    """torchmetrics' retrieval metrics on the lists a user ranks (all items minus its training items)."""
    data = random_data(seed, num_users=12, num_items=20)
    user_emb, item_emb = embeddings(seed, data)
    ks = (2, 5, 10)
    ours = ranking_metrics(user_emb, item_emb, data, "test", ks)
    train = set(map(tuple, data.train.t().tolist()))
    test = set(map(tuple, data.test.t().tolist()))
    preds, target, indexes = [], [], []
    for u in range(data.num_users):
        for i in range(data.num_items):
            if (u, i) not in train:
                preds.append(float(user_emb[u] @ item_emb[i]))
                target.append((u, i) in test)
                indexes.append(u)
    preds, target, indexes = torch.tensor(preds), torch.tensor(target), torch.tensor(indexes)
    # torchmetrics' recall counts only items with a score > 0 as retrieved: shift the scores (same ranking).
    preds = preds - preds.min() + 1.0
    for k in ks:
        recall = RetrievalRecall(top_k=k, empty_target_action="skip")(preds, target, indexes=indexes)
        ndcg = RetrievalNormalizedDCG(top_k=k, empty_target_action="skip")(preds, target, indexes=indexes)
        assert ours[f"recall@{k}"] == pytest.approx(float(recall), abs=1e-6)
        assert ours[f"ndcg@{k}"] == pytest.approx(float(ndcg), abs=1e-6)


def tiny() -> tuple[torch.Tensor, torch.Tensor, InteractionData]:
    """One user, 5 items scored 5, 4, 3, 2, 1 (item 0 best); item 0 in train, items 1 and 3 in test."""
    item_emb = torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])
    user_emb = torch.tensor([[1.0]])
    empty = torch.empty(2, 0, dtype=torch.long)
    data = InteractionData("tiny", 1, 5, train=torch.tensor([[0], [0]]), val=empty,
                           test=torch.tensor([[0, 0], [1, 3]]))  # fmt: skip
    return user_emb, item_emb, data


def test_closed_form_tiny_example() -> None:
    user_emb, item_emb, data = tiny()
    m = ranking_metrics(user_emb, item_emb, data, "test", ks=(1, 2, 3, 10))
    # Ranking without the training item 0: 1 (hit), 2, 3 (hit), 4.
    idcg = 1 + 1 / math.log2(3)
    assert m["recall@1"] == 0.5 and m["ndcg@1"] == pytest.approx(1.0)
    assert m["recall@2"] == 0.5 and m["ndcg@2"] == pytest.approx(1 / idcg)
    assert m["recall@3"] == 1.0 and m["ndcg@3"] == pytest.approx((1 + 1 / 2) / idcg)
    assert m["recall@10"] == 1.0 and m["ndcg@10"] == pytest.approx((1 + 1 / 2) / idcg)
    assert m["num_users"] == 1


def test_training_items_are_excluded() -> None:
    user_emb, item_emb, data = tiny()
    # Without excluding train, item 0 (a miss) takes rank 1.
    m = ranking_metrics(user_emb, item_emb, data, "test", ks=(1, 2), exclude=())
    assert m["recall@1"] == 0.0 and m["recall@2"] == 0.5
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # An excluded item is never a hit even when it is also a positive (it stays in the denominator).
    dup = data.replace(train=torch.tensor([[0], [1]]))
    m = ranking_metrics(user_emb, item_emb, dup, "test", ks=(1, 5))
    assert m["recall@1"] == 0.0 and m["recall@5"] == 0.5


def test_candidates_restrict_ranking_and_users() -> None:
    user_emb, item_emb, data = tiny()
    only_3 = torch.tensor([2, 3, 4])
    m = ranking_metrics(user_emb, item_emb, data, "test", ks=(1,), candidates=only_3)
    assert m["recall@1"] == 0.0 and m["num_users"] == 1  # item 2 outranks the only candidate positive 3
    assert ranking_metrics(user_emb, item_emb, data, "test", ks=(2,), candidates=only_3)["recall@2"] == 1.0
    # A bool mask works as well, and "auto" reads data.candidates.
    mask = torch.zeros(5, dtype=torch.bool)
    mask[only_3] = True
    assert ranking_metrics(user_emb, item_emb, data, "test", ks=(1, 2), candidates=mask) == ranking_metrics(
        user_emb, item_emb, data.replace(candidates=only_3), "test", ks=(1, 2)
    )
    # candidates=None ignores data.candidates.
    full = ranking_metrics(
        user_emb, item_emb, data.replace(candidates=only_3), "test", ks=(1,), candidates=None
    )
    assert full["recall@1"] == 0.5
    # A user whose positives are all outside the candidates is not evaluated.
    no_user = ranking_metrics(user_emb, item_emb, data, "test", candidates=torch.tensor([0, 2, 4]))
    assert no_user["num_users"] == 0 and math.isnan(no_user["recall@10"])


def test_user_batch_does_not_change_the_result() -> None:
    data = random_data(3, num_users=30, num_items=25)
    user_emb, item_emb = embeddings(3, data)
    a = per_user_metrics(user_emb, item_emb, data, "test", user_batch=1)
    b = per_user_metrics(user_emb, item_emb, data, "test", user_batch=7)
    c = per_user_metrics(user_emb, item_emb, data, "test", user_batch=10_000)
    for key in a:
        assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key])
    assert set(a) == {"user", "num_positives", *metric_keys((10, 20))}


def test_invalid_arguments_raise() -> None:
    user_emb, item_emb, data = tiny()
    with pytest.raises(ValueError, match="also in exclude"):
        ranking_metrics(user_emb, item_emb, data, "test", exclude=("train", "test"))
    with pytest.raises(ValueError, match="split must be one of"):
        ranking_metrics(user_emb, item_emb, data, "dev")
    with pytest.raises(ValueError, match="ks must be"):
        ranking_metrics(user_emb, item_emb, data, ks=(0,))
    with pytest.raises(ValueError, match="build|pass the embeddings"):
        ranking_metrics(user_emb, item_emb[:4], data)
    with pytest.raises(ValueError, match="empty"):
        ranking_metrics(user_emb, item_emb, data, candidates=torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="candidates must be"):
        ranking_metrics(user_emb, item_emb, data, candidates="all")


@pytest.mark.parametrize("side", ["user", "item"])
def test_non_finite_embeddings_are_refused_rather_than_ranked(side: str) -> None:
    """``topk`` ranks NaN scores anyway (arbitrarily): a metric from them would look like a real number."""
    data = random_data(5)
    user_emb, item_emb = embeddings(5, data)
    (user_emb if side == "user" else item_emb)[1, 2] = float("nan")
    with pytest.raises(ValueError, match=f"{side}_emb holds NaN or infinite values: no ranking metric"):
        ranking_metrics(user_emb, item_emb, data, "test")
