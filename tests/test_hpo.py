"""Tests of the Optuna hyperparameter search (mmsheaf.runs.hpo, .space, .storage); interrupted trials and the
budget's Optuna mechanisms are in test_hpo_budget.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mmsheaf.runs import hpo
from mmsheaf.runs.budget import SLOT_ATTR
from mmsheaf.runs.hpo import StudyConfig, best_params, load_study, run_study, save_study, study_frame
from mmsheaf.runs.space import CategoricalParam, FixedParam, FloatParam, IntParam, parse_space, suggest
from mmsheaf.runs.storage import storage_kind

SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "layers": {"type": "int", "low": 1, "high": 4},
    "d": {"type": "categorical", "choices": [1, 2, 3]},
    "epochs": 7,
}


def quadratic(params: dict, trial: optuna.Trial) -> float:
    return -((params["x"] - 0.3) ** 2)


@pytest.fixture(autouse=True)
def _cache(study_cache: Path) -> Path:
    """Every study of a test lives under its own cache folder (``study_cache`` of conftest)."""
    return study_cache


def params_of(study: optuna.Study) -> list[dict]:
    return [t.params for t in sorted(study.get_trials(), key=lambda t: t.number)]


# ------------------------------------------------------------------------------------------ search space


def test_parse_space_kinds() -> None:
    parsed = parse_space(
        {
            **SPACE,
            "wd": {"type": "float", "low": "1e-6", "high": "1e-3", "log": True},  # PyYAML's strings
            "h": {"type": "int", "low": 8, "high": 64, "step": 8},
            "q": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "opt": {"type": "fixed", "value": {"name": "adam"}},
        }
    )
    assert parsed["x"] == FloatParam(0.0, 1.0)
    assert parsed["lr"] == FloatParam(1e-4, 1e-2, log=True)
    assert parsed["layers"] == IntParam(1, 4)
    assert parsed["d"] == CategoricalParam((1, 2, 3))
    assert parsed["epochs"] == FixedParam(7)
    assert parsed["wd"] == FloatParam(1e-6, 1e-3, log=True)
    assert parsed["h"] == IntParam(8, 64, step=8)
    assert parsed["q"] == FloatParam(0.0, 0.5, step=0.1)
    assert parsed["opt"] == FixedParam({"name": "adam"})
    assert list(parsed) == [*SPACE, "wd", "h", "q", "opt"]
    assert parse_space(parsed) == parsed  # idempotent


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"type": "normal", "low": 0, "high": 1}, "unknown type 'normal'"),
        ({"low": 0, "high": 1}, "needs a 'type'"),
        ({"type": "float", "low": 2.0, "high": 1.0}, "low=2.0 > high=1.0"),
        ({"type": "int", "low": 5, "high": 1}, "low=5 > high=1"),
        ({"type": "categorical", "choices": []}, "choices is empty"),
        ({"type": "categorical", "choices": "abc"}, "must be a list"),
        ({"type": "categorical", "choices": [[64, 64], [32]]}, "encode structured choices"),
        ({"type": "float", "low": 0.0}, "needs high"),
        ({"type": "float", "low": 0.0, "high": 1.0, "lo": 3}, r"unknown field\(s\) lo"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
        ({"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}, "step and log"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": "yes"}, "log must be true or false"),
        ({"type": "float", "low": "small", "high": 1.0}, "low must be a finite number"),
        ({"type": "int", "low": 1.5, "high": 4}, "low must be an int"),
        ({"type": "int", "low": 1, "high": 4, "step": 0}, "step must be > 0"),
    ],
)
def test_bad_specs_raise_naming_the_key(spec: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        parse_space({"ok": 1, "the_key": spec})
    assert "'the_key'" in str(info.value)


def test_suggest_respects_bounds_log_and_choices() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = {**SPACE, "h": {"type": "int", "low": 8, "high": 64, "step": 8}}
    drawn = []
    for _ in range(300):
        trial = study.ask()
        params = suggest(trial, space)
        study.tell(trial, 0.0)
        drawn.append(params)
        assert set(params) == set(space) and "epochs" not in trial.params  # fixed: passed, not searched
        assert params["epochs"] == 7
        assert 0.0 <= params["x"] <= 1.0 and 1e-4 <= params["lr"] <= 1e-2
        assert params["layers"] in {1, 2, 3, 4} and params["d"] in {1, 2, 3} and params["h"] % 8 == 0
    assert trial.distributions["lr"].log and not trial.distributions["x"].log
    # log scale: half of the draws below the geometric midpoint 1e-3 (uniform scale: ~10%)
    below = sum(p["lr"] < 1e-3 for p in drawn) / len(drawn)
    assert 0.4 < below < 0.6
    assert {p["layers"] for p in drawn} == {1, 2, 3, 4} and {p["d"] for p in drawn} == {1, 2, 3}


# ------------------------------------------------------------------------------------------ configuration


def test_study_config_validation_and_storage(_cache: Path, tmp_path: Path) -> None:
    for bad, match in [
        ({"name": "a b"}, "name must be"),
        ({"name": "s", "n_trials": 0}, "n_trials"),
        ({"name": "s", "sampler": "cmaes"}, "sampler must be one of tpe, random"),
        ({"name": "s", "pruner": "hyperband"}, "pruner must be one of"),
        ({"name": "s", "direction": "up"}, "direction"),
        ({"name": "s", "timeout": 0}, "timeout"),
        ({"name": "s", "storage": " "}, "storage"),
        ({"name": "s", "heartbeat_interval": 0}, "heartbeat_interval must be an int >= 1"),
        ({"name": "s", "grace_period": 1.5}, "grace_period must be None or an int >= 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            StudyConfig(**bad)
    assert StudyConfig("s", pruner=None).pruner == "none"
    assert StudyConfig("s").journal_path() == _cache / "optuna" / "s.journal"
    assert (
        StudyConfig("s", storage="runs/x.journal").journal_path() == _cache / "optuna" / "runs" / "x.journal"
    )
    assert StudyConfig("s", storage=str(tmp_path / "y.log")).journal_path() == tmp_path / "y.log"
    assert StudyConfig("s", storage="postgresql://u:p@host/db").journal_path() is None
    assert storage_kind(hpo.open_storage(StudyConfig("s"))) == "journal-file"
    rdb = hpo.open_storage(StudyConfig("s", storage=f"sqlite:///{tmp_path}/a.db", heartbeat_interval=7))
    assert storage_kind(rdb) == "rdb:sqlite"
    assert rdb.get_heartbeat_interval() == 7 and rdb.grace_period is None  # Optuna: twice the interval
    with pytest.raises(ValueError, match="No study named 'missing'"):
        load_study(StudyConfig("missing"))


# ------------------------------------------------------------------------------------------ single worker


def test_seeded_study_is_reproducible_and_finds_the_optimum() -> None:
    runs = [
        run_study(
            quadratic, SPACE, StudyConfig(name, n_trials=25, seed=3, n_startup_trials=5), progress=False
        )
        for name in ("a", "b")
    ]
    assert params_of(runs[0]) == params_of(runs[1])
    assert [t.value for t in runs[0].trials] == [t.value for t in runs[1].trials]
    assert len(runs[0].trials) == 25 and all(
        t.state == optuna.trial.TrialState.COMPLETE for t in runs[0].trials
    )
    assert abs(runs[0].best_params["x"] - 0.3) < 0.05 and runs[0].best_value > -2.5e-3
    other = run_study(quadratic, SPACE, StudyConfig("c", n_trials=5, seed=4), progress=False)
    assert params_of(other) != params_of(runs[0])[:5]
    assert best_params(runs[0], SPACE) == {**runs[0].best_params, "epochs": 7}
    assert list(best_params(runs[0], SPACE)) == list(SPACE)


def test_resume_continues_numbering_and_matches_an_uninterrupted_run() -> None:
    calls: list[int] = []

    def objective(params: dict, trial: optuna.Trial) -> float:
        calls.append(trial.number)
        return quadratic(params, trial)

    first = run_study(objective, SPACE, StudyConfig("r", n_trials=4, n_startup_trials=2), progress=False)
    assert [t.number for t in first.trials] == [0, 1, 2, 3]
    first_params = params_of(first)  # the study object is live: it will see the resumed trials too
    resumed = run_study(objective, SPACE, StudyConfig("r", n_trials=7, n_startup_trials=2), progress=False)
    assert calls == list(range(7))
    frame = study_frame(resumed)
    assert frame["number"].tolist() == list(range(7)) and frame["slot"].tolist() == list(range(7))
    assert params_of(resumed)[:4] == first_params
    # Slot k is sampled with seed + k: stopping and resuming changes nothing.
    straight = run_study(quadratic, SPACE, StudyConfig("s", n_trials=7, n_startup_trials=2), progress=False)
    assert params_of(straight) == params_of(resumed)
    # The budget is used up: running again (or with a smaller budget) adds nothing.
    run_study(objective, SPACE, StudyConfig("r", n_trials=7), progress=False)
    run_study(objective, SPACE, StudyConfig("r", n_trials=3), progress=False)
    assert calls == list(range(7)) and len(load_study(StudyConfig("r")).trials) == 7


def test_failed_trials_use_their_slot() -> None:
    def flaky(params: dict, trial: optuna.Trial) -> float:
        if trial.number % 2:
            raise FloatingPointError("diverged")
        return quadratic(params, trial)

    study = run_study(flaky, SPACE, StudyConfig("f", n_trials=6), progress=False, catch=(FloatingPointError,))
    assert study_frame(study)["state"].tolist() == ["COMPLETE", "FAIL"] * 3
    with pytest.raises(FloatingPointError):
        run_study(flaky, SPACE, StudyConfig("g", n_trials=6), progress=False)
    assert [t.state.name for t in load_study(StudyConfig("g")).trials] == ["COMPLETE", "FAIL"]

    def broken(params: dict, trial: optuna.Trial) -> float:
        raise FloatingPointError("diverged")

    nothing = run_study(broken, SPACE, StudyConfig("h", n_trials=2), progress=False, catch=FloatingPointError)
    with pytest.raises(ValueError, match="no complete trial yet"):
        best_params(nothing)
    with pytest.raises(ValueError, match="exists with direction"):
        run_study(quadratic, SPACE, StudyConfig("h", n_trials=3, direction="minimize"), progress=False)


def test_save_study_writes_readable_files(tmp_path: Path) -> None:
    study = run_study(quadratic, SPACE, StudyConfig("saved", n_trials=6), progress=False)
    out = save_study(study, tmp_path / "out")
    assert out == {"trials": tmp_path / "out" / "trials.csv", "best": tmp_path / "out" / "best.json"}
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["best.json", "trials.csv"]  # no temporary files left
    trials = pd.read_csv(out["trials"])
    assert trials["number"].tolist() == list(range(6)) and set(trials["state"]) == {"COMPLETE"}
    assert {"value", "params_x", "params_lr", "params_layers", "params_d", "duration"} <= set(trials.columns)
    assert (trials["duration"] >= 0).all()
    best = json.loads(out["best"].read_text(encoding="utf-8"))
    assert best["best_value"] == study.best_value and best["best_params"] == study.best_params
    assert best["best_number"] == study.best_trial.number
    assert best["n_trials"] == 6 and best["states"] == {"COMPLETE": 6}
    assert best["storage"] == "journal-file" and best["direction"] == "maximize" and best["study"] == "saved"
    assert math.isclose(trials.loc[best["best_number"], "value"], best["best_value"])


# ------------------------------------------------------------------------------------------ parallel workers

WORKER = """
import sys, time
from pathlib import Path

import optuna

from mmsheaf.runs import hpo

optuna.logging.set_verbosity(optuna.logging.WARNING)
name, folder, storage = sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None
n_trials, pause = int(sys.argv[4]), float(sys.argv[5])
space = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "d": {"type": "categorical", "choices": [1, 2, 3]}}
log = folder / f"trials-{name}.txt"


def objective(params, trial):
    time.sleep(pause)  # long enough for the workers to interleave
    with open(log, "a") as fh:
        fh.write(f"{trial.number}\\n")
    return -((params["x"] - 0.3) ** 2)


# A barrier: start the search together, so that both workers race for the first slots.
(folder / f"ready-{name}").touch()
deadline = time.monotonic() + 60
while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
hpo.run_study(objective, space, hpo.StudyConfig("shared", storage=storage, n_trials=n_trials), progress=False)
"""


def _run_workers(tmp_path: Path, storage: str, n_trials: int, pause: float) -> dict[str, set[int]]:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # MMSHEAF_CACHE: this test's cache folder (fixture)
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(script), name, str(tmp_path), storage, str(n_trials), str(pause)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("A", "B")
    }
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"worker {name} failed:\n{output}"
    numbers = {}
    for name in procs:
        path = tmp_path / f"trials-{name}.txt"
        lines = path.read_text().split() if path.is_file() else []
        numbers[name] = [int(x) for x in lines]
        assert len(set(numbers[name])) == len(numbers[name]), f"worker {name} ran a trial twice"
    return {name: set(v) for name, v in numbers.items()}


@pytest.mark.parametrize(
    ("storage", "n_trials", "pause", "kind"),
    [
        ("", 12, 0.12, "journal-file"),  # the default embedded journal file
        ("sqlite", 6, 0.12, "rdb:sqlite"),  # a SQLAlchemy URL
        ("", 30, 0.0, "journal-file"),  # no pause: the workers race for every slot
        ("postgresql", 8, 0.12, "rdb:postgresql"),  # a real database server (the README's scale-out section)
    ],
    ids=["journal", "sqlite-url", "journal-contended", "postgresql"],
)
def test_two_workers_fill_one_budget(
    tmp_path: Path, storage: str, n_trials: int, pause: float, kind: str, request: pytest.FixtureRequest
) -> None:
    if storage == "sqlite":
        storage = f"sqlite:///{tmp_path / 'hpo.db'}"
    elif storage == "postgresql":
        storage = request.getfixturevalue("postgres_url")
    by_worker = _run_workers(tmp_path, storage, n_trials, pause)
    cfg = StudyConfig("shared", storage=storage or None)
    study = load_study(cfg)
    assert storage_kind(study) == kind
    trials = study.get_trials()

    # Exactly the budget: n trials, numbers 0..n-1 once each, all complete, each in its own slot.
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs[SLOT_ATTR] for t in trials) == list(range(n_trials))
    assert all(t.value == -((t.params["x"] - 0.3) ** 2) for t in trials)
    # No slot reserved beyond the budget (nobody even started an extra trial).
    slots = [s for s in optuna.get_all_study_names(hpo.open_storage(cfg)) if s.startswith("shared#slot-")]
    assert sorted(slots) == sorted(f"shared#slot-{k}" for k in range(n_trials))
    # No lost or duplicated trials: the workers' own records partition the study's trials.
    assert not by_worker["A"] & by_worker["B"]
    assert by_worker["A"] | by_worker["B"] == set(range(n_trials))
    if pause:
        assert by_worker["A"] and by_worker["B"], f"one worker did everything: {by_worker}"
        spans = {
            name: [(t.datetime_start, t.datetime_complete) for t in trials if t.number in numbers]
            for name, numbers in by_worker.items()
        }
        overlap = any(a0 < b1 and b0 < a1 for a0, a1 in spans["A"] for b0, b1 in spans["B"])
        assert overlap, "the workers did not run concurrently"


def test_rerunning_a_finished_study_leaves_its_journal_unchanged(_cache: Path) -> None:
    """A rerun from a seeded ledger must not grow the journal (and with it the committed ledger)."""
    cfg = StudyConfig("finished", n_trials=4, seed=0, n_startup_trials=2)
    run_study(quadratic, SPACE, cfg, progress=False)
    before = cfg.journal_path().read_bytes()
    again = run_study(quadratic, SPACE, cfg, progress=False)
    assert len(again.trials) == 4
    assert cfg.journal_path().read_bytes() == before


def test_run_study_and_wait_returns_only_once_no_trial_is_running(monkeypatch) -> None:
    """A worker that finds no slot left returns from run_study while another worker's last trial runs; the
    waiting variant polls until that trial is finished, so every worker sees the same best trial."""
    from mmsheaf.runs import hpo as hpo_module
    from optuna.trial import TrialState

    states = [[TrialState.COMPLETE, TrialState.RUNNING], [TrialState.COMPLETE, TrialState.RUNNING],
              [TrialState.COMPLETE, TrialState.COMPLETE]]  # fmt: skip
    calls = {"run": 0, "load": 0}

    class FakeStudy:
        def __init__(self, s):
            self.s = s

        def get_trials(self, deepcopy=False, states=()):
            return [x for x in self.s if x in states]

    def fake_run(*args, **kwargs):
        calls["run"] += 1

    def fake_load(cfg):
        calls["load"] += 1
        return FakeStudy(states[min(calls["load"], len(states)) - 1])

    monkeypatch.setattr(hpo_module, "run_study", fake_run)
    monkeypatch.setattr(hpo_module, "load_study", fake_load)
    monkeypatch.setattr(hpo_module.time, "sleep", lambda s: None)
    study = hpo_module.run_study_and_wait(lambda p, t: 0.0, {}, hpo_module.StudyConfig("s"), progress=False)
    assert study.s == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert calls == {"run": 3, "load": 3}  # run_study again each time: it reruns a dead worker's trial


@pytest.mark.parametrize("race", ["pg-duplicate-table", "unique-violation", "sqlite-table-exists"])
def test_a_storage_racing_another_worker_to_create_the_schema_is_retried(monkeypatch, race: str) -> None:
    from mmsheaf.runs import storage
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    errors = {
        "pg-duplicate-table": ProgrammingError("CREATE TABLE studies", {}, Exception('relation "studies" already exists')),
        "unique-violation": IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
        "sqlite-table-exists": OperationalError("CREATE TABLE", {}, Exception("table studies already exists")),
    }  # fmt: skip
    calls: list[str] = []

    def failing(times: int, error: Exception):
        def rdb(url: str, **kwargs) -> str:
            calls.append(url)
            if len(calls) <= times:
                raise error
            return "storage"

        return rdb

    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    monkeypatch.setattr(storage, "RDBStorage", failing(2, errors[race]))
    assert storage._rdb_storage("postgresql://h/db") == "storage" and len(calls) == 3
    # Another error is not a race: raised at once. A race that never ends is raised after the last attempt.
    calls.clear()
    denied = ProgrammingError("SELECT", {}, Exception('permission denied for table "studies"'))
    monkeypatch.setattr(storage, "RDBStorage", failing(1, denied))
    with pytest.raises(ProgrammingError, match="permission denied"):
        storage._rdb_storage("postgresql://h/db")
    assert len(calls) == 1
    calls.clear()
    monkeypatch.setattr(storage, "RDBStorage", failing(99, errors[race]))
    with pytest.raises(type(errors[race])):
        storage._rdb_storage("postgresql://h/db", attempts=4)
    assert len(calls) == 4
