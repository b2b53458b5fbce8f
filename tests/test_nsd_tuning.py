"""Tests of the tuned baselines of the node-classification study (mmsheaf.nsd.tuning, issue 19 part 3): the
published configurations, the search budget, the protocol's baseline choices, the tables and the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mmsheaf.data import CSBMConfig, contextual_sbm
from mmsheaf.nsd import runs as nsd_runs
from mmsheaf.nsd.numbers import tuning_numbers
from mmsheaf.nsd.protocol import BaselineChoice, NsdProtocol
from mmsheaf.nsd.tables import accuracy_display, baseline_configs_display
from mmsheaf.nsd.train import TrainResult
from mmsheaf.nsd.tuning import BaselineSearch, PublishedBaselines, choices_of, tune_baselines
from mmsheaf.runs.cache import RunCache

TRAIN = {"lr": 0.01, "weight_decay": 5e-4, "epochs": 5, "patience": 5, "stop_strategy": "acc"}
DEFAULTS = {"mlp": {"hidden_channels": 8}, "gcn": {"hidden_channels": 8}, "diag-nsd": {"d": 2, "hidden_channels": 4}}
CONFIGS = {"a": {"gcn": {"layers": 3}, "sheaf": {"layers": 1}}}
SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
         "hidden_channels": {"type": "categorical", "choices": [4, 8, 16]}}  # fmt: skip


def protocol() -> NsdProtocol:
    return NsdProtocol.from_params(TRAIN, DEFAULTS, CONFIGS)


def loader(name: str):
    return contextual_sbm(CSBMConfig(num_nodes=30, num_classes=3, mean_degree=3.0, num_features=4, num_splits=2,
                                     seed={"a": 0, "b": 1}[name]))  # fmt: skip


class ScoredTrainer:
    """Replaces train_node_classifier: validation accuracy rises with the learning rate, test accuracy falls
    with it (so a choice made on test would be the opposite one); records the runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, model, data, split, model_hparams, cfg) -> TrainResult:
        self.calls.append((type(model).__name__, json.dumps(dict(model_hparams), sort_keys=True), split))
        val = min(0.99, cfg.lr * 5 + 0.01 * split)
        return TrainResult(0.9, val, 1.0 - val, best_epoch=1, epochs_run=2, seconds=0.0, ms_per_epoch=1.0)


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ScoredTrainer:
    fake = ScoredTrainer()
    monkeypatch.setattr(nsd_runs, "train_node_classifier", fake)
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))  # the studies' journals
    monkeypatch.delenv("MMSHEAF_WORKERS", raising=False)
    monkeypatch.delenv("MMSHEAF_SCHEDULER", raising=False)
    return fake


# -- the protocol's baseline choices -------------------------------------------------------------------------
def test_a_baseline_choice_replaces_configs_and_train_for_that_row_only() -> None:
    base = protocol()
    tuned = base.with_baselines({("a", "gcn"): BaselineChoice({"hidden_channels": 16}, {"lr": 0.05})})
    hp, cfg = tuned.resolve("a", "gcn")
    assert hp == {"hidden_channels": 16} and cfg.lr == 0.05 and cfg.epochs == 5  # CONFIGS' layers=3 is gone
    assert base.resolve("a", "gcn")[0] == {"hidden_channels": 8, "layers": 3}  # the untuned row
    assert tuned.resolve("b", "gcn") == base.resolve("b", "gcn")  # other datasets keep theirs
    assert tuned.resolve("a", "diag-nsd") == base.resolve("a", "diag-nsd")  # the sheaf models too
    assert tuned.untuned().resolve("a", "gcn") == base.resolve("a", "gcn")
    assert tuned.resolve("a", "gcn", layers=4)[0]["layers"] == 4  # the depth sweep's override still wins
    sbm = tuned.sbm_specs([0.5], ["gcn"], [0], {"num_nodes": 30, "num_classes": 3, "num_features": 4})
    assert sbm == base.sbm_specs([0.5], ["gcn"], [0], {"num_nodes": 30, "num_classes": 3, "num_features": 4})


def test_choices_are_refused_for_sheaf_models_and_bad_training_keys() -> None:
    with pytest.raises(ValueError, match="sheaf model"):
        protocol().with_baselines({("a", "diag-nsd"): BaselineChoice({"d": 3})})
    with pytest.raises(ValueError, match="unknown training settings"):
        BaselineChoice({}, {"learning_rate": 0.1})


# -- published configurations and the search --------------------------------------------------------------
def test_published_configurations_merge_shared_blocks_and_sources() -> None:
    published = PublishedBaselines.from_params({"gcnii": {
        "source": "full.sh",
        "shared": {"hidden_channels": 64, "train": {"lr": 0.01, "epochs": 1500}},
        "cora": {"layers": 64, "train": {"weight_decay": 1e-4}},
        "film": {"source": "GGCN's script", "hidden_channels": 16, "train": {"lr": 0.02}},
    }})  # fmt: skip
    cora, film = published.choices[("cora", "gcnii")], published.choices[("film", "gcnii")]
    assert dict(cora.hparams) == {"hidden_channels": 64, "layers": 64}
    assert dict(cora.train) == {"lr": 0.01, "epochs": 1500, "weight_decay": 1e-4}
    assert dict(film.hparams) == {"hidden_channels": 16} and film.train["lr"] == 0.02
    assert (cora.source, film.source) == ("published: full.sh", "published: GGCN's script")
    with pytest.raises(ValueError, match="sheaf model"):
        PublishedBaselines.from_params({"orth-nsd": {"cora": {"d": 2}}})
    with pytest.raises(ValueError, match="mapping"):
        PublishedBaselines.from_params({"gcn": {"cora": 3}})
    assert ("cora", "gcn") in PublishedBaselines.from_params({"gcn": {"Cora": {"layers": 2}}}).choices
    with pytest.raises(ValueError, match="hiden"):  # and a misspelt knob would fail after hours of searches
        PublishedBaselines.from_params({"gcn": {"cora": {"hiden": 16}}})


@pytest.mark.parametrize("bad, match", [
    ({"models": ["diag-nsd"]}, "sheaf model"),
    ({"models": ["mlp"], "trials": 0}, "trials"),
    ({"models": ["mlp"], "splits": []}, "splits"),
    ({"models": ["mlp"], "model_space": {"gcn": {}}}, "not searched"),
    ({"models": ["mlp"], "budget": 3}, "unknown keys"),
    ({"models": ["mlp"], "trials": "12"}, "must be an int"),
    ({"models": ["gcn"], "space": {"K": {"type": "int", "low": 1, "high": 4}}}, "no such setting"),
    ({"models": ["mlp"], "space": {"lr": {"type": "float", "low": 1.0}}}, "high"),
])  # fmt: skip
def test_bad_search_parameters_are_refused(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BaselineSearch.from_params(bad)


def test_the_study_name_follows_every_setting_of_the_search() -> None:
    search = BaselineSearch(["mlp"], 3, [0], SPACE)
    name = search.study_config(protocol(), "a", "mlp").name
    assert name == search.study_config(protocol(), "a", "mlp").name and name.startswith("nsd-a-mlp-")
    assert search.study_config(protocol(), "b", "mlp").name != name
    assert BaselineSearch(["mlp"], 3, [0, 1], SPACE).study_config(protocol(), "a", "mlp").name != name
    other_train = NsdProtocol.from_params({**TRAIN, "epochs": 6}, DEFAULTS, CONFIGS)
    assert search.study_config(other_train, "a", "mlp").name != name
    assert BaselineSearch(["mlp"], 30, [0], SPACE).study_config(protocol(), "a", "mlp").name == name  # resumable
    assert BaselineSearch(["mlp"], 3, [0], SPACE, startup_trials=2).study_config(protocol(), "a", "mlp").name != name
    other_default = NsdProtocol.from_params(TRAIN, {**DEFAULTS, "mlp": {"hidden_channels": 8, "dropout": 0.5}}, CONFIGS)
    assert search.study_config(other_default, "a", "mlp").name == name  # 0.5 is MLPConfig's default: same runs
    assert search.study_config(protocol(), "a", "mlp").n_startup_trials == search.startup_trials


# -- tune_baselines ---------------------------------------------------------------------------------------
def test_tune_baselines_publishes_searches_and_keeps_defaults(trainer: ScoredTrainer, tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "runs")
    published = PublishedBaselines.from_params({"gcn": {"source": "a script", "a": {"hidden_channels": 16},
                                                        "zz": {"hidden_channels": 4}}})  # fmt: skip
    search = BaselineSearch(["mlp"], trials=4, splits=[0, 1], space=SPACE, seed=3, startup_trials=2)
    lines: list[str] = []
    tuning = tune_baselines(protocol(), ["a", "b"], ["mlp", "gcn", "diag-nsd"], search, published, cache, loader,
                            log=lines.append)  # fmt: skip
    assert lines[0] == "published configurations not used in this run: gcn on zz"  # e.g. a misspelt dataset
    assert len(lines) == 3 and all("best mean val. acc." in line for line in lines[1:])
    configs = tuning.configs.set_index(["dataset", "model"])
    assert configs.configuration.to_dict() == {("a", "mlp"): "search", ("a", "gcn"): "published",
                                               ("b", "mlp"): "search", ("b", "gcn"): "defaults"}  # fmt: skip
    assert len(tuning.studies) == 2 and (configs.loc[[("a", "mlp"), ("b", "mlp")], "trials"] == 4).all()
    assert len(trainer.calls) == 2 * 4 * 2 and len(tuning.trial_keys) == 16  # 4 trials x 2 splits per search
    # the choice is the trial with the best mean validation accuracy (the highest lr here), never test's
    for ds in ("a", "b"):
        trials = tuning.histories[tuning.histories.dataset == ds]
        best = trials.loc[trials.value.idxmax()]
        assert tuning.protocol.resolve(ds, "mlp")[1].lr == best["params_lr"] == trials["params_lr"].max()
        assert configs.loc[(ds, "mlp"), "val_mean"] == pytest.approx(best["value"])
    # the best trial's runs are the table's runs on the search splits (the objective builds the same specs)
    specs = tuning.protocol.table_specs(["a", "b"], ["mlp"], [0, 1])
    assert {s.key() for s in specs} <= set(tuning.trial_keys)
    assert tuning.protocol.resolve("a", "gcn")[0] == {"hidden_channels": 16}
    assert tuning.protocol.resolve("b", "gcn") == protocol().resolve("b", "gcn")
    # the configs table, written as the notebook writes it, reads back into the same protocol (ints stay ints)
    tuning.configs.to_csv(tmp_path / "configs.csv", index=False)
    back = protocol().with_baselines(choices_of(pd.read_csv(tmp_path / "configs.csv")))
    for ds in ("a", "b"):
        for m in ("mlp", "gcn"):
            assert back.resolve(ds, m) == tuning.protocol.resolve(ds, m)
    assert isinstance(back.resolve("a", "mlp")[0]["hidden_channels"], int)
    # a rerun replays the studies: no trial trains again and the choices are the same
    again = tune_baselines(protocol(), ["a", "b"], ["mlp", "gcn"], search, published, cache, loader)
    assert len(trainer.calls) == 16 and again.configs.equals(tuning.configs)
    assert again.protocol.resolve("a", "mlp") == tuning.protocol.resolve("a", "mlp")


def test_a_failed_trial_uses_its_slot_and_the_search_goes_on(trainer: ScoredTrainer, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:  # fmt: skip
    def diverges(model, data, split, model_hparams, cfg) -> TrainResult:
        if cfg.lr > 0.02:
            raise ValueError("the loss was not finite")
        return trainer(model, data, split, model_hparams, cfg)

    monkeypatch.setattr(nsd_runs, "train_node_classifier", diverges)
    search = BaselineSearch(["mlp"], trials=6, splits=[0], space=SPACE, startup_trials=6)
    tuning = tune_baselines(protocol(), ["a"], ["mlp"], search, PublishedBaselines(), RunCache(tmp_path), loader)
    states = tuning.histories.state.value_counts().to_dict()
    assert sum(states.values()) == 6 and states.get("FAIL", 0) >= 1 and states.get("COMPLETE", 0) >= 1
    assert tuning.protocol.resolve("a", "mlp")[1].lr <= 0.02 and tuning.configs.trials.item() == states["COMPLETE"]


def test_the_searched_trials_really_train_and_score_validation(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:  # fmt: skip
    """Without the fake trainer: two trials of a real MLP, the score the mean validation accuracy in %."""
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MMSHEAF_WORKERS", raising=False)
    cache = RunCache(tmp_path / "runs")
    tuning = tune_baselines(protocol(), ["a"], ["mlp"], BaselineSearch(["mlp"], 2, [0, 1], SPACE),
                            PublishedBaselines(), cache, loader)  # fmt: skip
    runs = nsd_runs.run_experiments(tuning.protocol.table_specs(["a"], ["mlp"], [0, 1]), cache, data_loader=loader,
                                    progress=False)  # fmt: skip
    assert runs.cached.all()  # reused, not retrained
    assert tuning.configs.val_mean.item() == pytest.approx(100 * runs.val_acc.mean())


# -- tables and numbers -------------------------------------------------------------------------------------
def _table(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "model": m, "mean": v, "std": 1.0, "n_splits": 10,
                          "paper_mean": p, "paper_std": 2.0} for d, m, v, p in rows])  # fmt: skip


def test_tuning_numbers_count_rows_against_the_paper_and_the_untuned_ablation() -> None:
    tuned = _table([("texas", "gcn", 60.0, 55.0), ("texas", "mlp", 70.0, 80.0), ("texas", "diag-nsd", 85.0, 85.0),
                    ("cora", "gcn", 87.0, 87.0), ("cora", "mlp", 75.0, 76.0), ("cora", "diag-nsd", 86.0, 87.0)])
    untuned = _table([("texas", "gcn", 50.0, 55.0), ("texas", "mlp", 79.0, 80.0), ("cora", "gcn", 88.0, 87.0),
                      ("cora", "mlp", 70.0, 76.0)])  # fmt: skip
    configs = pd.DataFrame({"dataset": ["texas", "texas", "cora", "cora"], "model": ["gcn", "mlp"] * 2,
                            "configuration": ["search", "search", "published", "defaults"]})  # fmt: skip
    n = tuning_numbers(tuned, untuned, configs, trials=12, splits=[0, 1])
    assert (n["NsdTuneSearched"], n["NsdTunePublished"], n["NsdTuneDefaults"]) == ("2", "1", "1")
    assert (n["NsdTuneTrials"], n["NsdTuneSplits"]) == ("12", "0, 1")
    assert n["NsdBaselineMeets"] == "3"  # texas mlp 70 < 80 - 2
    assert (n["NsdUntunedBaselineMeets"], n["NsdUntunedBaselineBelow"]) == ("2", "2")  # texas gcn, cora mlp
    assert (n["NsdTunedBetter"], n["NsdTunedCompared"]) == ("2", "4")  # texas gcn, cora mlp
    assert n["NsdSheafWinsUntuned"] == "1"  # texas 85 > 79; cora 86 < 88
    with pytest.raises(ValueError, match="configs"):
        tuning_numbers(tuned, untuned, configs.iloc[:0], 12, [0])


def test_the_table_shows_the_untuned_row_and_the_configs_table_each_row() -> None:
    tuned = _table([("texas", "gcn", 60.0, 55.0), ("texas", "diag-nsd", 85.0, 85.0)])
    untuned = _table([("texas", "gcn", 50.0, 55.0)])
    display = {"gcn": "GCN", "diag-nsd": "Diag-NSD"}
    shown = accuracy_display(tuned, ["texas"], ["gcn", "diag-nsd"], display, untuned=untuned)
    assert shown.Dataset.tolist()[-1].endswith("untuned") and len(shown) == 3
    assert "50.0" in str(shown.iloc[2]["GCN"]) and str(shown.iloc[2]["Diag-NSD"]) == "--"
    assert len(accuracy_display(tuned, ["texas"], ["gcn", "diag-nsd"], display)) == 2
    configs = pd.DataFrame({"dataset": ["texas"], "model": ["gcn"], "configuration": ["search"],
                            "source": ["s"], "settings": ["lr=0.01"], "val_mean": [61.0], "trials": [12],
                            "config": ["{}"]})  # fmt: skip
    out = baseline_configs_display(configs, display)
    assert out.columns.tolist() == ["Dataset", "Model", "Configuration", "Settings", "Val. acc."]
    assert out.iloc[0].tolist() == ["Texas", "GCN", "search", "lr=0.01", 61.0]


def test_the_searches_run_on_a_two_worker_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The objective travels to the workers (plain values only); the study fills its exact budget there and
    the best trial's runs land in the shared run cache."""
    import optuna
    from mmsheaf.data.nsd_graphs import csbm_name, load_graph
    from mmsheaf.runs import executor as ex
    from mmsheaf.runs.budget import OWNER_ATTR

    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    cluster = ex.DaskExecutor(workers=2)
    try:
        monkeypatch.setattr(ex, "_SHARED", cluster)
        name = csbm_name(0.3, num_nodes=60, num_classes=3, num_features=4)
        fast = NsdProtocol.from_params(TRAIN, DEFAULTS)
        search = BaselineSearch(["mlp"], trials=4, splits=[0], space=SPACE)
        tuning = tune_baselines(fast, [name], ["mlp"], search, PublishedBaselines(), RunCache(tmp_path / "runs"),
                                load_graph)  # fmt: skip
        study = optuna.load_study(study_name=tuning.studies[0], storage=hpo_storage(search, fast, name))
    finally:
        cluster.close()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and tuning.configs.trials.item() == 4
    assert all(t.user_attrs[OWNER_ATTR] for t in complete)  # each trial ran on a worker through its budget slot
    best = max(complete, key=lambda t: t.value)
    assert tuning.protocol.resolve(name, "mlp")[1].lr == best.params["lr"]
    cached = RunCache(tmp_path / "runs")
    assert all(cached.get(s, s.key()) is not None for s in tuning.protocol.table_specs([name], ["mlp"], [0]))


def hpo_storage(search: BaselineSearch, protocol_: NsdProtocol, dataset: str):
    from mmsheaf.runs.hpo import open_storage

    return open_storage(search.study_config(protocol_, dataset, "mlp"))
