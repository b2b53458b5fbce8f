"""Tests of the recommendation protocol (mmsheaf.recsys.protocol): cached runs, robustness, tuning."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from mmsheaf.recsys import protocol as proto
from mmsheaf.recsys.protocol import RecRunCache, RecRunSpec
from mmsheaf.runs.cache import RunsFailed

OPTS = {"num_users": 40, "num_items": 50, "interactions_per_user": 10}
TRAIN = {"epochs": 3, "batch_size": 128, "patience": 2, "lr": 0.01}


def spec(model: str = "lightgcn", seed: int = 0, **kw) -> RecRunSpec:
    return RecRunSpec("planted", model, {"dim": 8}, TRAIN, seed, OPTS, **kw)


def test_key_covers_every_setting() -> None:
    base = spec()
    assert base.key() == spec().key()
    variants = [spec(seed=1), spec("mf"), RecRunSpec("planted", "lightgcn", {"dim": 9}, TRAIN, 0, OPTS),
                RecRunSpec("planted", "lightgcn", {"dim": 8}, {**TRAIN, "lr": 0.02}, 0, OPTS),
                RecRunSpec("planted", "lightgcn", {"dim": 8}, TRAIN, 0, {**OPTS, "seed": 3}),
                spec(robustness=(0.0, 1.0)), spec(save_embeddings=True)]  # fmt: skip
    assert len({v.key() for v in variants} | {base.key()}) == len(variants) + 1
    with pytest.raises(ValueError, match="unknown training settings"):
        RecRunSpec("planted", "mf", train={"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown interaction dataset"):
        proto.load_interactions("netflix")


def test_runs_are_cached_and_resumed(tmp_path, monkeypatch) -> None:
    cache = RecRunCache(tmp_path)
    specs = [spec(seed=s) for s in (0, 1)]
    first = proto.run_specs(specs, cache, progress=False)
    assert not first.cached.any() and len(cache) == 2
    # same seed, same result: the runs are deterministic
    again = proto.run_specs([spec(seed=0)], RecRunCache(tmp_path / "other"), progress=False)
    assert again["test_ndcg@20"].iloc[0] == first["test_ndcg@20"].iloc[0]
    calls = []
    monkeypatch.setattr(proto, "_run", lambda *a: calls.append(a) or pytest.fail("should be cached"))
    second = proto.run_specs(specs, cache, progress=False)
    assert second.cached.all() and not calls
    pd.testing.assert_series_equal(first["test_ndcg@20"], second["test_ndcg@20"])


def test_summary_is_mean_and_std_over_seeds(tmp_path) -> None:
    df = proto.run_specs([spec(seed=s) for s in (0, 1, 2)], RecRunCache(tmp_path), progress=False)
    summary = proto.summarise_runs(df)
    row = summary.iloc[0]
    assert row.n_seeds == 3
    assert row["ndcg@20"] == pytest.approx(df["test_ndcg@20"].mean())
    assert row["std_ndcg@20"] == pytest.approx(df["test_ndcg@20"].std(ddof=0))


def test_robustness_curves_and_embeddings(tmp_path) -> None:
    cache = RecRunCache(tmp_path)
    s = spec("mm-sheaf", robustness=(0.0, 0.5, 1.0), save_embeddings=True)
    df = proto.run_specs([s], cache, progress=False)
    rob = pd.DataFrame(df.result.iloc[0]["robustness"])
    assert set(rob.modality) == {"text", "tabular"} and sorted(set(rob.fraction)) == [0.0, 0.5, 1.0]
    # at fraction 0 nothing is removed: the curve starts at the run's own test metric
    start = rob[(rob.modality == "text") & (rob.fraction == 0.0)]["ndcg@20"].item()
    assert start == pytest.approx(df["test_ndcg@20"].iloc[0], abs=1e-6)
    emb = cache.embeddings(s)
    assert emb["item"].shape == (50, 8) and emb["user"].shape == (40, 8)
    with pytest.raises(ValueError, match="save_embeddings=True"):
        cache.embeddings(spec("mf"))


def test_id_only_models_are_flat_under_modality_removal(tmp_path) -> None:
    df = proto.run_specs([spec("lightgcn", robustness=(0.0, 1.0))], RecRunCache(tmp_path), progress=False)
    rob = pd.DataFrame(df.result.iloc[0]["robustness"])
    assert rob.groupby("modality")["ndcg@20"].nunique().eq(1).all()


def test_tune_uses_the_budget_and_returns_split_params(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    space = {"lr": {"type": "float", "low": 0.001, "high": 0.05, "log": True},
             "layers": {"type": "int", "low": 1, "high": 2}}  # fmt: skip
    study, best = proto.tune("lightgcn", "planted", space, 3, hparams={"dim": 8}, train=TRAIN,
                             data_options=OPTS, cache=RecRunCache(tmp_path / "runs"), progress=False)  # fmt: skip
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert set(best) == {"hparams", "train"}
    assert best["hparams"]["dim"] == 8 and best["hparams"]["layers"] == study.best_params["layers"]
    assert best["train"]["lr"] == pytest.approx(study.best_params["lr"]) and best["train"]["epochs"] == 3
    assert len(RecRunCache(tmp_path / "runs")) == 3  # every trial is a cached run
    again, best_again = proto.tune("lightgcn", "planted", space, 3, hparams={"dim": 8}, train=TRAIN,
                                   data_options=OPTS, cache=RecRunCache(tmp_path / "runs"), progress=False)  # fmt: skip
    assert len(again.trials) == 3 and best_again == best  # resumed, not rerun


def test_ml100k_loaders_are_registered() -> None:
    assert {"ml100k", "ml100k-cold", "planted"} <= set(proto.DATASETS)
    assert isinstance(proto.load_interactions("planted", **OPTS).train, torch.Tensor)


def test_a_run_that_diverges_is_recorded_as_failed_never_cached_and_retried(tmp_path, monkeypatch) -> None:
    """An initialisation so large that every score overflows: the loss is NaN from the first step. The run used
    to be cached with metrics ranked by NaN scores; now it fails, named, and the next call runs it again."""
    cache = RecRunCache(tmp_path)
    bad, good = RecRunSpec("planted", "mf", {"dim": 8, "init_std": 1e30}, TRAIN, 0, OPTS), spec("mf")
    with pytest.raises(RunsFailed, match=r"1 run\(s\) failed[\s\S]*mf seed 0 \(run [0-9a-f]{12}\): "
                                         r"NonFiniteTrainingError: mf on planted \(seed 0, lr 0.01\) produced no "
                                         r"usable epoch: the training loss was not finite at epoch 1"):  # fmt: skip
        proto.run_specs([bad, good], cache, progress=False)
    assert cache.keys() == [good.key()] and list(cache.failures()) == [bad.key()]
    assert "NonFiniteTrainingError" in cache.failures()[bad.key()]
    calls = []
    fit = proto.fit_recommender
    monkeypatch.setattr(proto, "fit_recommender", lambda *a, **k: calls.append(k["name"]) or fit(*a, **k))
    with pytest.raises(RunsFailed):
        proto.run_specs([bad, good], cache, progress=False)
    assert calls == ["mf on planted"] and len(cache) == 1  # retried (and failed again), the good one read back


def test_nan_features_fail_the_run_up_front_and_the_repaired_rerun_is_cached(tmp_path, monkeypatch) -> None:
    clean = proto.load_interactions("planted", **OPTS)
    text = clean.item_features["text"].clone()
    text[7] = float("nan")
    poisoned = clean.replace(item_features={**clean.item_features, "text": text})
    monkeypatch.setattr(proto, "load_interactions", lambda name, **options: poisoned)
    cache, s = RecRunCache(tmp_path), spec("mm-sheaf")
    with pytest.raises(RunsFailed, match=r"ValueError: planted: item_features\['text'\]: 1 of 50 observed rows "
                                         r"hold NaN or infinite values \(rows 7\)"):  # fmt: skip
        proto.run_specs([s], cache, progress=False)
    assert len(cache) == 0 and list(cache.failures()) == [s.key()]
    monkeypatch.setattr(proto, "load_interactions", lambda name, **options: clean)  # the data repaired
    df = proto.run_specs([s], cache, progress=False)
    assert df.cached.tolist() == [False] and len(cache) == 1 and cache.failures() == {}
