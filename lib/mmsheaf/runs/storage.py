"""Where an Optuna study lives: an embedded journal file (the default) or a database, shared by its workers.

``storage=None`` keeps study ``name`` in the journal file ``paths.cache_root()/"optuna"/"<name>.journal"``
(Optuna's ``JournalStorage`` over a ``JournalFileBackend``): no server, safe for several processes on one
machine, and a plain file that the run ledgers keep (:mod:`mmsheaf.runs.ledger`). Any SQLAlchemy URL
(``sqlite:///...``, ``postgresql://user:pass@host/db``, ``mysql+pymysql://...``) selects Optuna's
``RDBStorage`` instead (a database server is what workers on several machines share), with Optuna's trial
heartbeats switched on; any other string is the path of a journal file (relative paths are taken inside
``paths.cache_root()/"optuna"``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from .. import paths

__all__ = ["SQLITE_BUSY_TIMEOUT_S", "journal_path", "optuna_storage", "storage_kind"]

SQLITE_BUSY_TIMEOUT_S = 60.0
"""How long a SQLite writer waits for the database lock before "database is locked" (Python's default: 5)."""


def journal_path(storage: str | None, name: str) -> Path | None:
    """The journal file of study ``name`` in ``storage`` (see the module); ``None`` for a SQLAlchemy URL."""
    if storage is None:
        return paths.cache_root() / "optuna" / f"{name}.journal"
    if "://" in storage:
        return None
    path = Path(storage).expanduser()
    return path if path.is_absolute() else paths.cache_root() / "optuna" / path


def _rdb_storage(url: str, attempts: int = 8, **kwargs: Any) -> RDBStorage:
    """``RDBStorage(url, **kwargs)``, retried when workers race to create the schema of a new database.

    Each worker creates the tables that are missing (SQLAlchemy's ``create_all`` checks, then creates) and
    stamps alembic's version row, so on a fresh database all but one may fail although the database ends up
    fine: with a unique-constraint violation (``IntegrityError``: PostgreSQL's ``pg_type`` row, alembic's
    version row) or with "table already exists" (PostgreSQL's ``DuplicateTable`` is a ``ProgrammingError``,
    SQLite's an ``OperationalError``). Those are retried after a short, growing pause; any other error is
    raised at once."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(url, **kwargs)
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            racing = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def optuna_storage(
    storage: str | None,
    name: str,
    *,
    heartbeat_interval: int,
    grace_period: int | None,
    stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> BaseStorage:
    """The Optuna storage of study ``name`` in ``storage`` (see the module); creates the journal's folder.

    Why a journal file by default: Optuna's ``RDBStorage`` over SQLite lets one writer at a time hold the
    database lock, and concurrent writers fail with ``database is locked`` once SQLite's busy timeout runs
    out (Optuna's docs advise against SQLite for parallel optimisation). ``JournalStorage`` over a
    ``JournalFileBackend`` is Optuna's storage for several processes on one machine without a server: each
    operation is one JSON line appended (and fsynced) under an exclusive lock file (atomic ``symlink``
    creation; a lock left by a crashed process is broken after 30 s), readers only use complete lines, and
    every process rebuilds the study by replaying the same log in the same order, so all agree on trial
    numbers and on which of two concurrent ``create_study`` calls came first.

    SQLAlchemy URLs get ``RDBStorage`` with Optuna's heartbeats: every running trial records a heartbeat each
    ``heartbeat_interval`` seconds, and a trial whose last heartbeat is older than ``grace_period`` (``None``:
    twice the interval) is failed by the next worker that starts a trial, which then calls
    ``stale_trial_callback``. (Optuna's ``JournalStorage`` has no heartbeats.) SQLite URLs get a busy timeout
    of :data:`SQLITE_BUSY_TIMEOUT_S` seconds.
    """
    journal = journal_path(storage, name)
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(journal)))
    url = str(storage)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return _rdb_storage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=stale_trial_callback,
    )


def storage_kind(storage: BaseStorage | optuna.Study) -> str:
    """``"journal-file"``, ``"rdb:<dialect>"`` (e.g. ``"rdb:sqlite"``, ``"rdb:postgresql"``), ``"in-memory"``
    or the class name of another storage."""
    if isinstance(storage, optuna.Study):
        storage = storage._storage  # Optuna has no public accessor of a study's storage
    backend = getattr(storage, "_backend", storage)  # _CachedStorage wraps an RDBStorage
    if isinstance(backend, RDBStorage):
        return f"rdb:{backend.engine.url.get_backend_name()}"
    if isinstance(backend, JournalFileBackend):
        return "journal-file"
    if isinstance(storage, JournalStorage):
        return f"journal:{type(storage._backend).__name__}"
    if isinstance(storage, optuna.storages.InMemoryStorage):
        return "in-memory"
    return type(storage).__name__
