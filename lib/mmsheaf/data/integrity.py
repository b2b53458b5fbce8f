"""Integrity of raw files: the size and sha256 of every file of the data mirror, and their check.

The table ``known_files.tsv`` (next to this module) lists each raw file of the mirror layout by its path
relative to the data root, with its size in bytes and its sha256, as the mirror's ``README.md`` records them
(a data test compares the two). :func:`verify_known_files` compares files in a data root with it and raises
:class:`~mmsheaf.data.errors.RawFileMismatchError` naming each file that differs, what was expected, what
was found and how to restore it. Files the table does not list (a user's own data) are not checked here;
every loaded dataset is still checked structurally (:mod:`~mmsheaf.data.validate`).

Hashing 80 MB takes a fraction of a second, but loaders run in every notebook and test, so digests are
cached by (path, size, modification time) in ``<cache>/file_hashes.json``
(:func:`mmsheaf.paths.cache_root`): a warm load only calls ``stat`` on each file. A file rewritten in
place gets a new modification time and is hashed again.

``MMSHEAF_CHECK_HASHES=0`` skips the size and hash check (for someone who changed a raw file on purpose);
the structural checks still run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from mmsheaf import paths
from mmsheaf.atomic import write_json_atomic
from mmsheaf.data.errors import RESTORE_HINT, RawFileMismatchError

__all__ = [
    "CHECK_HASHES_ENV",
    "KnownFile",
    "file_sha256",
    "hash_checks_enabled",
    "known_files",
    "verify_known_files",
]

CHECK_HASHES_ENV = "MMSHEAF_CHECK_HASHES"
"""Environment variable: ``0`` (or false/no/off) skips the size and sha256 check of known raw files."""

TABLE = Path(__file__).with_name("known_files.tsv")
HASH_CACHE_FILE = "file_hashes.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownFile:
    """One raw file of the mirror layout: its path relative to the data root, size in bytes and sha256."""

    path: str
    size: int
    sha256: str


@lru_cache(maxsize=1)
def known_files() -> Mapping[str, KnownFile]:
    """Every known raw file, by path relative to the data root (read once from ``known_files.tsv``)."""
    out: dict[str, KnownFile] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("path\t"):
            continue
        rel, size, digest = line.split("\t")
        out[rel] = KnownFile(rel, int(size), digest)
    return MappingProxyType(out)


def hash_checks_enabled() -> bool:
    """Whether known raw files are checked (``MMSHEAF_CHECK_HASHES`` is not set to 0/false/no/off)."""
    return os.environ.get(CHECK_HASHES_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


class _HashCache:
    """sha256 digests by absolute path, valid while the file's size and modification time are unchanged."""

    def __init__(self) -> None:
        self._file: Path | None = None
        self._entries: dict[str, list] = {}

    def load(self) -> None:
        """Read the cache file of the current cache folder (again only when that folder changed)."""
        file = paths.cache_root() / HASH_CACHE_FILE
        if file == self._file:
            return
        self._file, self._entries = file, {}
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no cache yet, or a damaged one: hash again
        if isinstance(entries, dict):
            self._entries = entries

    def digest(self, path: Path, stat: os.stat_result) -> str:
        """The sha256 of ``path`` (``stat`` is its current stat); call :meth:`load` first."""
        key = str(path)
        entry = self._entries.get(key)
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(entry[2])
        digest = _sha256(path)
        self._entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        assert self._file is not None
        write_json_atomic(self._file, self._entries)
        return digest


_CACHE = _HashCache()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of ``path``, from the hash cache when its size and modification time are unchanged."""
    p = Path(path).resolve()
    _CACHE.load()
    return _CACHE.digest(p, p.stat())


def _found(path: Path, stat: os.stat_result, known: KnownFile) -> str | None:
    """How ``path`` (whose stat is ``stat``) differs from ``known`` (None when it matches)."""
    if stat.st_size != known.size:
        return f"found    {stat.st_size:,} bytes"
    digest = _CACHE.digest(path.absolute(), stat)
    if digest != known.sha256:
        return f"found    {stat.st_size:,} bytes, sha256 {digest}"
    return None


def verify_known_files(
    root: str | Path,
    relative: Iterable[str],
    *,
    dataset: str,
    restore: Sequence[str] = (),
    advice: str | None = None,
    label: str | None = None,
    force: bool = False,
) -> None:
    """Check the known files among ``relative`` (paths under ``root``) against their size and sha256.

    Files that do not exist, and files the table does not list, are skipped (missing files are the
    loaders' :class:`~mmsheaf.data.errors.DatasetNotFoundError`). Nothing is checked when
    ``MMSHEAF_CHECK_HASHES=0``, unless ``force``.

    Args:
        root: The data root (or a mirror folder laid out like it).
        relative: Paths relative to ``root``, as in :func:`known_files`.
        dataset: The dataset's name (or ``"mirror"``), for the message.
        restore: Ways to restore the files besides copying them again from a mirror.
        advice: Replaces the whole "how to restore" sentence (e.g. for a damaged file in the mirror itself).
        label: Replaces ``Dataset '<dataset>'`` at the start of the message (e.g. ``"The data mirror /x"``).
        force: Check even when ``MMSHEAF_CHECK_HASHES=0``.

    Raises:
        RawFileMismatchError: one or more files differ; the message lists each with the expected and the
            found size (and sha256), and how to restore them.
    """
    if not (force or hash_checks_enabled()):
        return
    base = Path(root)
    table = known_files()
    _CACHE.load()
    bad: list[tuple[Path, KnownFile, str]] = []
    for rel in relative:
        known = table.get(rel)
        if known is None:
            continue
        path = base / rel
        try:
            stat = path.stat()
        except OSError:
            continue  # missing: the loaders' DatasetNotFoundError
        found = _found(path, stat, known)
        if found is not None:
            bad.append((path, known, found))
    if not bad:
        return
    lines = [f"{label or f'Dataset {dataset!r}'}: {len(bad)} raw file(s) differ from the version this project knows:"]
    for path, known, found in bad:
        lines += [
            f"    {path}",
            f"        expected {known.size:,} bytes, sha256 {known.sha256}",
            f"        {found}",
        ]
    lines.append(advice or (
        "The file may be truncated, edited or from another release. Restore it: "
        + RESTORE_HINT
        + "".join(f"; or {way}" for way in restore)
        + f". If you changed it on purpose, set {CHECK_HASHES_ENV}=0 to skip this check "
        "(the structural checks of the loaded data still run)."
    ))
    raise RawFileMismatchError("\n".join(lines))
