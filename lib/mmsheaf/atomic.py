"""Atomic file writes: a reader (or a second worker sharing a cache folder) sees the old file or the new one,
never a half-written one.

Every cache, ledger, table and figure of the project is written through :func:`atomic_path`: the content goes to
a temporary file beside the target (same folder, so the same file system), is flushed to disk, and is renamed
onto the target with :func:`os.replace`, which POSIX makes atomic. If the block raises, the target is untouched
and the temporary file is removed.

Example::

    with atomic_path(folder / "result.json") as tmp:
        tmp.write_text(text)
    write_json_atomic(folder / "result.json", payload, indent=1)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_json_atomic", "write_text_atomic"]


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (its folder is created); when the block succeeds, the file
    written there is synced to disk and renamed onto ``target``; when it raises, ``target`` is left as it was.

    The temporary name starts with a dot and ends in ``.tmp`` (``.<name>.<random>.tmp``), so globs such as
    ``*.json`` or ``shard-*.npz`` never see it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; returns ``target`` as a :class:`~pathlib.Path`."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | Path, obj: Any, **dump_kwargs: Any) -> Path:
    """:func:`json.dumps` ``obj`` (keyword arguments passed on) and write it to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(obj, **dump_kwargs))
