"""mmsheaf.runs.rebuild: a study whose journal was lost, rebuilt from the runs of its trials without training."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mmsheaf.runs import hpo
from mmsheaf.runs.hpo import StudyConfig, load_study, run_study_and_wait
from mmsheaf.runs.rebuild import REBUILT_ATTR, rebuilt_studies, trial_key

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False},
         "k": {"type": "categorical", "choices": [16, 32, 64]}}  # fmt: skip


class Runs:
    """A run cache in miniature: an objective that records its run key, then reads or 'trains' the run."""

    def __init__(self, tag: str = "a") -> None:
        self.tag, self.results, self.trained = tag, {}, []

    def key(self, params: dict) -> str:
        return f"{self.tag}-x={params['x']!r}-k={params['k']!r}"

    def objective(self, params: dict, trial) -> float:
        key = self.key(params)
        trial.set_user_attr("run_key", key)
        if key not in self.results:
            self.trained.append(key)
            self.results[key] = {
                "params": dict(params),
                "value": -((params["x"] - 0.3) ** 2) + params["k"] / 1e3,
            }
        return self.results[key]["value"]


@pytest.fixture
def original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Runs, optuna.Study, StudyConfig]:
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "machine1"))
    runs, cfg = Runs(), StudyConfig("toy-a", n_trials=6, seed=3, n_startup_trials=3)
    study = run_study_and_wait(runs.objective, SPACE, cfg, progress=False)
    other = Runs("b")  # another study's runs in the same ledger: never taken as trials of this one
    run_study_and_wait(other.objective, SPACE, StudyConfig("toy-b", n_trials=2, seed=0), progress=False)
    runs.results.update(other.results)
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "machine2"))  # the journal is lost with machine 1
    return runs, study, cfg


def test_a_lost_study_is_rebuilt_from_its_runs_without_training(original) -> None:
    runs, study, cfg = original
    assert len(runs.trained) == 6
    with rebuilt_studies(runs.results, lambda payload: payload["params"], "journal lost") as rebuilt:
        again = hpo.run_study_and_wait(runs.objective, SPACE, cfg, progress=False)
        assert rebuilt == ["toy-a"]
        hpo.run_study_and_wait(runs.objective, SPACE, cfg, progress=False)  # it exists now: read, not rebuilt
        assert rebuilt == ["toy-a"]
    assert len(runs.trained) == 6  # nothing trained
    assert hpo.run_study_and_wait is not None and hpo.run_study_and_wait.__name__ == "run_study_and_wait"
    assert again.best_value == study.best_value and again.best_params == study.best_params
    assert sorted(t.user_attrs["run_key"] for t in again.trials) == sorted(
        t.user_attrs["run_key"] for t in study.trials
    )
    assert {t.state for t in again.trials} == {optuna.trial.TrialState.COMPLETE} and len(again.trials) == 6
    assert load_study(cfg).user_attrs[REBUILT_ATTR] == "journal lost"


def test_missing_trials_are_an_error_not_new_samples(original) -> None:
    runs, _, cfg = original
    some = dict(list(runs.results.items())[:4])
    with (
        pytest.raises(ValueError, match="hold 4 of its trials, not n_trials=6"),
        rebuilt_studies(some, lambda payload: payload["params"], "journal lost"),
    ):
        hpo.run_study_and_wait(runs.objective, SPACE, cfg, progress=False)
    assert len(runs.trained) == 6


def test_a_value_outside_the_space_is_not_a_trial(original) -> None:
    runs, _, cfg = original
    off = {k: {"params": {**p["params"], "k": 48}, "value": p["value"]} for k, p in runs.results.items()}
    with (
        pytest.raises(ValueError, match="hold 0 of its trials"),
        rebuilt_studies(off, lambda payload: payload["params"], "journal lost"),
    ):
        hpo.run_study_and_wait(runs.objective, SPACE, cfg, progress=False)


def test_trial_key_probes_without_training() -> None:
    runs = Runs()
    assert trial_key(runs.objective, {"x": 0.5, "k": 16}) == "a-x=0.5-k=16" and runs.trained == []
    with pytest.raises(ValueError, match="did not call trial.set_user_attr"):
        trial_key(lambda params, trial: 0.0, {"x": 0.5})


def test_rebuild_notes_name_only_rebuilt_studies(original, tmp_path: Path) -> None:
    from mmsheaf.runs.rebuild import rebuild_notes

    runs, _, cfg = original
    with rebuilt_studies(runs.results, lambda payload: payload["params"], "journal lost"):
        hpo.run_study_and_wait(runs.objective, SPACE, cfg, progress=False)
    run_study_and_wait(runs.objective, SPACE, StudyConfig("toy-c", n_trials=1), progress=False)
    assert rebuild_notes(["toy-a", "toy-c", "nowhere"]) == {"toy-a": "journal lost"}
    assert not (tmp_path / "machine2" / "optuna" / "nowhere.journal").exists()
