"""Tests of the resumable experiment runner (mmsheaf.nsd.runs), the NSD protocol (mmsheaf.nsd.protocol) and its
graphs (mmsheaf.data.nsd_graphs)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from mmsheaf.data import CSBMConfig, contextual_sbm, nsd_graphs
from mmsheaf.nsd import runs as nsd_runs
from mmsheaf.nsd.protocol import Candidate, DatasetConfig, NsdProtocol
from mmsheaf.nsd.runs import ExperimentSpec, run_experiments, summarise
from mmsheaf.nsd.train import NonFiniteTrainingError, TrainConfig, TrainResult, train_node_classifier
from mmsheaf.runs.cache import RunCache, RunsFailed

CFG = TrainConfig(epochs=5, patience=5, seed=0)


class CountingLoader:
    """A data_loader returning tiny CSBM graphs (one seed per name) and counting its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str):
        self.calls.append(name)
        seed = {"a": 0, "b": 1}[name]
        return contextual_sbm(CSBMConfig(num_nodes=30, num_classes=3, mean_degree=3.0, num_features=4,
                                         num_splits=3, seed=seed))  # fmt: skip


class FakeTrainer:
    """Replaces train_node_classifier: records calls, optionally fails on call number ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[str, int, dict]] = []
        self.fail_at = fail_at

    def __call__(self, model, data, split, model_hparams, cfg) -> TrainResult:
        self.calls.append((model, split, dict(model_hparams)))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("interrupted")
        acc = 0.5 + 0.1 * split
        return TrainResult(acc, acc, acc, best_epoch=3, epochs_run=5, seconds=0.01, ms_per_epoch=2.0)


def grid(hidden: int = 8) -> list[ExperimentSpec]:
    return [
        ExperimentSpec(dataset, model, split, {"hidden_channels": hidden}, CFG)
        for dataset in ("a", "b")
        for model in ("mlp", "gcn")
        for split in (0, 1)
    ]


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch) -> FakeTrainer:
    fake = FakeTrainer()
    monkeypatch.setattr(nsd_runs, "train_node_classifier", fake)
    return fake


# ----------------------------------------------------------------------------------------------- keys
def test_key_is_stable_and_covers_everything() -> None:
    spec = ExperimentSpec("texas", "gcn", 3, {"layers": 2, "hidden_channels": 16}, TrainConfig(lr=0.02))
    same = ExperimentSpec("texas", "GCN", 3, {"hidden_channels": 16, "layers": 2}, TrainConfig(lr=0.02))
    assert spec == same and hash(spec) == hash(same) and spec.key() == same.key()
    assert len(spec.key()) == 64 and int(spec.key(), 16) >= 0
    changed = [
        ExperimentSpec("cornell", "gcn", 3, spec.hparams, spec.train),
        ExperimentSpec("texas", "gat", 3, {"layers": 2, "hidden_channels": 16}, spec.train),
        ExperimentSpec("texas", "gcn", 4, spec.hparams, spec.train),
        ExperimentSpec("texas", "gcn", 3, {"layers": 3, "hidden_channels": 16}, spec.train),
        ExperimentSpec("texas", "gcn", 3, spec.hparams, TrainConfig(lr=0.02, seed=1)),
        ExperimentSpec("texas", "gcn", 3, spec.hparams, TrainConfig(lr=0.02, sheaf_decay=0.1)),
    ]
    keys = {spec.key()} | {c.key() for c in changed}
    assert len(keys) == 1 + len(changed)


def test_key_is_canonical() -> None:
    explicit = ExperimentSpec("a", "gcn", 0, {"hidden_channels": 64, "dropout": 0.5}, TrainConfig(lr=1))
    implicit = ExperimentSpec("a", "gcn", 0, {}, TrainConfig(lr=1.0))  # the same values as defaults
    assert explicit.key() == implicit.key()
    assert (
        ExperimentSpec("a", "gcn", 0, {"dropout": 0}).key()
        == ExperimentSpec("a", "gcn", 0, {"dropout": 0.0}).key()
    )


def test_key_does_not_depend_on_the_process() -> None:
    """Same key in a fresh interpreter with another hash seed (no id(), hash() or dict-order leaks)."""
    spec = ExperimentSpec("a", "mlp", 0, {"layers": 1, "dropout": 0.1}, TrainConfig(sheaf_decay=0.01))
    code = (
        "from mmsheaf.nsd.runs import ExperimentSpec; from mmsheaf.nsd.train import TrainConfig; "
        "print(ExperimentSpec('a', 'mlp', 0, {'dropout': 0.1, 'layers': 1}, "
        "TrainConfig(sheaf_decay=0.01)).key())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == spec.key()
    described = json.dumps(spec.describe())
    assert nsd_runs.SCHEMA in described and "version" not in described


def test_spec_validates_hyperparameters_up_front() -> None:
    with pytest.raises(ValueError, match="valid keys"):
        ExperimentSpec("a", "gcn", 0, {"hiden": 3})
    with pytest.raises(ValueError, match="choose among"):
        ExperimentSpec("a", "gnc", 0, {})
    with pytest.raises(ValueError, match="JSON-like"):
        ExperimentSpec("a", "gcn", 0, {"layers": object()})


# ----------------------------------------------------------------------------------------------- cache
def test_second_run_reads_everything_from_the_cache(tmp_path: Path, trainer: FakeTrainer) -> None:
    cache, loader = RunCache(tmp_path / "cache"), CountingLoader()
    first = run_experiments(grid(), cache, data_loader=loader, progress=False)
    assert len(trainer.calls) == 8 and not first["cached"].any()
    assert sorted(loader.calls) == ["a", "b"]  # each dataset loaded once
    assert len(cache) == 8

    trainer.calls.clear()
    loader.calls.clear()
    second = run_experiments(grid(), cache, data_loader=loader, progress=False)
    assert trainer.calls == [] and loader.calls == []
    assert second["cached"].all() and len(second) == 8
    cols = [
        "dataset",
        "model",
        "split",
        "hparams",
        "test_acc",
        "val_acc",
        "best_epoch",
        "seconds",
        "ms_per_epoch",
    ]
    pd.testing.assert_frame_equal(first[cols], second[cols])


def test_changing_one_hyperparameter_recomputes_only_that_spec(tmp_path: Path, trainer: FakeTrainer) -> None:
    cache = RunCache(tmp_path)
    run_experiments(grid(), cache, data_loader=CountingLoader(), progress=False)
    trainer.calls.clear()
    specs = grid()
    specs[5] = ExperimentSpec(specs[5].dataset, specs[5].model, specs[5].split, {"hidden_channels": 9}, CFG)
    df = run_experiments(specs, cache, data_loader=CountingLoader(), progress=False)
    assert trainer.calls == [(specs[5].model, specs[5].split, {"hidden_channels": 9})]
    assert df["cached"].tolist() == [True] * 5 + [False] + [True] * 2
    assert len(cache) == 9


def test_changing_the_train_config_recomputes(tmp_path: Path, trainer: FakeTrainer) -> None:
    cache = RunCache(tmp_path)
    spec = ExperimentSpec("a", "mlp", 0, {}, CFG)
    run_experiments([spec], cache, data_loader=CountingLoader(), progress=False)
    other = ExperimentSpec("a", "mlp", 0, {}, TrainConfig(epochs=5, patience=5, seed=0, weight_decay=0.0))
    df = run_experiments([spec, other], cache, data_loader=CountingLoader(), progress=False)
    assert df["cached"].tolist() == [True, False] and len(trainer.calls) == 2


def test_cache_file_is_valid_json_with_spec_and_result(tmp_path: Path, trainer: FakeTrainer) -> None:
    cache = RunCache(tmp_path)
    spec = ExperimentSpec("b", "gcn", 2, {"layers": 3}, CFG)
    run_experiments([spec], cache, data_loader=CountingLoader(), progress=False)
    files = list(tmp_path.iterdir())
    assert files == [cache.path(spec)] and files[0].name == f"{spec.key()}.json"  # no temporary files left
    payload = json.loads(files[0].read_text())
    assert payload["key"] == spec.key() and payload["schema"] == nsd_runs.SCHEMA
    assert payload["spec"]["model_hparams"] == {"layers": 3} and payload["spec"]["split"] == 2
    assert payload["spec"]["train"]["epochs"] == 5
    assert payload["result"]["test_acc"] == pytest.approx(0.7)
    assert payload["result"].pop("run_threads") == 1  # the torch threads the run was given (runs.executor)
    stored = {k: v for k, v in cache.get(spec)["result"].items() if k != "run_threads"}
    assert TrainResult(**stored) == TrainResult(**payload["result"])


def test_a_failed_run_is_recorded_not_cached_and_the_rerun_retries_only_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = RunCache(tmp_path)
    failing = FakeTrainer(fail_at=2)
    monkeypatch.setattr(nsd_runs, "train_node_classifier", failing)
    with pytest.raises(RunsFailed, match=r"1 run\(s\) failed[\s\S]*a mlp split 1[\s\S]*interrupted") as info:
        run_experiments(grid(), cache, data_loader=CountingLoader(), progress=False)
    assert len(info.value.failures) == 1 and len(failing.calls) == 8  # the other runs went on
    assert len(cache) == 7 and grid()[1] not in cache
    assert list(cache.failures().values()) == ["RuntimeError: interrupted"]

    resumed = FakeTrainer()
    monkeypatch.setattr(nsd_runs, "train_node_classifier", resumed)
    df = run_experiments(grid(), cache, data_loader=CountingLoader(), progress=False)
    assert resumed.calls == [("mlp", 1, {"hidden_channels": 8})]
    assert df["cached"].tolist() == [True, False] + [True] * 6 and cache.failures() == {}


def test_nan_features_fail_the_run_loudly_and_nothing_is_cached(tmp_path: Path) -> None:
    """NaN node features used to train to accuracies of 0.0, which the loop cached as a finished run."""

    def poisoned(name: str):
        data = CountingLoader()(name)
        data.x[3] = float("nan")
        return data

    spec = ExperimentSpec("a", "diag-nsd", 0, {"d": 2, "layers": 1, "hidden_channels": 4},
                          TrainConfig(epochs=3, patience=3))  # fmt: skip
    cache = RunCache(tmp_path)
    with pytest.raises(RunsFailed, match="1 of .* nodes have NaN or infinite features"):
        run_experiments([spec], cache, data_loader=poisoned, progress=False)
    assert len(cache) == 0 and spec.key() in cache.failures()
    df = run_experiments([spec], cache, data_loader=CountingLoader(), progress=False)  # repaired data: retried
    assert df["cached"].tolist() == [False] and cache.failures() == {}


def test_a_run_that_never_has_a_finite_score_raises_instead_of_reporting_zeros() -> None:
    class NanModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, edge_index):
            return torch.full((x.size(0), 3), float("nan")) * self.w

    data = CountingLoader()("a")
    with pytest.raises(NonFiniteTrainingError, match="NanModel .* loss or the outputs were not finite at epoch 1"):
        train_node_classifier(NanModel(), data, 0, cfg=TrainConfig(epochs=3, patience=3))


@pytest.mark.parametrize("stop_strategy", ["acc", "loss"])
def test_outputs_that_turn_non_finite_after_a_step_are_never_scored(stop_strategy: str) -> None:
    """The loss of epoch 2 is finite, but its step makes the outputs NaN: the argmax of NaN logits must not
    count as a validation accuracy (it could beat epoch 1's); epoch 1 is reported, with a warning."""

    class Diverging(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.steps = 0

        def forward(self, x, edge_index):
            out = self.lin(x[:, :3])
            if not self.training:
                self.steps += 1
                if self.steps >= 2:  # from the second validation on
                    return out * float("nan")
            return out

    data = CountingLoader()("a")
    cfg = TrainConfig(epochs=5, patience=5, stop_strategy=stop_strategy)
    with pytest.warns(RuntimeWarning, match="not finite at epoch 2.*best epoch before it \\(1\\)"):
        result = train_node_classifier(Diverging(), data, 0, cfg=cfg)
    assert result.best_epoch == 1 and result.epochs_run == 2


def test_corrupt_cache_file_is_recomputed(tmp_path: Path, trainer: FakeTrainer) -> None:
    cache = RunCache(tmp_path)
    spec = ExperimentSpec("a", "mlp", 1, {}, CFG)
    cache.path(spec).write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        df = run_experiments([spec], cache, data_loader=CountingLoader(), progress=False)
    assert not df["cached"].item() and len(trainer.calls) == 1
    assert json.loads(cache.path(spec).read_text())["key"] == spec.key()


def test_duplicate_specs_run_once_and_trainer_can_be_injected(tmp_path: Path) -> None:
    fake = FakeTrainer()
    spec = ExperimentSpec("a", "mlp", 0, {}, CFG)
    df = run_experiments([spec, spec], RunCache(tmp_path), data_loader=CountingLoader(), progress=False,
                         trainer=fake)  # fmt: skip
    assert len(fake.calls) == 1 and len(df) == 2


def test_end_to_end_with_the_real_trainer(tmp_path: Path) -> None:
    specs = [ExperimentSpec("a", m, s, {"hidden_channels": 4}, CFG) for m in ("mlp", "gcn") for s in (0, 1)]
    df = run_experiments(specs, RunCache(tmp_path), data_loader=CountingLoader(), progress=True)
    assert list(df.columns[:4]) == ["dataset", "model", "split", "hparams"]
    assert json.loads(df["hparams"].iloc[0]) == {"hidden_channels": 4}
    assert df["test_acc"].between(0, 1).all() and (df["epochs_run"] <= 5).all()
    again = run_experiments(specs, RunCache(tmp_path), data_loader=CountingLoader(), progress=True)
    assert again["cached"].all()
    assert again["test_acc"].tolist() == df["test_acc"].tolist()
    table = summarise(again)
    assert table["n_splits"].tolist() == [2, 2]


# ----------------------------------------------------------------------------------------------- summarise
def test_summarise_mean_and_std_in_percent() -> None:
    df = pd.DataFrame(
        {
            "dataset": ["texas"] * 3 + ["cora"] * 2,
            "model": ["gcn"] * 3 + ["gcn"] * 2,
            "test_acc": [0.5, 0.6, 0.7, 0.8, 0.9],
            "val_acc": [0.4, 0.4, 0.4, 0.9, 0.7],
        }
    )
    out = summarise(df).set_index("dataset")
    assert out.loc["texas", "test_mean"] == pytest.approx(60.0)
    assert out.loc["texas", "test_std"] == pytest.approx(100 * math.sqrt(2 / 300))  # population std (NSD)
    assert out.loc["texas", "val_std"] == pytest.approx(0.0)
    assert out.loc["cora", "test_mean"] == pytest.approx(85.0) and out.loc[
        "cora", "test_std"
    ] == pytest.approx(5.0)
    assert out.loc["cora", "val_mean"] == pytest.approx(80.0)
    assert out["n_splits"].tolist() == [3, 2]
    sample = summarise(df, ddof=1).set_index("dataset")
    assert sample.loc["texas", "test_std"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="test_acc"):
        summarise(df.drop(columns="test_acc"))


def test_nsd_protocol_normalises_real_features_like_nsd(tmp_path, monkeypatch):
    """NSD's loaders row-normalise every dataset's features; generated CSBM graphs keep theirs."""
    import torch
    from mmsheaf.data import CSBMConfig, contextual_sbm

    raw = contextual_sbm(CSBMConfig(num_nodes=30, num_classes=3, mean_degree=4.0, num_features=4, seed=2))
    raw.x = raw.x.abs() + 0.1
    monkeypatch.setattr(nsd_graphs, "load_node_dataset", lambda name: raw.clone())
    data = nsd_graphs.load_graph("texas")
    torch.testing.assert_close(data.x.sum(1), torch.ones(30))
    sbm = nsd_graphs.load_graph(nsd_graphs.csbm_name(0.3, num_nodes=30, num_classes=3, num_features=4, mean_degree=4.0))
    assert (sbm.x < 0).any(), "Gaussian CSBM features are not row-normalised"


def test_featureless_nodes_leave_every_split_from_data_version_2(monkeypatch):
    """CiteSeer's isolated test-range gaps (zero features, label 0) are out of every mask, as in NSD; the
    datasets whose preparation did not change keep their data and their keys."""
    import torch
    from mmsheaf.data import CSBMConfig, contextual_sbm

    raw = contextual_sbm(CSBMConfig(num_nodes=30, num_classes=3, mean_degree=4.0, num_features=4, seed=2))
    raw.x = raw.x.abs() + 0.1
    raw.x[[3, 17]] = 0.0
    raw.train_mask = torch.ones(30, 2, dtype=torch.bool)
    raw.val_mask = raw.test_mask = torch.ones(30, 2, dtype=torch.bool)
    monkeypatch.setattr(nsd_graphs, "load_node_dataset", lambda name: raw.clone())
    cite, texas = nsd_graphs.load_graph("citeseer"), nsd_graphs.load_graph("texas")
    for mask in (cite.train_mask, cite.val_mask, cite.test_mask):
        assert mask.shape == (30, 2) and (~mask).nonzero()[:, 0].unique().tolist() == [3, 17]
    assert texas.train_mask.all() and texas.test_mask.all()

    specs = NsdProtocol.from_params({}, {}).table_specs(["texas", "citeseer"], ["gcn"], [0])
    assert [s.data_version for s in specs] == [1, 2]
    plain = ExperimentSpec("texas", "gcn", 0, {})
    assert specs[0].key() == plain.key() and "data_version" not in plain.describe()
    versioned = ExperimentSpec("citeseer", "gcn", 0, {}, data_version=2)
    assert versioned.key() != ExperimentSpec("citeseer", "gcn", 0, {}).key()
    assert versioned.describe()["data_version"] == 2 and versioned.to_json()["data_version"] == 2
    with pytest.raises(ValueError, match="data_version"):
        ExperimentSpec("citeseer", "gcn", 0, {}, data_version=0)


def test_nsd_protocol_dataset_train_block_applies_to_sheaf_models_only():
    protocol = NsdProtocol.from_params({"lr": 0.01}, {}, {"texas": {"train": {"lr": 0.02}, "sheaf": {"d": 3}}})
    hp_s, cfg_s = protocol.resolve("texas", "orth-nsd")
    hp_b, cfg_b = protocol.resolve("texas", "gcn")
    assert (cfg_s.lr, hp_s["d"]) == (0.02, 3)
    assert cfg_b.lr == 0.01 and "d" not in hp_b


def test_nsd_protocol_merges_defaults_sheaf_block_model_block_and_override_in_that_order():
    protocol = NsdProtocol.from_params(
        {"epochs": 5}, {"diag-nsd": {"d": 2, "layers": 2, "hidden_channels": 8}, "gcn": {"layers": 2}},
        {"texas": {"sheaf": {"d": 3, "layers": 3}, "diag-nsd": {"layers": 4}, "gcn": {"hidden_channels": 16}}},
    )  # fmt: skip
    assert protocol.resolve("texas", "diag-nsd")[0] == {"d": 3, "layers": 4, "hidden_channels": 8}
    assert protocol.resolve("texas", "orth-nsd")[0] == {"d": 3, "layers": 3}
    assert protocol.resolve("texas", "gcn")[0] == {"layers": 2, "hidden_channels": 16}
    assert protocol.resolve("texas", "DIAG-NSD", layers=16)[0]["layers"] == 16  # the depth sweep's override
    assert protocol.resolve("cora", "diag-nsd") == ({"d": 2, "layers": 2, "hidden_channels": 8}, protocol.train)
    # the same settings written another way give the same runs
    spelled = NsdProtocol(protocol.train, {"DIAG-NSD": {"hidden_channels": 8, "layers": 2, "d": 2}},
                          {"texas": DatasetConfig(sheaf={"layers": 3, "d": 3}, models={"diag-nsd": {"layers": 4}})})
    keys = [s.key() for s in protocol.table_specs(["texas", "cora"], ["diag-nsd"], [0, 1])]
    assert keys == [s.key() for s in spelled.table_specs(["texas", "cora"], ["diag-nsd"], [0, 1])]
    depth = protocol.depth_specs(["texas"], ["gcn", "diag-nsd"], [2, 8], [0])
    assert [(s.model, s.hparams["layers"]) for s in depth] == [("gcn", 2), ("diag-nsd", 2), ("gcn", 8), ("diag-nsd", 8)]


def test_nsd_protocol_rejects_unknown_settings_and_says_what_to_use():
    with pytest.raises(ValueError, match="CONFIGS\\['texas'\\] has unknown keys \\['sheaves'\\]: use candidates, sheaf"):
        NsdProtocol.from_params({}, {}, {"texas": {"sheaves": {}}})
    with pytest.raises(ValueError, match="TRAIN has unknown training settings \\['learning_rate'\\]"):
        NsdProtocol.from_params({"learning_rate": 0.1}, {})
    with pytest.raises(ValueError, match="train block has unknown training settings"):
        NsdProtocol.from_params({}, {}, {"texas": {"train": {"layers": 2}}})
    with pytest.raises(ValueError, match="MODEL_DEFAULTS names the unknown model 'gcn2'"):
        NsdProtocol.from_params({}, {"gcn2": {}})
    with pytest.raises(ValueError, match="may only set sheaf and train"):
        NsdProtocol.from_params({}, {}, {"texas": {"candidates": [{"gcn": {}}]}})
    protocol = NsdProtocol.from_params({}, {})
    with pytest.raises(AttributeError):
        protocol.train = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        protocol.model_defaults["gcn"] = {}  # type: ignore[index]


def test_config_candidates_are_chosen_on_validation_accuracy_only():
    configs = {
        "texas": {"source": "ours", "sheaf": {"d": 2, "layers": 2}, "train": {"lr": 0.01},
                  "candidates": [{}, {"sheaf": {"layers": 3}}, {"train": {"lr": 0.02}}]},
        "cora": {"sheaf": {"d": 3}},
    }  # fmt: skip
    protocol = NsdProtocol.from_params({"epochs": 5}, {}, configs)
    assert protocol.dataset("texas").candidates[1] == Candidate(sheaf={"layers": 3})
    cands = protocol.candidate_specs(["texas", "cora"], "diag-nsd", [0, 1])
    assert sorted(cands) == [("texas", 0), ("texas", 1), ("texas", 2)]
    assert dict(cands[("texas", 1)][0].model_hparams) == {"d": 2, "layers": 3}
    assert cands[("texas", 2)][1].train.lr == 0.02 and cands[("texas", 2)][1].split == 1
    # candidate 1 is best on validation; candidate 2 is best on test, which must not matter
    val = {0: [0.5, 0.6], 1: [0.7, 0.7], 2: [0.6, 0.6]}
    rows = [{"key": s.key(), "val_acc": val[i][j], "test_acc": 0.99 if i == 2 else 0.1}
            for (_, i), specs in cands.items() for j, s in enumerate(specs)]  # fmt: skip
    chosen, table = protocol.choose(pd.DataFrame(rows), cands)
    assert table.chosen.tolist() == [False, True, False]
    assert table.label.tolist() == ["base", "layers=3", "lr=0.02"]
    assert table.changes.tolist() == ["{}", '{"sheaf": {"layers": 3}}', '{"train": {"lr": 0.02}}']
    assert table.val_mean.tolist() == pytest.approx([55.0, 70.0, 60.0])
    texas = chosen.dataset("texas")
    assert texas.sheaf == {"d": 2, "layers": 3} and texas.train == {"lr": 0.01} and texas.candidates == ()
    assert texas.source == "ours; candidate 1 of 3, chosen on validation accuracy"
    assert chosen.dataset("cora") == protocol.dataset("cora")
    assert len(protocol.dataset("texas").candidates) == 3  # the protocol chosen from is not modified
    table_spec = chosen.table_specs(["texas"], ["diag-nsd"], [0])[0]
    assert table_spec.key() == cands[("texas", 1)][0].key()  # the table reuses the selection's runs
    with pytest.raises(ValueError, match="no result"):
        protocol.choose(pd.DataFrame(rows[:2]), cands)


def test_sbm_specs_use_the_shared_settings_only():
    protocol = NsdProtocol.from_params({"epochs": 5}, {"gcn": {"layers": 3}}, {"texas": {"gcn": {"layers": 9}}})
    specs = protocol.sbm_specs([0.1, 0.9], ["gcn"], [0, 1], {"num_nodes": 30, "feature_signal": 2.0})
    assert [(nsd_graphs.homophily_of(s.dataset), s.split) for s in specs] == [(0.1, 0), (0.1, 1), (0.9, 0), (0.9, 1)]
    assert {s.hparams["layers"] for s in specs} == {3} and {s.train.epochs for s in specs} == {5}


def test_a_result_another_process_finished_meanwhile_is_read_not_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers sharing a cache: while this one trains spec 0, the other finishes spec 1."""
    cache, specs = RunCache(tmp_path), grid()
    other = TrainResult(0.99, 0.99, 0.99, best_epoch=1, epochs_run=1, seconds=0.0, ms_per_epoch=1.0)

    class OtherWorker(FakeTrainer):
        def __call__(self, model, data, split, model_hparams, cfg) -> TrainResult:
            if not self.calls:
                cache.put(specs[1], dataclasses.asdict(other))
            return super().__call__(model, data, split, model_hparams, cfg)

    fake = OtherWorker()
    monkeypatch.setattr(nsd_runs, "train_node_classifier", fake)
    df = run_experiments(specs, cache, data_loader=CountingLoader(), progress=False)
    assert len(fake.calls) == 7
    assert df["cached"].tolist() == [False, True] + [False] * 6
    assert df["test_acc"].iloc[1] == pytest.approx(0.99)


def test_csbm_names_carry_every_field_of_the_graph() -> None:
    from mmsheaf.data.nsd_graphs import csbm_name, csbm_value, homophily_of

    name = csbm_name(0.3, num_nodes=200, feature_signal=2.0)
    assert homophily_of(name) == 0.3 and csbm_value(name, "feature_signal") == 2.0
    assert csbm_value(name, "num_nodes") == 200
    # the same graph given in another order has the same name (and so the same cached runs)
    assert csbm_name(0.3, feature_signal=2.0, num_nodes=200) == name
    with pytest.raises(ValueError, match="names no mean_degree"):
        csbm_value(name, "mean_degree")
    with pytest.raises(ValueError, match="not a CSBM graph name"):
        csbm_value("texas", "edge_homophily")


def test_energy_profiles_give_one_row_per_layer_with_a_scale_free_quotient() -> None:
    from mmsheaf.nsd.protocol import energy_profiles

    data = contextual_sbm(num_nodes=60, mean_degree=5, num_classes=3, num_features=8, seed=0)
    cfg = TrainConfig(epochs=3, patience=3)
    runs = {m: ({"d": 2, "layers": 3, "hidden_channels": 4}, cfg) for m in ("diag-nsd", "orth-nsd")}
    df = energy_profiles(data, runs, split=0)
    assert df.columns.tolist() == ["model", "layer", "energy", "relative_energy", "rayleigh"]
    assert df.groupby("model").layer.apply(list).tolist() == [[0, 1, 2, 3]] * 2
    first = df[df.layer == 0]
    assert (first.relative_energy == 1.0).all()
    assert df.rayleigh.between(0, 2).all() and (df.energy >= 0).all()
    assert not df.rayleigh.equals(df.energy)
