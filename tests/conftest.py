"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """Raw-data mirror of ``@pytest.mark.data`` tests: ``MMSHEAF_DATA_MIRROR`` or ``<repo>/../shared/data``.

    Read only: tests copy from it with ``fill_data_root`` into ``real_data_root``.
    """
    env = os.environ.get("MMSHEAF_DATA_MIRROR")
    path = Path(env).expanduser().resolve() if env else (REPO.parent / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(
            f"no data mirror at {path}: set MMSHEAF_DATA_MIRROR to a folder laid out like the shared data "
            "folder to run the real-data tests"
        )
    return path


@pytest.fixture(scope="session")
def real_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty session-wide data root; tests fill it with ``fill_data_root(data_mirror, root, only=...)``."""
    return tmp_path_factory.mktemp("data_root")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Unit tests run on one thread: tiny graphs gain nothing from more, and OpenMP threads on a busy
    2-core machine can make a run 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run order: unit tests, then the notebooks (nbval, which write the smoke outputs), then the paper build.

    The paper tests reuse the smoke outputs that the notebook runs just wrote instead of recomputing them.
    """

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("paper_build"):
            return 2
        return 1 if str(item.fspath).endswith(".ipynb") else 0

    items.sort(key=rank)  # stable: the order within each group is kept


@pytest.fixture
def study_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache folder of the test's own for Optuna studies (``MMSHEAF_CACHE``), with Optuna's per-trial INFO
    lines muted."""
    import optuna

    cache = tmp_path / "cache"
    monkeypatch.setenv("MMSHEAF_CACHE", str(cache))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield cache
    optuna.logging.set_verbosity(verbosity)


# Tests choose their executors themselves: an exported MMSHEAF_WORKERS / MMSHEAF_SCHEDULER would start a
# cluster under every default run loop of the suite.
for _name in ("MMSHEAF_WORKERS", "MMSHEAF_SCHEDULER"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (:func:`mmsheaf.runs.postgres.local_postgres`: Debian's
    package, installed by the set-up when missing; a temporary cluster on 127.0.0.1, stopped at the end). Not
    skipped when PostgreSQL is missing: the README's scale-out section promises it, so CI must run it."""
    from mmsheaf.runs.postgres import local_postgres

    with local_postgres(log=lambda *_: None) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's PostgreSQL server: its SQLAlchemy URL."""
    import uuid

    import sqlalchemy

    name = f"test_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{postgres_server.rsplit('/', 1)[0]}/{name}"
