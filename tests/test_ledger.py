"""Run ledgers: export, seed, validation, and a resumed run that reads instead of recomputing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmsheaf.runs import ledger
from mmsheaf.nsd.runs import ExperimentSpec, run_experiments
from mmsheaf.runs.cache import RunCache
from mmsheaf.report import Report
from mmsheaf.nsd.train import TrainConfig, TrainResult


class CountingTrainer:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model, data, split, hparams, cfg) -> TrainResult:  # noqa: ANN001
        self.calls += 1
        acc = 0.5 + 0.01 * split
        return TrainResult(test_acc=acc, val_acc=acc, train_acc=1.0, best_epoch=1, epochs_run=2, seconds=0.1,
                           ms_per_epoch=50.0)  # fmt: skip


def _specs(n: int = 3) -> list[ExperimentSpec]:
    return [ExperimentSpec("toy", "mlp", s, {"hidden_channels": 8}, TrainConfig(epochs=2)) for s in range(n)]


def _run(cache_root: Path, trainer: CountingTrainer, n: int = 3):  # noqa: ANN202
    return run_experiments(_specs(n), RunCache(cache_root / "node_classification"), data_loader=lambda _: None,
                           progress=False, trainer=trainer)  # fmt: skip


def test_export_then_seed_resumes_without_recomputing(tmp_path: Path) -> None:
    first, trainer = tmp_path / "machine1", CountingTrainer()
    df = _run(first, trainer)
    assert trainer.calls == 3
    target = tmp_path / "figures" / "runs" / "01_sheaf_diffusion.jsonl"
    path, added, total = ledger.export_runs("01_sheaf_diffusion", cache_root=first, target=target)
    assert (path, added, total) == (target, 3, 3)
    assert ledger.export_runs("01_sheaf_diffusion", cache_root=first, target=target)[1:] == (0, 3)  # idempotent

    second, again = tmp_path / "machine2", CountingTrainer()
    assert ledger.seed_cache(target, second) == 3
    assert ledger.seed_cache(target, second) == 0  # already there
    df2 = _run(second, again, n=4)  # one more split than the ledger holds
    assert again.calls == 1
    assert df2.cached.tolist() == [True, True, True, False]
    assert df2.test_acc[:3].tolist() == df.test_acc.tolist()


def test_seed_is_off_with_reuse_runs_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(tmp_path / "a", CountingTrainer())
    target = ledger.export_runs("01_sheaf_diffusion", cache_root=tmp_path / "a", target=tmp_path / "l.jsonl")[0]
    monkeypatch.setenv("MMSHEAF_REUSE_RUNS", "0")
    assert ledger.seed_cache(target, tmp_path / "b") == 0
    trainer = CountingTrainer()
    _run(tmp_path / "b", trainer)
    assert trainer.calls == 3


def test_a_tampered_record_is_recomputed_not_trusted(tmp_path: Path) -> None:
    _run(tmp_path / "a", CountingTrainer())
    target = ledger.export_runs("01_sheaf_diffusion", cache_root=tmp_path / "a", target=tmp_path / "l.jsonl")[0]
    lines = target.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["payload"]["resolved"]["split"] = 7  # the result no longer matches what the key hashes...
    rec["payload"]["key"] = "0" * 64  # ...and the payload's key disagrees with the file name
    lines[0] = json.dumps(rec)
    lines.append("not json")
    target.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="not a run record"):
        assert ledger.seed_cache(target, tmp_path / "b") == 3
    trainer = CountingTrainer()
    with pytest.warns(UserWarning, match="unreadable cache file"):
        _run(tmp_path / "b", trainer)
    assert trainer.calls == 1


def test_unknown_notebook_and_missing_runs_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        ledger.export_runs("99_nothing", cache_root=tmp_path)
    with pytest.raises(ValueError, match="not in the cache"):
        ledger.write_ledger(tmp_path / "x.jsonl", ["node_classification"], ["f" * 64], cache_root=tmp_path)


def test_report_writes_exactly_the_used_runs_with_provenance(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    df = _run(tmp_path / "cache", CountingTrainer(), n=3)
    rep = Report("01_sheaf_diffusion", "smoke", out_dir=tmp_path / "out")
    path = rep.runs(["node_classification"], df.key[:2])
    records = ledger.read_ledger(path)
    assert sorted(k for _, k in records) == sorted(df.key[:2])
    prov = json.loads((tmp_path / "out" / "provenance" / "runs__01_sheaf_diffusion.jsonl.json").read_text())
    assert prov["runs"] == 2


def test_export_beside_the_outputs_records_provenance(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``python -m mmsheaf runs export`` merges the cache into the ledger and records the ledger's provenance."""
    from mmsheaf.__main__ import main

    monkeypatch.setenv("MMSHEAF_OUTPUT", str(tmp_path / "figures"))
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    _run(tmp_path / "cache", CountingTrainer())
    assert main(["runs", "export", "01_sheaf_diffusion"]) == 0
    path, added, total = ledger.export_runs("01_sheaf_diffusion", "paper", cache_root=tmp_path / "cache")
    assert added == 0 and total == 3  # the command merged them already
    assert path == tmp_path / "figures" / "runs" / "01_sheaf_diffusion.jsonl"
    prov = json.loads((tmp_path / "figures" / "provenance" / "runs__01_sheaf_diffusion.jsonl.json").read_text())
    assert prov["partial"] is True and prov["runs"] == 3 and prov["output"] == "runs/01_sheaf_diffusion.jsonl"


def test_a_study_journal_in_the_ledger_replays_its_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger keeps a study's journal; seeded on another machine, the study is complete, so the rerun
    calls the objective no more and finds the same best trial (runs alone would let it sample anew)."""
    from mmsheaf.runs.hpo import StudyConfig, run_study

    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    calls: list[float] = []

    def objective(params: dict, trial) -> float:  # noqa: ANN001
        calls.append(params["x"])
        return -((params["x"] - 0.3) ** 2)

    first, second = tmp_path / "machine1", tmp_path / "machine2"
    cfg = StudyConfig("toy-study", n_trials=6, seed=1, n_startup_trials=3)
    monkeypatch.setenv("MMSHEAF_CACHE", str(first))
    study = run_study(objective, space, cfg, progress=False)
    assert len(calls) == 6
    target = tmp_path / "l.jsonl"
    with pytest.warns(UserWarning, match="no journal file"):
        ledger.write_ledger(target, ["node_classification"], [], cache_root=first, studies=["toy-study", "gone"])
    records = ledger.read_ledger(target)
    assert list(records) == [(ledger.STUDY_FOLDER, "toy-study")]

    monkeypatch.setenv("MMSHEAF_CACHE", str(second))
    assert ledger.seed_cache(target, second) == 1
    journal = second / "optuna" / "toy-study.journal"
    assert journal.read_bytes() == (first / "optuna" / "toy-study.journal").read_bytes()
    again = run_study(objective, space, cfg, progress=False)
    assert len(calls) == 6  # nothing sampled or trained again
    assert again.best_params == study.best_params and again.best_value == study.best_value


def test_a_study_record_without_a_journal_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "l.jsonl"
    target.write_text(json.dumps({"folder": "optuna", "key": "s", "payload": {"journal": [1, 2]}}) + "\n")
    with pytest.warns(UserWarning, match="not a run record"):
        assert ledger.read_ledger(target) == {}


def test_export_keeps_the_notebooks_study_journals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted run's export keeps the journals of the notebook's studies (and no other notebook's), so
    a resumed run replays the trials drawn so far instead of sampling (and training) new ones."""
    from mmsheaf.runs.hpo import StudyConfig, run_study

    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    calls: list[float] = []

    def objective(params: dict, trial) -> float:
        calls.append(params["x"])
        return -((params["x"] - 0.3) ** 2)

    first, second = tmp_path / "machine1", tmp_path / "machine2"
    monkeypatch.setenv("MMSHEAF_CACHE", str(first))
    ours, theirs = StudyConfig("nsd-toy-abc", n_trials=4, seed=0), StudyConfig("ssl-toy-abc", n_trials=2, seed=0)
    study = run_study(objective, space, ours, progress=False)
    run_study(objective, space, theirs, progress=False)
    _run(first, CountingTrainer())
    target = tmp_path / "l.jsonl"
    path, added, total = ledger.export_runs("01_sheaf_diffusion", cache_root=first, target=target)
    assert (added, total) == (3, 3)  # the counts are of runs; the journal comes with them
    assert sorted(ledger.read_ledger(path)) == sorted(
        [(ledger.STUDY_FOLDER, "nsd-toy-abc"), *(("node_classification", k) for k in _run(first, CountingTrainer()).key)]
    )
    assert ledger.export_runs("01_sheaf_diffusion", cache_root=first, target=target)[1:] == (0, 3)

    monkeypatch.setenv("MMSHEAF_CACHE", str(second))
    ledger.seed_cache(target, second)
    before = len(calls)
    again = run_study(objective, space, ours, progress=False)
    assert len(calls) == before and again.best_params == study.best_params
    assert set(ledger.STUDY_PREFIXES) == set(ledger.RUN_FOLDERS)
