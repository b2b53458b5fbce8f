"""Errors of the data layer and the one message that says how to provide missing files.

Every loader in :mod:`mmsheaf.data` checks its expected raw files *before* it reads anything, and raises
:class:`DatasetNotFoundError` with the same kind of message: which dataset, which data root, which files are
missing (full paths), and the ways to provide them (copy from a mirror, place by hand, or download).

Two more errors, both ``ValueError`` subclasses, for files that are there but wrong:

- :class:`RawFileMismatchError`: a raw file's size or sha256 differs from the one the project knows
  (:mod:`~mmsheaf.data.integrity`); the message names the file, what was expected, what was found and how
  to restore it.
- :class:`DatasetValidationError`: a loaded dataset fails a structural check (:mod:`~mmsheaf.data.validate`):
  features for fewer nodes than the graph has, an edge to a node that does not exist, a line that does not
  parse, counts that disagree with the dataset's own metadata. The message names the dataset, the file and
  the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

OFFLINE_ENV = "MMSHEAF_OFFLINE"
"""Environment variable: ``1`` forbids downloads when a loader's ``download`` argument is ``None``."""

MAX_LISTED_FILES = 12
"""At most this many missing files are listed in a message, then "and N more"."""

MIRROR_HINT = (
    "copy them from a mirror folder laid out like the project's shared data folder: "
    "`make data DATA_MIRROR=/path/to/mirror` (or `python -m mmsheaf data --mirror /path/to/mirror`), "
    "or place the files at the paths above by hand"
)

RESTORE_HINT = (
    "delete it and run `make data DATA_MIRROR=/path/to/mirror` (or `python -m mmsheaf data --mirror "
    "/path/to/mirror`), which copies it again from a mirror folder laid out like the project's shared data folder"
)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's raw files are not in the data root (and could not be downloaded).

    A subclass of :class:`FileNotFoundError`, so ``except FileNotFoundError`` also catches it. The message
    names the dataset, the data root, the missing files and how to provide them.
    """


class DatasetFileError(ValueError):
    """A raw file is present but wrong (base class of the two errors below)."""


class RawFileMismatchError(DatasetFileError):
    """A raw file's size or sha256 differs from the one the project knows for its path."""


class DatasetValidationError(DatasetFileError):
    """A loaded dataset fails a structural check; the message names the dataset, the file and the check."""


def offline() -> bool:
    """Whether downloads are forbidden by the environment (``MMSHEAF_OFFLINE`` set to 1/true/yes/on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def downloads_allowed(download: bool | None) -> bool:
    """Resolve a loader's ``download`` argument: ``None`` means "allowed unless ``MMSHEAF_OFFLINE=1``"."""
    return (not offline()) if download is None else bool(download)


def missing_files(root: Path, relative: Iterable[str]) -> list[Path]:
    """The files of ``relative`` (paths relative to ``root``) that are not regular files under ``root``."""
    return [root / rel for rel in relative if not (root / rel).is_file()]


def not_found_message(
    name: str,
    root: Path,
    missing: Sequence[Path],
    *,
    alternatives: Sequence[str],
    reason: str | None = None,
    note: str | None = None,
) -> str:
    """Build the message of a :class:`DatasetNotFoundError`.

    Args:
        name: The dataset's registry name.
        root: The data root that was searched.
        missing: Full paths of the missing files.
        alternatives: Ways to provide the files besides copying from a mirror (e.g. "let PyG download them").
        reason: Why nothing was downloaded (downloads off, or the download's exception).
        note: A dataset-specific remark (e.g. a file known to be absent from the shared mirror).

    Returns:
        A multi-line message.
    """
    lines = [f"Dataset {name!r}: {len(missing)} expected raw file(s) missing under the data root {root}"]
    if not root.exists():
        lines[0] += " (this folder does not exist)"
    lines[0] += ":"
    lines += [f"    {path}" for path in missing[:MAX_LISTED_FILES]]
    if len(missing) > MAX_LISTED_FILES:
        lines.append(f"    ... and {len(missing) - MAX_LISTED_FILES} more")
    if reason:
        lines.append(reason)
    if note:
        lines.append(f"Note: {note}")
    lines.append("Provide them in one of these ways:")
    options = [MIRROR_HINT, *alternatives]
    lines += [f"  ({chr(ord('a') + i)}) {text};" for i, text in enumerate(options)]
    lines[-1] = lines[-1].rstrip(";") + "."
    lines.append(
        "The data root is set by the environment variable MMSHEAF_DATA (default <repo>/data) "
        "or by the loader's `root` argument."
    )
    return "\n".join(lines)
