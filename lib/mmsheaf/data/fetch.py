"""Fill the data root from a mirror folder (a copy of the project's raw data, laid out like the data root).

Used by ``make data DATA_MIRROR=...`` / ``python -m mmsheaf data --mirror ...`` and by the real-data tests.
The mirror is only read, never written. PyG's ``processed/`` folders, the mirror's top-level ``README.md`` and
hidden files (names starting with ``.``) are not copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mmsheaf import paths
from mmsheaf.data.integrity import CHECK_HASHES_ENV, verify_known_files
from mmsheaf.data.node_datasets import NODE_DATASETS, NODE_DATASET_ALIASES
from mmsheaf.data.tables import TABLE_DATASETS

__all__ = ["fill_data_root", "mirror_files"]

MTIME_TOLERANCE_S = 1.0
"""Files whose size matches and whose modification times differ by less than this are considered copied."""


def mirror_files(mirror: str | Path) -> list[str]:
    """The files of ``mirror`` that :func:`fill_data_root` copies, as sorted POSIX paths relative to it."""
    base = _check_mirror(mirror)
    out: list[str] = []
    for folder, dirs, files in os.walk(base, followlinks=True):
        dirs[:] = [d for d in dirs if d != "processed" and not d.startswith(".")]
        rel_folder = Path(folder).relative_to(base)
        for name in files:
            if name.startswith(".") or (rel_folder == Path(".") and name == "README.md"):
                continue
            out.append((rel_folder / name).as_posix())
    return sorted(out)


def _check_mirror(mirror: str | Path) -> Path:
    base = Path(mirror).expanduser().resolve()
    if not base.is_dir():
        raise ValueError(
            f"Data mirror {base} does not exist or is not a folder: pass the folder that holds the raw "
            "datasets in PyG's layout (e.g. the project's shared data folder, with Planetoid/, WebKB/, ...)."
        )
    return base


def _select(files: list[str], only: Iterable[str], mirror: Path) -> list[str]:
    """Files of ``files`` selected by dataset names or relative paths/folders in ``only``."""
    available = set(files)
    chosen: set[str] = set()
    for item in only:
        key = NODE_DATASET_ALIASES.get(item.strip().lower(), item.strip().lower())
        if key in NODE_DATASETS or key in TABLE_DATASETS:
            spec = NODE_DATASETS.get(key) or TABLE_DATASETS[key]
            chosen.update(f for f in spec.raw_files if f in available)
            continue
        prefix = Path(item).as_posix().strip("/")
        matched = [f for f in files if f == prefix or f.startswith(prefix + "/")]
        if not matched:
            known = sorted(set(NODE_DATASETS) | set(TABLE_DATASETS))
            raise ValueError(
                f"`only` entry {item!r} is neither a dataset name ({', '.join(known)}) nor a file or "
                f"folder of the mirror {mirror} (e.g. 'Planetoid/Cora', 'MovieLens100K')."
            )
        chosen.update(matched)
    return sorted(chosen)


def _up_to_date(src: Path, dst: Path) -> bool:
    try:
        s, d = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    return s.st_size == d.st_size and abs(s.st_mtime - d.st_mtime) < MTIME_TOLERANCE_S


def fill_data_root(
    mirror: str | Path, root: str | Path | None = None, only: list[str] | None = None
) -> list[Path]:
    """Copy raw files from a mirror into the data root, keeping the layout; skip files already there.

    A file is skipped when the data root holds one of the same size and modification time (copies keep the
    mirror's times), so a second call is cheap and copies nothing. Each file is written to a temporary name
    and moved into place, so an interrupted run leaves no partial file under the final name.

    Args:
        mirror: The mirror folder (read only).
        root: The data root (default :func:`mmsheaf.paths.data_root`); created if needed.
        only: Restrict the copy: each entry is a dataset name of ``NODE_DATASETS`` / ``TABLE_DATASETS`` (its
            expected raw files) or a file or folder relative to the mirror (everything under it). ``None``
            copies everything.

    Known files (:mod:`~mmsheaf.data.integrity`) are checked against their size and sha256 in the mirror
    before anything is copied, and in the data root afterwards (digests are cached, so a second call hashes
    nothing).

    Returns:
        The destination paths of the files copied by this call (empty when all were up to date).

    Raises:
        RawFileMismatchError: a known file differs, in the mirror (nothing is copied) or in the data root.
        ValueError: the mirror is missing, the data root is the mirror or inside it, or an ``only`` entry
            matches nothing.
    """
    base = _check_mirror(mirror)
    dest = Path(root).expanduser().resolve() if root is not None else paths.data_root()
    if dest == base or base in dest.parents:
        raise ValueError(
            f"The data root {dest} is the mirror {base} or inside it: the mirror must stay read-only. "
            "Choose another data root (MMSHEAF_DATA or `root`)."
        )
    files = mirror_files(base)
    if only is not None:
        files = _select(files, only, base)

    verify_known_files(
        base, files, dataset="mirror", label=f"The data mirror {base}", advice=_MIRROR_ADVICE.format(mirror=base)
    )
    copied: list[Path] = []
    for rel in files:
        src, dst = base / rel, dest / rel
        if _up_to_date(src, dst):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.partial")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
        copied.append(dst)
    verify_known_files(dest, files, dataset="data root", label=f"The data root {dest}")
    return copied


_MIRROR_ADVICE = (
    "These files are damaged in the mirror {mirror} itself, so nothing was copied. Replace them from their "
    "source (the mirror's README.md says where each comes from) or point DATA_MIRROR (--mirror) to another "
    f"copy; set {CHECK_HASHES_ENV}=0 only if you changed them on purpose."
)
