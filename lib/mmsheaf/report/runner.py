"""Executes the report's notebooks with papermill, in order, one profile at a time.

For each notebook the runner

1. skips it when it is up to date: its manifest (written by :meth:`mmsheaf.report.outputs.Report.close`) records
   the hash of its inputs — the notebook's ``.py``, its parameters file and the library modules it
   imported, as they were when that run started — and that hash is unchanged and every listed output exists
   (``force=True`` re-runs);
2. converts ``notebooks/NN_topic.py`` (the source of truth) to a notebook under ``build/<profile>/``;
3. executes it with papermill, injecting the profile's parameters, with a progress bar over cells and the
   notebook's own output (e.g. the tqdm bars of long experiment loops, with their ETA) streamed live;
4. has the notebook write its outputs into a staging folder (``MMSHEAF_STAGE_DIR``) and moves them into the
   output folder only when the notebook succeeded. A failure leaves earlier outputs untouched and raises
   :class:`NotebookFailed`, naming the notebook and the cell.

:func:`run_all` goes on with the other notebooks when one fails (for instance because some of its training runs
raised: :class:`~mmsheaf.runs.cache.RunsFailed`), then ends with :class:`ReportFailed`, which names every failed
notebook and every run recorded as failed meanwhile (the ``<key>.failed`` records under the run cache), so that no
table or paper is built from a failed run and a rerun retries only what failed.

Command line: ``python -m mmsheaf report --profile smoke`` (see :mod:`mmsheaf.__main__`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import paths
from ..atomic import write_text_atomic
from ..runs.cache import failure_records
from .notebooks import Notebook, discover, to_notebook
from .outputs import STAGE_ENV, move_outputs
from .provenance import input_hash, manifest_path, snapshot_inputs


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it, the failing cell and where the executed copy is."""

    def __init__(self, notebook: str, message: str) -> None:
        super().__init__(f"notebook {notebook} failed: {message}")
        self.notebook = notebook


class ReportFailed(NotebookFailed):
    """Some notebooks of :func:`run_all` failed (the others ran): the message names each, and every training run
    recorded as failed while they ran.

    Attributes:
        notebook: The first failed notebook.
        failures: ``[(notebook, error message)]`` in run order.
        failed_runs: ``[(record path, error)]``: the ``<key>.failed`` records written during the report.
    """

    def __init__(self, failures: list[tuple[str, str]], failed_runs: list[tuple[Path, str]], total: int,
                 cache_root: Path) -> None:  # fmt: skip
        lines = [f"{len(failures)} of {total} notebook(s) failed; the others ran. Failed notebooks keep their earlier "
                 "outputs and nothing was built from them:"]  # fmt: skip
        lines += ["  - " + message.replace("\n", "\n    ") for _, message in failures]
        if failed_runs:
            lines.append(f"{len(failed_runs)} training run(s) failed and were not cached as results (records under "
                         f"{cache_root}); fix the cause and run the report again: only these runs are retried:")
            lines += [f"  - {_relative(path, cache_root)}: {error}" for path, error in failed_runs]
        RuntimeError.__init__(self, "\n".join(lines))
        self.notebook = failures[0][0]
        self.failures, self.failed_runs = failures, failed_runs


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@dataclass(frozen=True)
class RunResult:
    notebook: str
    status: str  # "ran" or "skipped"
    seconds: float
    outputs: tuple[str, ...] = ()


def is_up_to_date(nb: Notebook, profile: str, out_dir: Path) -> bool:
    """True when the notebook's manifest matches its current inputs and all its outputs exist."""
    mf = manifest_path(out_dir, nb.name)
    if not mf.is_file():
        return False
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError:
        return False
    current = input_hash(nb, profile, manifest.get("library_files"))
    if manifest.get("input_hash") != current or manifest.get("profile") != profile:
        return False
    return all((out_dir / rel).is_file() for rel in manifest.get("outputs", []))


def last_wall_time(out_dir: Path, notebook: str) -> float | None:
    """Wall time of the notebook's last successful run in this output folder (for an honest ETA)."""
    try:
        return float(json.loads(manifest_path(out_dir, notebook).read_text())["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _failure_message(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f" in cell [{cell}]" if cell is not None else ""
    return f"{ename}{where}: {evalue}".strip()


def run_notebook(
    nb: Notebook,
    profile: str,
    out_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    extra_params: dict | None = None,
) -> RunResult:
    """Execute one notebook in a profile (see the module docstring); returns what happened.

    Args:
        extra_params: parameters injected on top of the profile's (a run with them is never skipped, and
            its manifest records no input hash, so a later plain run redoes it).
    """
    import jupytext
    import papermill as pm

    paths.check_profile(profile)
    out_dir = Path(out_dir) if out_dir else paths.output_root(profile)
    if not force and not extra_params and is_up_to_date(nb, profile, out_dir):
        return RunResult(nb.name, "skipped", 0.0)

    inputs = snapshot_inputs(nb, profile)  # what this run uses, whatever is edited while it runs
    params = {**nb.parameters(profile), **(extra_params or {})}
    work = paths.build_root(profile) / "executed"
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{nb.name}.source.ipynb"
    executed = work / f"{nb.name}.ipynb"
    jupytext.write(to_notebook(nb), source, fmt="ipynb")

    stage = Path(tempfile.mkdtemp(prefix=f"stage-{nb.name}-", dir=work))
    previous = os.environ.get(STAGE_ENV)
    os.environ[STAGE_ENV] = str(stage)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source),
            str(executed),
            parameters=params,
            kernel_name="python3",
            progress_bar=progress,
            cwd=str(nb.folder),
            log_output=False,
            # stream what the notebook prints (its own tqdm bars with their ETA) while long cells run
            stdout_file=sys.stdout if progress else None,
            stderr_file=sys.stderr if progress else None,
            # what processes started by the kernel print (Dask workers' progress bars) goes straight to this
            # terminal: the kernel's capture of fd output would put it in the notebook too, and the streams
            # above would then print each line twice
            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
        )
    except Exception as exc:  # noqa: BLE001 - papermill raises many kinds; all mean "the notebook failed"
        raise NotebookFailed(
            nb.name, f"{_failure_message(exc)} (executed copy: {executed}; earlier outputs in {out_dir} untouched)"
        ) from exc
    else:
        staged = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
        mf = stage / "provenance" / f"{nb.name}.manifest.json"
        if not mf.is_file():
            raise NotebookFailed(nb.name, "it finished without calling Report.close(), so no outputs were recorded")
        manifest = json.loads(mf.read_text())
        # the runner knows the notebook's own folder; a run with extra parameters is not the profile's run
        manifest["input_hash"] = None if extra_params else input_hash(nb, profile, manifest.get("library_files"),
                                                                        snapshot=inputs)  # fmt: skip
        manifest["wall_time_s"] = round(time.perf_counter() - t0, 1)  # the whole notebook, kernel start included
        write_text_atomic(mf, json.dumps(manifest, indent=2) + "\n")
        move_outputs(stage, out_dir)
        return RunResult(nb.name, "ran", time.perf_counter() - t0, tuple(staged))
    finally:
        if previous is None:
            os.environ.pop(STAGE_ENV, None)
        else:
            os.environ[STAGE_ENV] = previous
        shutil.rmtree(stage, ignore_errors=True)


def run_all(
    profile: str,
    names: list[str] | None = None,
    folder: Path | None = None,
    out_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    execute: Callable[..., RunResult] | None = None,
) -> list[RunResult]:
    """Run the notebooks in order; a failed one does not stop the others.

    Args:
        execute: Runs one notebook like :func:`run_notebook` (its default), which raises :class:`NotebookFailed`.

    Returns:
        What happened to each notebook, when all succeeded.

    Raises:
        ReportFailed: some notebooks failed; it names them and the training runs recorded as failed meanwhile.
    """
    execute = execute if execute is not None else run_notebook
    paths.check_profile(profile)
    notebooks = discover(folder, names)
    if not notebooks:
        raise ValueError(f"no notebooks (NN_topic.py) found in {folder or paths.notebooks_dir()}")
    results, failures = [], []
    started = time.time() - 1.0  # failure records written from now on are this report's (mtime granularity)
    t_all = time.perf_counter()
    out = Path(out_dir) if out_dir else paths.output_root(profile)
    for i, nb in enumerate(notebooks, 1):
        last = last_wall_time(out, nb.name)
        eta = f", last run took {last:.0f} s" if last else ""
        log(f"[{i}/{len(notebooks)}] {nb.name} ({profile} profile{eta}) ...")
        sys.stdout.flush()
        try:
            res = execute(nb, profile, out_dir=out_dir, force=force, progress=progress)
        except NotebookFailed as exc:
            failures.append((nb.name, str(exc)))
            log(f"[{i}/{len(notebooks)}] {nb.name}: FAILED ({str(exc).splitlines()[0]}); going on with the others")
            continue
        if res.status == "skipped":
            log(f"[{i}/{len(notebooks)}] {nb.name}: up to date (inputs unchanged since its outputs), skipped")
        else:
            log(f"[{i}/{len(notebooks)}] {nb.name}: done in {res.seconds:.1f} s, {len(res.outputs)} files written")
        results.append(res)
    if failures:
        error = ReportFailed(failures, failure_records(paths.cache_root(), since=started), len(notebooks),
                             paths.cache_root())  # fmt: skip
        log(f"{len(failures)} of {len(notebooks)} notebooks failed ({', '.join(n for n, _ in failures)}) after "
            f"{time.perf_counter() - t_all:.1f} s")
        raise error
    log(f"all {len(notebooks)} notebooks done in {time.perf_counter() - t_all:.1f} s")
    return results
