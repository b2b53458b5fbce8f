"""Tests of BPR training (mmsheaf.recsys.train) and the planted data set (mmsheaf.recsys.synthetic)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from mmsheaf.recsys import (
    BPRSampler,
    NonFiniteTrainingError,
    RecFitResult,
    RecTrainConfig,
    bpr_loss,
    build_recommender,
    evaluate_recommender,
    fit_recommender,
    interactions_to,
    planted_interactions,
)
from mmsheaf.nsd.train import set_seed

FAST = RecTrainConfig(lr=0.01, batch_size=256, epochs=40, patience=5, seed=0)
TIMING = {"seconds", "ms_per_epoch"}


@pytest.fixture(scope="module")
def planted():
    return planted_interactions()  # 60 users, 80 items in 4 groups


@pytest.fixture(scope="module")
def small():
    return planted_interactions(num_users=20, num_items=24, num_groups=2, interactions_per_user=6, seed=3)


def build(name: str, data, seed: int = 0, **hparams):
    set_seed(seed)
    return build_recommender(name, data, **hparams)


def strip(result: RecFitResult) -> dict:
    out = dataclasses.asdict(result)
    for key in TIMING:
        out.pop(key)
    for row in out["history"]:
        row.pop("seconds")
    return out


# ----------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_training_beats_random_ranking_clearly(name: str, planted) -> None:
    model = build(name, planted, dim=32)
    before = evaluate_recommender(model, planted, "test")
    result = fit_recommender(model, planted, FAST)
    # A random ranking of 80 items minus ~10 training items retrieves ~20/70 of a user's items in the top 20.
    chance = 20 / (planted.num_items - 10)
    assert result.test["recall@20"] > 1.8 * chance
    assert result.test["recall@20"] > before["recall@20"] + 0.2
    assert result.val["num_users"] == result.test["num_users"] == planted.num_users
    assert 1 <= result.best_epoch <= result.epochs_run <= FAST.epochs
    assert result.seconds > 0 and result.ms_per_epoch > 0
    assert [h["epoch"] for h in result.history] == list(range(1, result.epochs_run + 1))


@pytest.mark.parametrize("name", ["lightgcn", "vbpr", "late-fusion"])
def test_same_seed_same_result(name: str, small) -> None:
    cfg = dataclasses.replace(FAST, epochs=6, batch_size=32, seed=7)
    a_model, b_model = build(name, small, dim=8), build(name, small, dim=8)
    a, b = fit_recommender(a_model, small, cfg), fit_recommender(b_model, small, cfg)
    assert strip(a) == strip(b)
    assert all(torch.equal(p, q) for p, q in zip(a_model.parameters(), b_model.parameters(), strict=True))
    c = fit_recommender(build(name, small, dim=8), small, dataclasses.replace(cfg, seed=8))
    assert [h["loss"] for h in c.history] != [h["loss"] for h in a.history]


def test_early_stopping_stops_after_patience(small) -> None:
    cfg = RecTrainConfig(lr=0.05, batch_size=64, epochs=300, patience=3, eval_every=2, seed=0)
    result = fit_recommender(build("mf", small, dim=8), small, cfg)
    assert result.epochs_run < cfg.epochs
    assert result.epochs_run == result.best_epoch + cfg.patience * cfg.eval_every
    assert [h["epoch"] for h in result.history] == list(range(2, result.epochs_run + 1, 2))
    best = max(result.history, key=lambda h: h["val_recall@20"])
    assert best["epoch"] == result.best_epoch  # the first evaluation reaching the maximum


def test_best_state_is_restored(small) -> None:
    cfg = RecTrainConfig(lr=0.05, batch_size=64, epochs=300, patience=4, seed=1)
    model = build("lightgcn", small, dim=8, layers=2)
    result = fit_recommender(model, small, cfg)
    assert result.best_epoch < result.epochs_run  # later epochs were worse, yet the best state is back
    assert evaluate_recommender(model, small, "val") == result.val
    assert evaluate_recommender(model, small, "test") == result.test
    row = next(h for h in result.history if h["epoch"] == result.best_epoch)
    assert row["val_recall@20"] == result.val["recall@20"] and row["val_ndcg@10"] == result.val["ndcg@10"]


def test_last_epoch_is_always_evaluated_and_no_early_stop_when_patience_is_large(small) -> None:
    cfg = RecTrainConfig(lr=0.01, batch_size=64, epochs=7, patience=100, eval_every=3, seed=0)
    result = fit_recommender(build("mf", small, dim=8), small, cfg)
    assert result.epochs_run == 7 and [h["epoch"] for h in result.history] == [3, 6, 7]


def test_callback_sees_every_evaluation_and_its_exceptions_propagate(small) -> None:
    optuna = pytest.importorskip("optuna")
    seen = []

    def callback(epoch, metrics):
        seen.append((epoch, metrics["ndcg@10"]))
        if epoch == 3:
            raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        fit_recommender(
            build("mf", small, dim=8), small, dataclasses.replace(FAST, epochs=10), callback=callback
        )
    assert [e for e, _ in seen] == [1, 2, 3]


def test_max_seconds_and_progress_bar(small) -> None:
    cfg = dataclasses.replace(FAST, epochs=1000, patience=1000, max_seconds=1e-6)
    result = fit_recommender(build("mf", small, dim=8), small, cfg, progress=True)
    assert result.epochs_run == 1 and result.best_epoch == 1


def test_a_loss_that_is_never_finite_raises_instead_of_ranking_with_nan(small) -> None:
    """It used to report the metrics of the final model, ranked by NaN scores, as a finished run."""
    model = build("mf", small, dim=8)
    with torch.no_grad():
        model.user_embedding.weight[0] = float("nan")
    with pytest.raises(NonFiniteTrainingError,
                       match=r"MF \(seed 0, lr 0.01\) produced no usable epoch: the training loss was not finite at "
                             r"epoch 1, step 1\. Check the input features"):  # fmt: skip
        fit_recommender(model, small, FAST)


def test_a_loss_that_turns_non_finite_reports_the_best_finite_epoch_with_a_warning(small) -> None:
    model = build("lightgcn", small, dim=8)

    def poison(epoch, metrics):
        if epoch == 3:
            with torch.no_grad():
                model.item_embedding.weight[2] = float("inf")

    cfg = dataclasses.replace(FAST, epochs=10, patience=10)
    with pytest.warns(RuntimeWarning, match=r"LightGCN \(seed 0, lr 0.01\): the training loss was not finite at "
                                            r"epoch 4, step 1; training stopped and the best epoch"):  # fmt: skip
        result = fit_recommender(model, small, cfg, callback=poison)
    assert result.epochs_run == 4 and 1 <= result.best_epoch <= 3 and len(result.history) == 3
    assert all(math.isfinite(v) for v in [*result.val.values(), *result.test.values()])
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the best (finite) state is back


def test_embeddings_that_turn_non_finite_stop_training(small) -> None:
    class NanOnce(torch.nn.Module):
        def __init__(self, data, nan_call: int) -> None:
            super().__init__()
            self.inner, self.calls, self.nan_call = build("mf", data, dim=8), 0, nan_call

        def forward(self, data):
            self.calls += 1
            user, item = self.inner(data)
            return (user, item * float("nan")) if self.calls == self.nan_call else (user, item)

    # calls: train step of epoch 1, its evaluation, train step of epoch 2, its evaluation (NaN), the test
    with pytest.warns(RuntimeWarning, match="the embeddings were not finite at the validation of epoch 2"):
        result = fit_recommender(NanOnce(small, 4), small, dataclasses.replace(FAST, batch_size=1000))
    assert result.best_epoch == 1 and result.epochs_run == 2
    with pytest.raises(NonFiniteTrainingError, match="the embeddings were not finite at the validation of epoch 1"):
        fit_recommender(NanOnce(small, 2), small, dataclasses.replace(FAST, batch_size=1000))
    with pytest.raises(NonFiniteTrainingError, match=r"the embeddings of the best epoch \(\d+\) are not finite"):
        fit_recommender(NanOnce(small, 2 * FAST.epochs + 1), small,
                        dataclasses.replace(FAST, batch_size=1000, patience=FAST.epochs))  # fmt: skip


def test_without_validation_users_all_epochs_run_and_the_final_model_is_scored(small) -> None:
    """A cold-start split has no validation interaction among its candidates: nothing to select on, so the
    run trains every epoch (patience does not count these evaluations) and scores its final model."""
    no_val = small.replace(val=small.val[:, :0])
    cfg = dataclasses.replace(FAST, epochs=4, patience=1)
    model = build("mf", no_val, dim=8)
    result = fit_recommender(model, no_val, cfg)
    assert result.best_epoch == 0 and result.epochs_run == 4 and result.val["num_users"] == 0
    assert math.isfinite(result.test["ndcg@20"])
    assert result.test == evaluate_recommender(model, no_val, "test", cfg.ks)  # the final model's metrics


def test_non_finite_features_of_observed_rows_are_refused_up_front(small) -> None:
    text = small.item_features["text"].clone()
    text[[3, 5]] = float("nan")
    poisoned = small.replace(item_features={**small.item_features, "text": text})
    with pytest.raises(ValueError, match=r"item_features\['text'\]: 2 of 24 observed rows hold NaN or infinite "
                                         r"values \(rows 3, 5\); repair those rows, or mark them missing in "
                                         r"item_mask\['text'\]"):  # fmt: skip
        fit_recommender(build("vbpr", poisoned, dim=8), poisoned, FAST)
    # rows marked missing are never read, whatever they hold
    masked = poisoned.drop_modality("item", "text", torch.tensor([3, 5]))
    result = fit_recommender(build("vbpr", masked, dim=8), masked, dataclasses.replace(FAST, epochs=2))
    assert math.isfinite(result.test["ndcg@20"])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="monitor must be one of"):
        RecTrainConfig(monitor="recall@50")
    with pytest.raises(ValueError, match="monitor must be one of"):
        RecTrainConfig(monitor="hit@10")
    assert RecTrainConfig(ks=(5, 50), monitor="ndcg@50").ks == (5, 50)
    for bad in ({"lr": 0}, {"batch_size": 0}, {"patience": 0}, {"eval_every": 0}, {"max_seconds": 0},
                {"reg_weight": -1.0}):  # fmt: skip
        with pytest.raises(ValueError, match="RecTrainConfig"):
            RecTrainConfig(**bad)


# ----------------------------------------------------------------------------------------------- pieces
def test_negatives_are_never_training_items_and_cover_the_rest(small) -> None:
    sampler = BPRSampler(small, torch.Generator().manual_seed(0))
    users = torch.zeros(4000, dtype=torch.long)
    neg = sampler.negatives(users)
    train_items = set(small.train[1][small.train[0] == 0].tolist())
    assert not set(neg.tolist()) & train_items
    assert set(neg.tolist()) == set(range(small.num_items)) - train_items  # all the others come up
    assert not sampler.is_positive(small.train[0], sampler.negatives(small.train[0])).any()
    batches = sampler.epoch(50)
    assert sum(b[0].numel() for b in batches) == small.train.size(1)
    pairs = sorted(
        zip(torch.cat([b[0] for b in batches]).tolist(), torch.cat([b[1] for b in batches]).tolist())
    )
    assert pairs == sorted(zip(small.train[0].tolist(), small.train[1].tolist()))


def test_cold_items_are_never_negatives(small) -> None:
    """A cold item (id masked, no training interaction) is not in the training catalogue."""
    cold = torch.tensor([1, 4, 6])
    keep = ~torch.isin(small.train[1], cold)
    data = small.replace(train=small.train[:, keep]).drop_modality("item", "id", cold)
    neg = BPRSampler(data, torch.Generator().manual_seed(0)).negatives(torch.zeros(4000, dtype=torch.long))
    train_items = set(data.train[1][data.train[0] == 0].tolist())
    assert set(neg.tolist()) == set(range(small.num_items)) - train_items - set(cold.tolist())
    # with every item warm the draws are those of plain uniform sampling (earlier runs are reproduced)
    a = BPRSampler(small, torch.Generator().manual_seed(3)).negatives(small.train[0])
    b = torch.randint(small.num_items, small.train[0].shape, generator=torch.Generator().manual_seed(3))
    ok = ~BPRSampler(small, torch.Generator()).is_positive(small.train[0], b)
    assert torch.equal(a[ok], b[ok])


def test_a_user_with_every_item_has_no_negative(small) -> None:
    everything = torch.stack([torch.zeros(small.num_items, dtype=torch.long), torch.arange(small.num_items)])
    data = small.replace(train=torch.cat([small.train, everything], dim=1))
    with pytest.raises(ValueError, match="interacted with every item"):
        BPRSampler(data, torch.Generator())


def test_bpr_loss_formula() -> None:
    g = torch.Generator().manual_seed(0)
    user_emb, item_emb = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    u, p, n = torch.tensor([0, 2]), torch.tensor([1, 4]), torch.tensor([3, 0])
    s_pos, s_neg = (user_emb[u] * item_emb[p]).sum(1), (user_emb[u] * item_emb[n]).sum(1)
    reg = (user_emb[u].pow(2).sum() + item_emb[p].pow(2).sum() + item_emb[n].pow(2).sum()) / (2 * 2)
    expected = F.softplus(s_neg - s_pos).mean() + 0.1 * reg
    assert torch.allclose(bpr_loss(user_emb, item_emb, u, p, n, 0.1), expected)
    assert torch.allclose(bpr_loss(user_emb, item_emb, u, p, n), -F.logsigmoid(s_pos - s_neg).mean())


def test_interactions_to_same_device_is_a_no_op(small) -> None:
    assert interactions_to(small, "cpu") is small


# ----------------------------------------------------------------------------------------------- planted data
def test_planted_interactions_structure() -> None:
    data = planted_interactions(num_users=40, num_items=48, num_groups=4, interactions_per_user=10, noise=0.1)
    assert (data.num_users, data.num_items) == (40, 48)
    for split, per_user in (("train", 8), ("val", 1), ("test", 1)):
        assert torch.equal(torch.bincount(getattr(data, split)[0], minlength=40), torch.full((40,), per_user))
    pairs = [set(map(tuple, getattr(data, s).t().tolist())) for s in ("train", "val", "test")]
    assert sum(len(p) for p in pairs) == len(set.union(*pairs)) == 400  # distinct, disjoint splits
    edges = torch.cat([data.train, data.val, data.test], dim=1)
    same_group = (edges[0] % 4 == edges[1] % 4).float().mean()
    assert same_group > 0.8  # ~ 0.9 + 0.1 / 4
    assert data.item_features["text"].shape == (48, 8) and data.item_features["tabular"].shape == (48, 5)
    assert data.user_features["tabular"].shape == (40, 5) and "text" not in data.user_features
    assert all(m.all() for m in [*data.user_mask.values(), *data.item_mask.values()])
    assert data.item_labels.shape == (48, 4) and data.candidates is None
    # Features indicate the group: nearest group centroid recovers it for most items.
    x, group = data.item_features["text"], torch.arange(48) % 4
    centroids = torch.stack([x[group == g].mean(0) for g in range(4)])
    assert (torch.cdist(x, centroids).argmin(1) == group).float().mean() > 0.9


def test_planted_interactions_is_seeded_and_validated() -> None:
    a, b, c = planted_interactions(seed=2), planted_interactions(seed=2), planted_interactions(seed=3)
    assert torch.equal(a.train, b.train) and torch.equal(a.item_features["text"], b.item_features["text"])
    assert not torch.equal(a.train, c.train)
    with pytest.raises(ValueError, match="interactions_per_user"):
        planted_interactions(num_items=10, interactions_per_user=11)
    with pytest.raises(ValueError, match="num_groups"):
        planted_interactions(num_items=3, num_groups=4)
