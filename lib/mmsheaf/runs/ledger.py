"""Run ledgers: the finished runs of a notebook's paper profile, kept with its outputs so a long run can span
machines and sessions.

A notebook's runs are cached one file per run (``<cache>/<folder>/<key>.json``, see
:class:`mmsheaf.runs.cache.RunCache`); the cache lives under ``build/`` and is lost with the machine. A
**ledger** is the same records in one JSON-lines file beside the notebook's outputs
(``figures/runs/<notebook>.jsonl`` for the paper profile), one line per run::

    {"folder": "node_classification", "key": "<sha256>", "payload": {... the cache file's content ...}}

- At its start a notebook *seeds* its cache from its ledger (:func:`seed_cache`): runs already in the ledger
  are read, not recomputed. Each cache validates what it reads (the key is the sha256 of everything that
  determines the result), so a ledger line of another configuration is simply never used.
- At its end the notebook writes the ledger of exactly the runs it used (:func:`write_ledger`), as one of
  its outputs with provenance.
- An interrupted paper run can be saved with ``python -m mmsheaf runs export NOTEBOOK``
  (:func:`export_runs`), which merges the cache's finished runs into the ledger, so the next session (or
  another machine) resumes from there (the command also writes the ledger's provenance record,
  :func:`mmsheaf.report.provenance.export_provenance`).

A ledger also keeps the Optuna studies a notebook ran (``studies=`` of :func:`write_ledger`): the journal
file of each (``<cache>/optuna/<name>.journal``, see :meth:`mmsheaf.runs.hpo.StudyConfig.journal_path`), one
record per study, ``{"folder": "optuna", "key": "<study name>", "payload": {"journal": [lines]}}``. Seeding
it restores the study itself, so a rerun replays the same trials in the same order. Without it the runs
alone are not enough: a study that two workers ran drew its trials in an interleaved order that one worker
does not repeat, and the rerun would sample (and train) trials of its own.

``MMSHEAF_REUSE_RUNS=0`` makes :func:`seed_cache` a no-op: every run is recomputed from scratch.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import paths
from ..atomic import write_text_atomic

__all__ = [
    "RUN_FOLDERS",
    "STUDY_FOLDER",
    "STUDY_PREFIXES",
    "export_runs",
    "ledger_path",
    "read_ledger",
    "reuse_runs",
    "seed_cache",
    "write_ledger",
]

RUN_FOLDERS: Mapping[str, tuple[str, ...]] = {
    "01_sheaf_diffusion": ("node_classification",),
    "02_multimodal_sheaf": ("recsys_runs",),
    "03_arcface_vs_contrastive": ("metric_runs",),
    "04_huse": ("huse_runs",),
    "05_cold_start": ("recsys_runs",),
    "06_ssl_collapse": ("ssl_runs",),
    "07_graph_regularisation": ("graphreg_runs", "graphreg_review_runs"),
}
"""The run-cache folders (under :func:`mmsheaf.paths.cache_root`) of each notebook."""

STUDY_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "01_sheaf_diffusion": ("nsd-",),  # mmsheaf.nsd.tuning
    "02_multimodal_sheaf": ("ml100k-",),  # mmsheaf.recsys.protocol.tune: "<dataset>-<model>-<hash>"
    "03_arcface_vs_contrastive": ("clothing-",),  # mmsheaf.metric.protocol.tune
    "04_huse": ("huse-",),  # mmsheaf.huse.protocol.tune
    "05_cold_start": ("ml1m-",),  # mmsheaf.recsys.protocol.tune on the ML-1M cold-start datasets
    "06_ssl_collapse": ("ssl-",),  # mmsheaf.ssl.protocol.tune
    "07_graph_regularisation": (),  # no study: it reads notebook 01's tuned settings
}
"""The name prefixes of the Optuna studies of each notebook, whose journals :func:`export_runs` keeps."""


STUDY_FOLDER = "optuna"
"""The cache folder of the Optuna study journals; ledger records of this folder are journals, not runs."""


def _cache_file(root: Path, folder: str, key: str) -> Path:
    return root / folder / (f"{key}.journal" if folder == STUDY_FOLDER else f"{key}.json")


def _cache_text(folder: str, payload: Mapping[str, Any]) -> str:
    """The content of a record's cache file: a study's journal lines, or a run's JSON."""
    if folder == STUDY_FOLDER:
        return "".join(line + "\n" for line in payload["journal"])
    return json.dumps(payload, indent=1, sort_keys=True)


def ledger_path(notebook: str, profile: str) -> Path:
    """``<output root of the profile>/runs/<notebook>.jsonl`` (``figures/runs/...`` for ``paper``)."""
    return paths.output_root(profile) / "runs" / f"{notebook}.jsonl"


def reuse_runs() -> bool:
    """Whether ledgers are read (``MMSHEAF_REUSE_RUNS``, default on; ``0``/``false``/``no`` turn it off)."""
    return os.environ.get("MMSHEAF_REUSE_RUNS", "1").strip().lower() not in {"0", "false", "no", "off"}


def read_ledger(path: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The records of a ledger as ``{(folder, key): payload}``; a missing file is an empty ledger.

    Lines that are not valid records are skipped with a warning (the run is then recomputed).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            folder, key, payload = rec["folder"], rec["key"], rec["payload"]
            if not (isinstance(folder, str) and isinstance(key, str) and isinstance(payload, dict)):
                raise TypeError("folder and key must be strings, payload an object")
            if "/" in folder or "/" in key or folder.startswith(".") or key.startswith("."):
                raise ValueError("folder and key must be plain names")
            lines = payload.get("journal")
            if folder == STUDY_FOLDER and not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
                raise TypeError("a study record's payload must be {'journal': [lines]}")
        except (ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"{path}:{number}: skipping a ledger line that is not a run record ({exc}).",
                          stacklevel=2)  # fmt: skip
            continue
        out[(folder, key)] = payload
    return out


def _dump(records: Mapping[tuple[str, str], Mapping[str, Any]]) -> str:
    lines = [
        json.dumps({"folder": f, "key": k, "payload": records[(f, k)]}, sort_keys=True, separators=(",", ":"))
        for f, k in sorted(records)
    ]
    return "".join(line + "\n" for line in lines)


def seed_cache(path: str | Path, cache_root: str | Path | None = None) -> int:
    """Write every ledger record that the cache lacks as ``<cache_root>/<folder>/<key>.json`` (a study's
    journal as ``<cache_root>/optuna/<name>.journal``).

    Args:
        path: The ledger (see :func:`ledger_path`).
        cache_root: Root of the run caches (default :func:`mmsheaf.paths.cache_root`).

    Returns:
        The number of runs written (0 when ``MMSHEAF_REUSE_RUNS=0`` or the ledger is missing).
    """
    if not reuse_runs():
        return 0
    root = Path(cache_root) if cache_root is not None else paths.cache_root()
    written = 0
    for (folder, key), payload in read_ledger(path).items():
        target = _cache_file(root, folder, key)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, _cache_text(folder, payload))
        written += 1
    return written


def _cache_records(root: Path, folders: Iterable[str], keys: set[str] | None) -> dict[tuple[str, str], Any]:
    records: dict[tuple[str, str], Any] = {}
    for folder in folders:
        for file in sorted((root / folder).glob("*.json")) if (root / folder).is_dir() else []:
            if keys is not None and file.stem not in keys:
                continue
            try:
                payload = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                warnings.warn(f"skipping unreadable cache file {file} ({exc}).", stacklevel=3)
                continue
            if isinstance(payload, dict):
                records[(folder, file.stem)] = payload
    return records


def _study_records(root: Path, studies: Iterable[str]) -> dict[tuple[str, str], Any]:
    records: dict[tuple[str, str], Any] = {}
    for name in sorted(set(studies)):
        journal = _cache_file(root, STUDY_FOLDER, name)
        if not journal.is_file():
            warnings.warn(f"study {name!r} has no journal file {journal} (kept in a database?): the "
                          "ledger keeps its runs only, and a rerun samples its trials again.",
                          stacklevel=3)  # fmt: skip
            continue
        records[(STUDY_FOLDER, name)] = {"journal": journal.read_text(encoding="utf-8").splitlines()}
    return records


def write_ledger(path: str | Path, folders: Iterable[str], keys: Iterable[str],
                 cache_root: str | Path | None = None, studies: Iterable[str] = ()) -> Path:  # fmt: skip
    """Write the ledger of exactly the runs ``keys`` found in the cache ``folders`` (replacing the file).

    Args:
        path: Target file (a notebook passes a path inside its staged output folder).
        folders: Cache folders to read, e.g. ``("node_classification",)``.
        keys: The runs to keep; keys not in the cache are an error (the ledger would be incomplete).
        cache_root: Root of the run caches (default :func:`mmsheaf.paths.cache_root`).
        studies: Names of the Optuna studies the notebook ran; their journal files are kept too, so a rerun
            replays their trials (a study without a journal file, e.g. in a database, is skipped with a
            warning).
    """
    root = Path(cache_root) if cache_root is not None else paths.cache_root()
    wanted = set(keys)
    records = _cache_records(root, folders, wanted)
    missing = wanted - {k for _, k in records}
    if missing:
        raise ValueError(f"{len(missing)} of the {len(wanted)} runs are not in the cache folders "
                         f"{list(folders)} under {root} (e.g. {sorted(missing)[0]}): run them first.")  # fmt: skip
    records.update(_study_records(root, studies))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, _dump(records))
    return path


def export_runs(notebook: str, profile: str = "paper", cache_root: str | Path | None = None,
                target: str | Path | None = None) -> tuple[Path, int, int]:  # fmt: skip
    """Merge the finished runs of ``notebook`` in the cache into its ledger (an interrupted run's progress),
    with the journals of its Optuna studies (names starting with one of its :data:`STUDY_PREFIXES`), so the
    next session replays the trials the studies drew instead of sampling new ones (whose best parameters, and
    so every run keyed on them, could differ). A journal replaces the ledger's older copy of the same study.

    Returns:
        ``(ledger path, runs added, runs in the ledger)``; the counts are of runs, not journals.
    """
    if notebook not in RUN_FOLDERS:
        raise ValueError(f"No run folders are known for {notebook!r}: choose one of {sorted(RUN_FOLDERS)}.")
    root = Path(cache_root) if cache_root is not None else paths.cache_root()
    path = Path(target) if target is not None else ledger_path(notebook, profile)
    records = read_ledger(path)
    before = sum(folder != STUDY_FOLDER for folder, _ in records)
    records.update(_cache_records(root, RUN_FOLDERS[notebook], None))
    journals = (root / STUDY_FOLDER).glob("*.journal")  # nothing when the folder is missing
    records.update(_study_records(root, [f.stem for f in journals if f.stem.startswith(STUDY_PREFIXES[notebook])]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, _dump(records))
    runs = sum(folder != STUDY_FOLDER for folder, _ in records)
    return path, runs - before, runs
