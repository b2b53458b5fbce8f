"""The report runner with failing notebooks (issue 14): it goes on with the others and ends with a summary naming
the failed notebooks and the training runs recorded as failed; ``python -m mmsheaf report`` exits non-zero and
builds no paper. A fake executor stands in for papermill, so no notebook runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmsheaf.__main__ import main
from mmsheaf.report import paper as paper_module
from mmsheaf.report import runner
from mmsheaf.report.runner import NotebookFailed, ReportFailed, RunResult, run_all
from mmsheaf.runs.cache import KeyedSpec, RunCache, failure_records

NAMES = ["00_first", "01_training", "02_last"]


@dataclass(frozen=True)
class Spec(KeyedSpec):
    seed: int

    def describe(self) -> dict:
        return {"seed": self.seed}


class FakeExecutor:
    """Runs nothing: ``01_training`` fails the way a notebook whose runs raised does (``.failed`` records in the
    run cache, then ``RunsFailed`` out of the cell); the others succeed."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, nb, profile, out_dir=None, force=False, progress=True) -> RunResult:  # noqa: ANN001
        self.calls.append(nb.name)
        if nb.name != "01_training":
            return RunResult(nb.name, "ran", 0.1, ("tables/x.csv",))
        from mmsheaf import paths

        cache = RunCache(paths.cache_root() / "metric_runs")
        cache.put_failure(Spec(1), ValueError("text (sentence embeddings): 3 of 64 observed rows hold NaN"))
        raise NotebookFailed(nb.name, "RunsFailed in cell [7]: 1 run(s) failed and were not cached as results\n"
                                      "  - item supcon seed 1 (run 0123456789ab): ValueError: ...")  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root with three notebook sources and its own run cache; an old failure record in the cache."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    for name in NAMES:
        (root / "notebooks" / f"{name}.py").write_text("# %%\nprint('never run')\n")
    monkeypatch.setenv("MMSHEAF_ROOT", str(root))
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMSHEAF_OUTPUT", str(tmp_path / "out"))
    old = RunCache(tmp_path / "cache" / "recsys_runs").put_failure(Spec(0), RuntimeError("an earlier report"))
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    return root


def test_a_failed_notebook_does_not_stop_the_others_and_the_end_names_it_and_its_failed_runs(repo: Path) -> None:
    execute, lines = FakeExecutor(), []
    with pytest.raises(ReportFailed) as info:
        run_all("smoke", progress=False, log=lines.append, execute=execute)
    assert execute.calls == NAMES  # the last notebook ran after the failure
    error = info.value
    assert isinstance(error, NotebookFailed) and error.notebook == "01_training"
    assert [n for n, _ in error.failures] == ["01_training"]
    message = str(error)
    assert message.startswith("1 of 3 notebook(s) failed; the others ran.")
    assert "  - notebook 01_training failed: RunsFailed in cell [7]: 1 run(s) failed" in message
    assert "\n      - item supcon seed 1 (run 0123456789ab)" in message  # the notebook's own lines, indented
    assert f"1 training run(s) failed and were not cached as results (records under {repo.parent / 'cache'})" in message
    assert (f"  - metric_runs/{Spec(1).key()}.failed: ValueError: text (sentence embeddings): 3 of 64 observed rows "
            "hold NaN") in message  # fmt: skip
    assert "an earlier report" not in message  # only the records this report wrote
    assert [p.name for p, _ in error.failed_runs] == [f"{Spec(1).key()}.failed"]
    assert any("01_training: FAILED (notebook 01_training failed: RunsFailed in cell [7]" in line for line in lines)
    assert lines[-1].startswith("1 of 3 notebooks failed (01_training) after")


def test_all_notebooks_succeeding_return_their_results(repo: Path) -> None:
    ok = lambda nb, profile, **kw: RunResult(nb.name, "ran", 0.0)  # noqa: E731
    assert [r.notebook for r in run_all("smoke", progress=False, log=lambda s: None, execute=ok)] == NAMES


def test_failure_records_lists_every_failed_run_or_those_since_a_time(tmp_path: Path) -> None:
    cache = RunCache(tmp_path / "a" / "runs")
    first = cache.put_failure(Spec(0), ValueError("bad"))
    os.utime(first, (100.0, 100.0))
    second = cache.put_failure(Spec(1), ValueError("worse"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.failed").write_text("not json")
    assert failure_records(tmp_path) == sorted([(first, "ValueError: bad"), (second, "ValueError: worse"),
                                                (tmp_path / "b" / "x.failed", "unreadable failure record")])  # fmt: skip
    assert [p for p, _ in failure_records(tmp_path, since=200.0)] == sorted([second, tmp_path / "b" / "x.failed"])
    assert failure_records(tmp_path / "none") == []


def test_the_report_command_exits_nonzero_with_the_summary_and_builds_no_paper(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    execute, built = FakeExecutor(), []
    monkeypatch.setattr(runner, "run_notebook", execute)
    monkeypatch.setattr(paper_module, "build", lambda profile: built.append(profile))
    assert main(["report", "--profile", "smoke", "--no-progress"]) == 1
    assert execute.calls == NAMES and built == []
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 3 notebook(s) failed") and "notebook 01_training failed" in err
    assert f"metric_runs/{Spec(1).key()}.failed: ValueError" in err
