"""One run cache and one resumable loop over runs, shared by every study.

A *run spec* is a frozen description of one training run: :class:`KeyedSpec` subclasses write
``describe()`` (a JSON-ready dict of everything that determines the run) and inherit ``key()`` (the sha256 of
its canonical JSON, :func:`~mmsheaf.runs.keys.spec_key`). :class:`RunCache` keeps each finished run as
``<folder>/<key>.json``; the file's content is the spec's *record* of the run (by default
``{"spec": describe(), "result": ...}``), and a file the spec does not recognise as its own (a changed
setting, a hand-edited or half-written file) is ignored, so the run is recomputed. The records are also what
the run ledgers keep (:mod:`mmsheaf.runs.ledger`).

:func:`run_cached` runs every spec the cache lacks and returns one table row per spec. It checks the cache
again just before each run, so two notebooks sharing a cache folder never repeat a run the other finished
meanwhile; the missing runs execute where :mod:`mmsheaf.runs.executor` says (this process, or Dask workers).

Example::

    cache = RunCache(paths.cache_root() / "metric_runs")
    df = run_cached(specs, cache, run=train_one, row=lambda spec, result: {"seed": spec.seed, **result["test"]})
"""

from __future__ import annotations

import contextlib
import json
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from .executor import Executor, Failure, InProcess, call_with_threads, shared_executor
from .keys import canonical_json, spec_key

__all__ = ["KeyedSpec", "RunCache", "RunsFailed", "failure_records", "run_cached"]


class KeyedSpec:
    """Base of the run specs of every study: subclasses (frozen dataclasses) write :meth:`describe`.

    :meth:`record` and :meth:`matches` define the cache file of a finished run; a study whose records carry
    more than ``{"spec", "result"}`` (node classification keeps its schema, the key and the spec as given)
    overrides both, together.
    """

    def describe(self) -> dict[str, Any]:
        """Everything that determines the run, JSON-ready."""
        raise NotImplementedError(f"{type(self).__name__} must define describe()")

    def key(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`describe`: stable across runs, machines, versions."""
        return spec_key(self.describe())

    def record(self, result: dict[str, Any]) -> dict[str, Any]:
        """The cache file's content for this run's ``result``: ``{"spec": describe(), "result": result}``."""
        return {"spec": json.loads(canonical_json(self.describe())), "result": result}

    def matches(self, payload: dict[str, Any]) -> bool:
        """Whether ``payload`` (a cache file's content) is a record of this spec."""
        return payload.get("spec") == json.loads(canonical_json(self.describe()))


S = TypeVar("S", bound=KeyedSpec)


class RunsFailed(RuntimeError):
    """Some runs of a :func:`run_cached` call raised: each is named with its error; none was cached as a result.

    Attributes:
        failures: ``[(label, key, error text)]`` in run order.
    """

    def __init__(self, failures: list[tuple[str, str, str]], done: int) -> None:
        self.failures = failures
        lines = "\n".join(f"  - {label} (run {key[:12]}): {error}" for label, key, error in failures)
        super().__init__(
            f"{len(failures)} run(s) failed and were not cached as results ({done} others finished "
            f"and are cached); fix the cause and run again to retry only these:\n{lines}"
        )


class RunCache:
    """Finished runs as ``<folder>/<key>.json``, one small file each, written atomically.

    Args:
        folder: The cache folder (created on the first write). Its name is the run folder the ledgers name.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, spec: KeyedSpec | str) -> Path:
        """The file of ``spec`` (or of a key)."""
        return self.folder / f"{spec if isinstance(spec, str) else spec.key()}.json"

    def get(self, spec: KeyedSpec, key: str | None = None) -> dict[str, Any] | None:
        """The stored record of ``spec`` (with its ``"result"``), or ``None`` if missing or not its own.

        A file that cannot be read, or whose record is not of this spec (the key is the hash of the spec, so
        only an edited or corrupt file can be), is reported and ignored: the run is recomputed.
        """
        path = self.path(key or spec)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            warnings.warn(f"Ignoring unreadable cache file {path} ({exc}); the run will be recomputed.",
                          stacklevel=2)  # fmt: skip
            return None
        if not isinstance(payload, dict) or "result" not in payload or not spec.matches(payload):
            warnings.warn(f"Ignoring unreadable cache file {path} (not a record of this run: edited or corrupt); "
                          "the run will be recomputed.", stacklevel=2)  # fmt: skip
            return None
        return payload

    def put(self, spec: KeyedSpec, result: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Store ``result`` atomically; returns the record as it reads back (JSON types: tuples become lists)."""
        text = json.dumps(spec.record(result), indent=1, sort_keys=True)
        write_text_atomic(self.path(key or spec), text)
        return json.loads(text)

    def __contains__(self, spec: object) -> bool:
        return isinstance(spec, KeyedSpec) and self.get(spec) is not None

    def failure_path(self, spec: KeyedSpec | str) -> Path:
        """Where a failed run's error is kept (``<key>.failed``: never read as a result, nor kept in a ledger)."""
        return self.folder / f"{spec if isinstance(spec, str) else spec.key()}.failed"

    def put_failure(self, spec: KeyedSpec, error: BaseException, key: str | None = None) -> Path:
        """Record that ``spec`` failed with ``error`` (the run stays missing, so the next run retries it)."""
        record = {"spec": json.loads(canonical_json(spec.describe())), "error": f"{type(error).__name__}: {error}",
                  "traceback": "".join(traceback.format_exception(error))}  # fmt: skip
        return write_text_atomic(self.failure_path(key or spec), json.dumps(record, indent=1, sort_keys=True))

    def failures(self) -> dict[str, str]:
        """``{key: error}`` of the runs recorded as failed and not finished since."""
        out = {}
        for path in sorted(self.folder.glob("*.failed")) if self.folder.is_dir() else []:
            try:
                out[path.stem] = json.loads(path.read_text(encoding="utf-8"))["error"]
            except (OSError, ValueError, KeyError, TypeError):
                out[path.stem] = "unreadable failure record"
        return out

    def keys(self) -> list[str]:
        """Keys of the stored runs."""
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"RunCache({str(self.folder)!r})"


def failure_records(root: str | Path, since: float | None = None) -> list[tuple[Path, str]]:
    """Every run recorded as failed (``<key>.failed``) in the run caches under ``root``, with its error.

    Args:
        root: A cache root (e.g. :func:`mmsheaf.paths.cache_root`): its run folders are searched recursively.
        since: Only the records written at or after this time (``time.time()``); ``None``: all.

    Returns:
        ``[(path, error)]`` sorted by path (a record that cannot be read has the error
        ``"unreadable failure record"``).
    """
    root = Path(root)
    out = []
    for path in sorted(root.rglob("*.failed")) if root.is_dir() else []:
        try:
            if since is not None and path.stat().st_mtime < since:
                continue
            error = json.loads(path.read_text(encoding="utf-8"))["error"]
        except FileNotFoundError:  # finished by another worker meanwhile
            continue
        except (OSError, ValueError, KeyError, TypeError):
            error = "unreadable failure record"
        out.append((path, str(error)))
    return out


def run_cached(
    specs: Sequence[S],
    cache: RunCache,
    run: Callable[[S], dict[str, Any]],
    row: Callable[[S, dict[str, Any]], dict[str, Any]],
    *,
    label: Callable[[S], str] = lambda spec: spec.key()[:12],
    progress: bool = True,
    desc: str = "runs",
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every spec the cache lacks, store each result as soon as it is done, return one row per spec.

    The tqdm bar counts only the runs still to do (the cached ones are named in its description, so they do
    not make the ETA look faster than it is); its ETA is the average over the runs done so far
    (``smoothing=0``). An exception (or Ctrl-C) stops the loop; finished runs stay cached. Duplicate specs
    run once.

    Args:
        specs: The runs, in the order to run them.
        cache: Where results are read and written.
        run: ``spec -> result`` (a JSON-serialisable dict).
        row: ``(spec, result) -> dict``: the table row of a run (the loop adds ``key`` and ``cached``).
        label: ``spec -> str`` shown beside the bar while the spec runs.
        progress: Show the bar.
        desc: The bar's description.
        executor: Where the missing runs execute (:mod:`mmsheaf.runs.executor`); default
            :func:`~mmsheaf.runs.executor.shared_executor` (in this process unless ``MMSHEAF_WORKERS`` or
            ``MMSHEAF_SCHEDULER`` says otherwise). Every run gets :func:`~mmsheaf.runs.executor.run_threads`
            torch threads and records the count in its result (``run_threads``).

    Returns:
        One row per spec, in order, with ``key`` and ``cached`` (read from the cache rather than run by
        this call) besides what ``row`` returns.
    """
    keys = [spec.key() for spec in specs]  # also validates every spec before running any
    hits: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    for spec, key in zip(specs, keys):
        if key not in hits and key not in todo:
            hit = cache.get(spec, key)
            if hit is None:
                todo.add(key)
            else:
                hits[key] = hit
    bar = tqdm(total=len(todo), desc=f"{desc} ({len(specs) - len(todo)} cached)", unit="run", smoothing=0,
               disable=not progress or not todo)  # fmt: skip
    rows: list[dict[str, Any]] = [{} for _ in specs]
    ran_at: dict[str, int] = {}  # key -> the row whose spec this call ran
    failed: dict[str, tuple[str, str, str]] = {}
    executor = executor if executor is not None else shared_executor()
    if not isinstance(executor, InProcess) and todo:
        first = {}
        for i, key in enumerate(keys):
            if key in todo and key not in first:
                first[key] = i
        jobs = [
            i for i in first.values() if cache.get(specs[i], keys[i]) is None
        ]  # another notebook may have run it
        for i in first.values():
            if i not in jobs:
                hits[keys[i]] = cache.get(specs[i], keys[i])
                bar.update(1)
        try:
            with contextlib.closing(executor.imap(run, [specs[i] for i in jobs])) as outcomes:
                for j, outcome in outcomes:
                    i = jobs[j]
                    spec, key = specs[i], keys[i]
                    if isinstance(outcome, Failure):
                        cache.put_failure(spec, outcome.error, key)
                        failed[key] = (label(spec), key, f"{type(outcome.error).__name__}: {outcome.error}")
                    else:
                        hits[key] = cache.put(spec, outcome, key)  # the client alone writes the cache
                        cache.failure_path(key).unlink(missing_ok=True)
                        ran_at[key] = i
                    bar.set_postfix_str(label(spec))
                    bar.update(1)
        finally:
            bar.close()
        if failed:
            order = {k: n for n, k in enumerate(keys)}
            raise RunsFailed(sorted(failed.values(), key=lambda f: order[f[1]]), done=len(hits))
        return pd.DataFrame([{**row(spec, hits[key]["result"]), "key": key, "cached": ran_at.get(key) != i}
                             for i, (spec, key) in enumerate(zip(specs, keys))])  # fmt: skip
    try:
        for i, spec in enumerate(specs):
            key = keys[i]
            if key in failed:
                continue
            if key not in hits:  # only missing runs are looked up again: another worker may have done one
                hit = cache.get(spec, key)
                if hit is None:
                    bar.set_postfix_str(label(spec))
                    try:
                        result = call_with_threads(run, spec, executor.threads)
                    except Exception as exc:  # noqa: BLE001 - recorded, named and raised below
                        cache.put_failure(spec, exc, key)
                        failed[key] = (label(spec), key, f"{type(exc).__name__}: {exc}")
                        bar.update(1)
                        continue
                    hit = cache.put(spec, result, key)
                    cache.failure_path(key).unlink(missing_ok=True)
                    ran_at[key] = i
                hits[key] = hit
                bar.update(1)  # a spec listed twice runs once and counts once
            rows[i] = {**row(spec, hits[key]["result"]), "key": key, "cached": ran_at.get(key) != i}
    finally:
        bar.close()
    if failed:
        order = {k: n for n, k in enumerate(keys)}
        raise RunsFailed(sorted(failed.values(), key=lambda f: order[f[1]]), done=len(hits))
    return pd.DataFrame(rows)
