"""Spec-keyed run caches and the resumable loop over runs (notebooks 02 and 03).

A *run spec* is a frozen description of one training run with ``describe()`` (a JSON-serialisable dict of
everything that determines the run) and ``key()`` (the sha256 of that dict's canonical JSON,
:func:`mmsheaf.experiments.canonical_json`). A :class:`SpecCache` keeps each finished run as
``<folder>/<key>.json`` holding ``{"spec": describe(), "result": ...}``; a file whose spec does not match the
key's spec (a changed setting, a hand-edited file) is ignored, so the run is recomputed. This is also the
record format of the run ledgers (:mod:`mmsheaf.ledger`).

:func:`run_cached` runs every spec the cache lacks and returns one table row per spec. It checks the cache
again just before each run, so several worker processes may walk the same specs (for instance in opposite
orders: ``MMSHEAF_RUN_ORDER=reverse``, :func:`~mmsheaf.experiments.worker_order`) and share one folder: a run
another worker has finished meanwhile is read, not repeated.

Example::

    cache = SpecCache(paths.cache_root() / "metric_runs")
    df = run_cached(specs, cache, run=train_one, row=lambda spec, result: {"seed": spec.seed, **result["test"]})
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd

from .atomic import write_text_atomic
from .experiments import canonical_json, worker_order

__all__ = ["RunSpec", "SpecCache", "run_cached"]


class RunSpec(Protocol):
    """What :class:`SpecCache` needs of a run's description."""

    def describe(self) -> dict[str, Any]: ...

    def key(self) -> str: ...


S = TypeVar("S", bound=RunSpec)


class SpecCache:
    """Results of run specs as ``<key>.json`` files (``{"spec", "result"}``) in ``folder``.

    Args:
        folder: The cache folder (created if missing).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, spec: RunSpec) -> Path:
        return self.folder / f"{spec.key()}.json"

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        """The stored ``{"spec", "result"}`` of ``spec``, or ``None`` if missing, unreadable or of another spec."""
        try:
            payload = json.loads(self.path(spec).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("spec") != json.loads(canonical_json(spec.describe())):
            return None
        return payload

    def put(self, spec: RunSpec, result: dict[str, Any]) -> dict[str, Any]:
        """Store ``result`` atomically; returns the payload as it reads back (JSON types: tuples become lists)."""
        text = json.dumps({"spec": json.loads(canonical_json(spec.describe())), "result": result}, indent=1)
        write_text_atomic(self.path(spec), text)
        return json.loads(text)

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.json"))


def run_cached(
    specs: Sequence[S],
    cache: SpecCache,
    run: Callable[[S], dict[str, Any]],
    row: Callable[[S, dict[str, Any]], dict[str, Any]],
    *,
    label: Callable[[S], str] = lambda spec: spec.key()[:12],
    progress: bool = True,
    desc: str = "runs",
) -> pd.DataFrame:
    """Run every spec the cache lacks, store each result as soon as it is done, return one row per spec.

    The tqdm bar counts only the runs still to do (the cached ones are named in its description, so they do
    not make the ETA look faster than it is). An exception stops the loop; finished runs stay cached.

    Args:
        specs: The runs, in the order to run them.
        cache: Where results are read and written.
        run: ``spec -> result`` (a JSON-serialisable dict).
        row: ``(spec, result) -> dict``: the table row of a run (the loop adds ``key`` and ``cached``).
        label: ``spec -> str`` shown beside the bar while the spec runs.
        progress: Show the bar.
        desc: The bar's description.

    Returns:
        One row per spec, in order, with ``key`` and ``cached`` (read from the cache rather than run by
        this call) besides what ``row`` returns.
    """
    from tqdm.auto import tqdm

    keys = [spec.key() for spec in specs]
    hits: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    for spec, key in zip(specs, keys):
        if key not in hits and key not in todo:
            hit = cache.get(spec)
            if hit is None:
                todo.add(key)
            else:
                hits[key] = hit
    bar = tqdm(total=len(todo), desc=f"{desc} ({len(specs) - len(todo)} cached)", unit="run", smoothing=0,
               disable=not progress or not todo)  # fmt: skip
    rows: list[dict[str, Any]] = [{} for _ in specs]
    ran_at: dict[str, int] = {}  # key -> the row whose spec this call ran
    try:
        for i, spec in worker_order(list(enumerate(specs))):  # MMSHEAF_RUN_ORDER=reverse: from the other end
            key = keys[i]
            if key not in hits:  # only missing runs are looked up again: another worker may have done one
                hit = cache.get(spec)
                if hit is None:
                    bar.set_postfix_str(label(spec))
                    hit = cache.put(spec, run(spec))
                    ran_at[key] = i
                hits[key] = hit
                bar.update(1)  # a spec listed twice runs once and counts once
            rows[i] = {**row(spec, hits[key]["result"]), "key": key, "cached": ran_at.get(key) != i}
    finally:
        bar.close()
    return pd.DataFrame(rows)
