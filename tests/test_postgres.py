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
