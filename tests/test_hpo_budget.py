"""The exact budget and the interrupted trials of mmsheaf.runs.budget: Jupyter interrupts, killed workers (by
process id in a journal, by Optuna's heartbeats in a database), why Optuna's MaxTrialsCallback does not
replace the slots, and the committed study journals of the run ledgers, which must replay without a trial."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from mmsheaf.runs import budget, hpo, ledger
from mmsheaf.runs.budget import INTERRUPTED_ATTR, OWNER_ATTR, SLOT_ATTR, interrupted_trials
from mmsheaf.runs.hpo import StudyConfig, load_study, run_study, study_frame
from mmsheaf.runs.space import suggest
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def quadratic(params: dict, trial: optuna.Trial) -> float:
    return -((params["x"] - 0.3) ** 2)


@pytest.fixture(autouse=True)
def _cache(study_cache: Path) -> Path:
    """Every study of a test lives under its own cache folder (``study_cache`` of conftest)."""
    return study_cache


def _complete_by_slot(study: optuna.Study) -> dict[int, dict]:
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    return {t.user_attrs[SLOT_ATTR]: t.params for t in done}


def _ask(study: optuna.Study) -> optuna.Trial:
    with (
        warnings.catch_warnings()
    ):  # Optuna: "Heartbeat of storage is supposed to be used with Study.optimize"
        warnings.simplefilter("ignore")
        return study.ask()


# ------------------------------------------------------------------------------------------ interrupts


def test_interrupted_trial_gives_its_slot_back() -> None:
    """A Jupyter interrupt mid-trial: the trial fails, keeps its parameters, and the next run reruns its slot."""
    interrupt = {"at": 2}

    def objective(params: dict, trial: optuna.Trial) -> float:
        if trial.number == interrupt["at"]:
            raise KeyboardInterrupt
        return quadratic(params, trial)

    space = {**SPACE, "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}}
    cfg = StudyConfig("k", n_trials=5, n_startup_trials=5)
    with pytest.raises(KeyboardInterrupt):
        run_study(objective, space, cfg, progress=False)
    study = load_study(cfg)
    [stopped] = interrupted_trials(study)
    assert stopped.number == 2 and stopped.state.name == "FAIL"
    assert stopped.user_attrs[INTERRUPTED_ATTR] == "KeyboardInterrupt"
    interrupt["at"] = -1
    resumed = run_study(objective, space, cfg, progress=False)
    assert interrupted_trials(resumed) == []
    # Five complete trials, one per slot, with the parameters of an uninterrupted run (seed + slot).
    straight = run_study(
        quadratic, space, StudyConfig("k-straight", n_trials=5, n_startup_trials=5), progress=False
    )
    assert _complete_by_slot(resumed) == _complete_by_slot(straight)
    assert len(resumed.trials) == 6 and study_frame(resumed)["state"].tolist().count("FAIL") == 1
    assert len(budget.counted_trials(resumed)) == 5
    run_study(objective, space, cfg, progress=False)  # nothing left to rerun or run
    assert len(load_study(cfg).trials) == 6
    # A failure of the objective (not an interrupt) still uses its slot.
    assert interrupted_trials(load_study(cfg)) == []


KILLED_WORKER = """
import os, signal, sys
import optuna
from mmsheaf.runs import hpo

optuna.logging.set_verbosity(optuna.logging.WARNING)
space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def objective(params, trial):
    if trial.number == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-trial, as at the end of a machine session
    return -((params["x"] - 0.3) ** 2)


cfg = hpo.StudyConfig("killed", storage=sys.argv[1] or None, n_trials=4, n_startup_trials=4, heartbeat_interval=1,
                      grace_period=1)
hpo.run_study(objective, space, cfg, progress=False)
"""


@pytest.mark.parametrize("storage", ["", "sqlite", "sqlite-no-heartbeat", "postgresql"],
                         ids=["journal-pid", "sqlite-heartbeat", "sqlite-killed-before-first-heartbeat",
                              "postgresql-heartbeat"])  # fmt: skip
def test_trial_of_a_killed_worker_is_retried_in_its_slot(tmp_path: Path, storage: str,
                                                         request: pytest.FixtureRequest) -> None:  # fmt: skip
    """A journal finds the dead worker by its process id, a database by Optuna's heartbeat; in both, Optuna's
    RetryHeartbeatStaleTrialCallback queues the trial again and the next run reruns it, with its parameters.
    A worker killed before its heartbeat thread first wrote (Optuna then skips the trial; seen under load in
    CI) is found in a database by its process id too: here its heartbeat row is deleted after the kill."""
    no_heartbeat = storage == "sqlite-no-heartbeat"
    if storage.startswith("sqlite"):
        storage = f"sqlite:///{tmp_path / 'hpo.db'}"
    elif storage == "postgresql":
        storage = request.getfixturevalue("postgres_url")
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WORKER, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), storage], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode < 0, proc.stdout + proc.stderr  # died by the signal
    cfg = StudyConfig("killed", storage=storage or None, n_trials=4, n_startup_trials=4, heartbeat_interval=1,
                      grace_period=1)  # fmt: skip
    study = load_study(cfg)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    if no_heartbeat:
        import sqlite3

        with sqlite3.connect(tmp_path / "hpo.db") as db:
            db.execute("DELETE FROM trial_heartbeats WHERE trial_id = ?", (study.trials[1]._trial_id,))
    if storage:
        time.sleep(2.5)  # the heartbeat goes stale after the grace period (SQLite's clock counts seconds)
    else:
        assert interrupted_trials(study)[0].number == 1  # the pid is gone: no need to wait

    resumed = run_study(quadratic, SPACE, cfg, progress=False)
    trials = resumed.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == 1
    assert trials[2].params == trials[1].params and trials[2].user_attrs[SLOT_ATTR] == 1
    assert trials[2].user_attrs[OWNER_ATTR] != trials[1].user_attrs[OWNER_ATTR]
    assert INTERRUPTED_ATTR not in trials[2].user_attrs
    if not storage or no_heartbeat:
        assert trials[1].user_attrs[INTERRUPTED_ATTR] == "worker died"
    assert interrupted_trials(resumed) == [] and len(budget.counted_trials(resumed)) == 4
    straight = run_study(quadratic, SPACE, replace(cfg, name="not-killed"), progress=False)
    assert _complete_by_slot(resumed) == _complete_by_slot(straight)
    slots = sorted(s for s in optuna.get_all_study_names(hpo.open_storage(cfg)) if s.startswith("killed#"))
    assert slots == [
        "killed#slot-0",
        "killed#slot-1",
        "killed#slot-1#rerun-of-1",
        "killed#slot-2",
        "killed#slot-3",
    ]


def test_running_trials_of_live_or_remote_workers_are_left_alone() -> None:
    cfg = StudyConfig("live", n_trials=3)
    study = run_study(quadratic, SPACE, cfg, progress=False)
    for owner in (f"{budget.socket.gethostname()}:{os.getpid()}", "another-host:1", None):
        trial = study.ask()
        trial.set_user_attr(SLOT_ATTR, 0)
        if owner is not None:
            trial.set_user_attr(OWNER_ATTR, owner)
    assert interrupted_trials(load_study(cfg)) == []
    budget.fail_dead_trials(load_study(cfg))
    assert [t.state.name for t in load_study(cfg).trials][3:] == ["RUNNING"] * 3


def test_a_stale_heartbeat_is_a_dead_worker_a_fresh_one_is_not(tmp_path: Path) -> None:
    """In a database, a worker on any machine whose trial's heartbeat is older than the grace period is dead:
    its trial is failed and rerun in its slot with its parameters; a trial with a fresh heartbeat is left alone."""
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    cfg = StudyConfig("hb", storage=url, n_trials=2)
    run_study(quadratic, SPACE, cfg, progress=False)
    storage, study = hpo.open_storage(cfg), load_study(cfg)
    running = {}
    for slot in (2, 3):  # two remote workers hold slots 2 and 3 of a budget of 4
        assert budget.reserve_slot(storage, "hb", 4) == slot
        trial = _ask(study)
        trial.set_user_attr(SLOT_ATTR, slot)
        trial.set_user_attr(OWNER_ATTR, f"another-host:{slot}")
        suggest(trial, SPACE)
        storage.record_heartbeat(trial._trial_id)
        running[slot] = trial
    with sqlite3.connect(tmp_path / "hb.db") as db:  # slot 2's worker was last heard of an hour ago
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour') WHERE trial_id = ?",
                   (running[2]._trial_id,))  # fmt: skip
    calls: list[float] = []

    def objective(params: dict, trial: optuna.Trial) -> float:
        calls.append(params["x"])
        return quadratic(params, trial)

    resumed = run_study(objective, SPACE, replace(cfg, n_trials=4), progress=False)
    assert calls == [running[2].params["x"]]  # the dead trial again, nothing else
    trials = resumed.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "RUNNING", "COMPLETE"]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[4]) == 2
    assert trials[4].user_attrs[SLOT_ATTR] == 2 and trials[4].params == trials[2].params
    assert interrupted_trials(resumed) == []
    slots = sorted(s for s in optuna.get_all_study_names(storage) if s.startswith("hb#"))
    assert slots == ["hb#slot-0", "hb#slot-1", "hb#slot-2", "hb#slot-2#rerun-of-2", "hb#slot-3"]


# ------------------------------------------------------------------------------------------ what Optuna does not cover


def test_max_trials_callback_overshoots_a_shared_budget(tmp_path: Path) -> None:
    """Why the slots stay: Optuna calls MaxTrialsCallback after a trial and it stops only its own process, so a
    worker that finds one trial done and one running of a budget of 2 starts a third. If this fails, Optuna
    now bounds a shared budget itself: see whether the slots of mmsheaf.runs.budget can go."""
    path = str(tmp_path / "max.journal")
    first = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    other = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    first.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    other.ask()  # a second worker starts the last trial of the budget
    first.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), callbacks=[MaxTrialsCallback(2, states=None)])
    assert len(first.trials) == 3


def test_a_journal_has_no_heartbeats(tmp_path: Path) -> None:
    """Why the process ids stay: Optuna's JournalStorage records no heartbeat, so fail_stale_trials leaves a
    dead worker's trial RUNNING forever. If this fails, Optuna's heartbeats now cover the journal too."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "hb.journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask()  # its worker dies
    assert not callable(getattr(storage, "get_heartbeat_interval", None))
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]


# ------------------------------------------------------------------------------------------ committed journals

NOTEBOOK_STUDIES = {  # notebook -> n_startup_trials of its protocol's tune() for n_trials
    "02_multimodal_sheaf": lambda n: 10,  # mmsheaf.recsys.protocol.tune: StudyConfig's default
    "03_arcface_vs_contrastive": lambda n: max(1, min(10, n // 2)),  # mmsheaf.metric.protocol.tune
    "04_huse": lambda n: max(1, min(10, n // 2)),  # mmsheaf.huse.protocol.tune
    "05_cold_start": lambda n: 10,  # mmsheaf.recsys.protocol.tune (ColdStartStudy's plans)
    "06_ssl_collapse": lambda n: max(1, min(10, n // 2)),  # mmsheaf.ssl.protocol.tune (rebuilt: runs.rebuild)
}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_STUDIES))
def test_the_committed_study_journals_replay_without_a_trial(
    notebook: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Optuna study kept in a committed run ledger (written by the slot mechanism as it was) is complete
    for run_study with the notebook's paper budget: no trial runs, the journal is not touched, and the best
    trial is the one the paper used."""
    path = ROOT / "figures" / "runs" / f"{notebook}.jsonl"
    params = yaml.safe_load(
        (ROOT / "notebooks" / "params" / f"{notebook}.paper.yaml").read_text(encoding="utf-8")
    )
    n_trials = params["HPO_TRIALS"]
    names = sorted(key for folder, key in ledger.read_ledger(path) if folder == ledger.STUDY_FOLDER)
    assert len(names) == {"02_multimodal_sheaf": 9, "03_arcface_vs_contrastive": 16, "04_huse": 5,
                          "05_cold_start": 20, "06_ssl_collapse": 6}[notebook]
    cache = tmp_path / "seeded"
    monkeypatch.setenv("MMSHEAF_CACHE", str(cache))
    monkeypatch.delenv("MMSHEAF_REUSE_RUNS", raising=False)
    ledger.seed_cache(path, cache)

    def never(params: dict, trial: optuna.Trial) -> float:
        raise AssertionError(f"trial {trial.number} of a complete study was run")

    values = {}
    for name in names:
        journal = cache / ledger.STUDY_FOLDER / f"{name}.journal"
        before = journal.read_bytes()
        expected = optuna.load_study(
            study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
        )
        cfg = StudyConfig(name, direction="maximize", n_trials=n_trials, seed=0,
                          n_startup_trials=NOTEBOOK_STUDIES[notebook](n_trials))  # fmt: skip
        study = run_study(never, {}, cfg, progress=False)
        assert journal.read_bytes() == before, f"{name}: the rerun wrote to the journal"
        assert (study.best_trial.number, study.best_params) == (
            expected.best_trial.number,
            expected.best_params,
        )
        assert study.best_value == expected.best_value
        frame = study_frame(study)
        # one complete trial per budget slot; any other trial is one a killed worker left, rerun in its slot
        # (notebook 04's supcon study: a worker was killed mid-trial and its trial rerun by the other)
        counted = budget.counted_trials(study)
        assert sorted(t.user_attrs[SLOT_ATTR] for t in counted) == list(range(n_trials))
        assert {t.state for t in counted} == {optuna.trial.TrialState.COMPLETE}
        rerun = [t for t in study.trials if t.number not in {c.number for c in counted}]
        assert all(t.user_attrs.get(INTERRUPTED_ATTR) for t in rerun)
        assert interrupted_trials(study) == [] and len(counted) == n_trials
        values[name] = tuple(frame.loc[frame["state"] == "COMPLETE", "value"])
    if (
        notebook == "02_multimodal_sheaf"
    ):  # the table of every trial that the notebook wrote from these studies
        table = pd.read_csv(ROOT / "figures" / "tables" / "recsys_hpo_trials.csv")
        done = table[table["state"] == "COMPLETE"]  # the table also lists a trial a killed worker left (FAIL)
        written = {tuple(group.sort_values("number")["value"]) for _, group in done.groupby("model")}
        assert set(values.values()) == written
