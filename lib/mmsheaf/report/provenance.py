"""Provenance of the report's outputs: the code (git commit), the packages, the hardware, and the hash of a
notebook's inputs.

Every output a notebook writes gets a record made of these (:class:`~mmsheaf.report.outputs.Report`), and a
notebook's manifest keeps :func:`input_hash` of its inputs, which the runner (:mod:`mmsheaf.report.runner`)
compares to skip notebooks that are up to date.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import paths
from ..atomic import write_text_atomic
from .notebooks import Notebook

__all__ = [
    "TRACKED_PACKAGES",
    "export_provenance",
    "git_commit",
    "hardware",
    "input_hash",
    "library_files_in_use",
    "manifest_path",
    "package_versions",
    "sha256_file",
    "snapshot_inputs",
]

TRACKED_PACKAGES: tuple[str, ...] = (
    "torch", "torch-geometric", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "seaborn",
    "transformers", "sentence-transformers", "pytorch-metric-learning", "torchmetrics", "pytorch-frame",
    "optuna", "papermill", "jupytext",
)


def git_commit(root: Path | None = None) -> str:
    """The repository's commit, with ``-dirty`` when tracked files other than the paper outputs differ from it;
    ``unknown`` outside git.

    The paper profile's outputs (``figures/``) are left out of the check: they are what the run writes, not
    what made it, and ``make report`` moves each notebook's outputs into place before the next one starts,
    which would mark every later notebook of the same run as made by changed code.
    """
    root = (root or paths.repo_root()).resolve()
    outputs = paths.output_root("paper").resolve()
    exclude = [f":(exclude){outputs.relative_to(root).as_posix()}"] if outputs.is_relative_to(root) else []
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            info["memory_gb"] = round(kb / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - hardware info is best effort
        pass
    return info


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)


def library_files_in_use() -> list[str]:
    """The library's source files imported in this process (relative to the package folder, sorted).

    A notebook's manifest records these, so that a change to a module the notebook never imports does not
    make it look out of date.
    """
    lib = paths.library_dir()
    files = set()
    for name, module in list(sys.modules.items()):
        f = getattr(module, "__file__", None)
        if (name == "mmsheaf" or name.startswith("mmsheaf.")) and f and Path(f).resolve().is_relative_to(lib):
            files.add(str(Path(f).resolve().relative_to(lib)))
    return sorted(files)


def _input_files(nb: Notebook, profile: str, library_files: list[str] | None = None) -> list[tuple[str, Path]]:
    lib = paths.library_dir()
    if library_files is None:
        library_files = sorted(str(p.relative_to(lib)) for p in lib.rglob("*.py") if "__pycache__" not in p.parts)
    return [("notebook", nb.py), ("params", nb.params_file(profile))] + [(rel, lib / rel) for rel in library_files]


def snapshot_inputs(nb: Notebook, profile: str) -> dict[str, bytes]:
    """The bytes of every possible input of a notebook run (``label -> bytes``; see :func:`input_hash`), read
    when the run starts: a file edited while a long run goes on is not what that run used."""
    return {label: f.read_bytes() for label, f in _input_files(nb, profile) if f.is_file()}


def input_hash(nb: Notebook, profile: str, library_files: list[str] | None = None,
               snapshot: dict[str, bytes] | None = None) -> str:  # fmt: skip
    """sha256 over a notebook's inputs: its ``.py``, its parameters file for ``profile``, and the library
    sources it uses (``library_files``, relative to the package; default: every source file), as they are now
    or as ``snapshot`` (:func:`snapshot_inputs`) recorded them."""
    h = hashlib.sha256()
    for label, f in _input_files(nb, profile, library_files):
        if snapshot is not None:
            data = snapshot.get(label, b"<missing>")
        else:
            data = f.read_bytes() if f.is_file() else b"<missing>"
        h.update(label.encode() + b"\0")
        h.update(data)
        h.update(b"\0")
    return h.hexdigest()


def manifest_path(out_dir: Path, notebook: str) -> Path:
    return out_dir / "provenance" / f"{notebook}.manifest.json"


def export_provenance(notebook: str, profile: str, path: Path, runs: int) -> Path:
    """The provenance record of a ledger merged from the cache by ``python -m mmsheaf runs export`` (an
    interrupted paper run's finished runs), like a notebook's outputs get; returns the record's path."""
    out = paths.output_root(profile)
    rel = path.relative_to(out).as_posix()
    record = {
        "output": rel, "notebook": notebook, "profile": profile, "partial": True,
        "written_by": f"python -m mmsheaf runs export {notebook} (an interrupted run's finished runs; the "
                      "notebook replaces this file with the runs it used when it completes)",
        "runs": runs, "git_commit": git_commit(), "versions": package_versions(), "hardware": hardware(),
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "sha256": sha256_file(path),
    }  # fmt: skip
    target = out / "provenance" / (rel.replace("/", "__") + ".json")
    write_text_atomic(target, json.dumps(record, indent=2) + "\n")
    return target
