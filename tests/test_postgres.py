"""The throwaway PostgreSQL server (mmsheaf.runs.postgres): a password over TCP, nothing for other users."""

from __future__ import annotations

import pytest
import sqlalchemy


def test_the_server_takes_its_password_and_refuses_others(postgres_server: str) -> None:
    with sqlalchemy.create_engine(postgres_server).connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    user_password = postgres_server.split("//", 1)[1].split("@", 1)[0]
    user = user_password.split(":", 1)[0]
    for credentials in (user, f"{user}:wrong"):  # no password, a wrong one
        engine = sqlalchemy.create_engine(postgres_server.replace(user_password, credentials, 1))
        with pytest.raises(sqlalchemy.exc.OperationalError):
            engine.connect()
        engine.dispose()


def test_workers_racing_to_create_the_schema_of_a_new_database_all_get_a_storage(postgres_url: str) -> None:
    """Each worker's RDBStorage creates the missing tables on a fresh database at the same moment; the
    losers' "relation already exists" (a ProgrammingError) and unique violations are retried, not raised.
    Twelve threads, each with its own engine: without the ProgrammingError retry this failed 3 runs in 4."""
    import threading

    from mmsheaf.runs.storage import optuna_storage, storage_kind

    barrier, opened, errors = threading.Barrier(12), [], []

    def worker() -> None:
        barrier.wait()
        try:
            opened.append(optuna_storage(postgres_url, "s", heartbeat_interval=60, grace_period=None,
                                         stale_trial_callback=None))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [storage_kind(s) for s in opened] == ["rdb:postgresql"] * 12
    opened[0].create_new_study([], "s")
    assert [s.get_study_id_from_name("s") for s in opened] == [1] * 12
