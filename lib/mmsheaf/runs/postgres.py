r"""A throwaway PostgreSQL server for Optuna studies shared by workers on several machines.

An Optuna study in a database (:class:`~mmsheaf.runs.hpo.StudyConfig` ``storage="postgresql+psycopg2://..."``)
lets workers on any machine fill one trial budget (:func:`~mmsheaf.runs.hpo.run_study`). On a cluster the
database is a real server; for tests and for trying it on one machine, :func:`local_postgres` starts one from
Debian's ``postgresql`` package (installed by :func:`ensure_postgres`, as :func:`~mmsheaf.report.paper.ensure_latex`
installs LaTeX) in a temporary folder, as an unprivileged user, listening on 127.0.0.1 only, and stops and
deletes it at the end:

.. code-block:: python

    with local_postgres() as url:                 # postgresql+psycopg2://mmsheaf@127.0.0.1:<port>/mmsheaf
        cfg = StudyConfig("nsd-cora", storage=url, n_trials=20)
        # start run_study(objective, space, cfg) in any number of processes (or machines that reach the port)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DEBIAN_PACKAGES", "PostgresUnavailable", "ensure_postgres", "local_postgres", "postgres_bin"]

DEBIAN_PACKAGES: tuple[str, ...] = ("postgresql",)
"""What :func:`ensure_postgres` installs with apt-get."""

_TOOLS = ("initdb", "pg_ctl", "createdb")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is missing and cannot be installed here; the message says what to install by hand."""


def postgres_bin() -> Path | None:
    """The folder with ``initdb``, ``pg_ctl`` and ``createdb`` (on ``PATH``, or Debian's
    ``/usr/lib/postgresql/<version>/bin``, newest first); ``None`` when there is none."""
    found = [shutil.which(t) for t in _TOOLS]
    if all(found):
        return Path(found[0]).resolve().parent  # type: ignore[arg-type]
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True,
                      key=lambda p: tuple(int(x) for x in p.parent.name.split(".") if x.isdigit()))  # fmt: skip
    return next((p for p in versions if all((p / t).is_file() for t in _TOOLS)), None)


def _apt_prefix() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    ok = (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    )
    return ["sudo", "-n"] if ok else None


def ensure_postgres(log=print) -> Path:
    """The PostgreSQL binaries' folder, installing Debian's packages with apt-get when they are missing.

    Raises:
        PostgresUnavailable: missing and not installable here (no apt-get, not root and no passwordless sudo).
    """
    if (found := postgres_bin()) is not None:
        return found
    sudo = _apt_prefix()
    pkgs = " ".join(DEBIAN_PACKAGES)
    if sudo is None or not shutil.which("apt-get"):
        raise PostgresUnavailable(f"PostgreSQL is missing and cannot be installed here (needs apt-get and root or "
                                  f"passwordless sudo): install it by hand, e.g. `sudo apt-get install -y "
                                  f"--no-install-recommends {pkgs}`.")  # fmt: skip
    log(f"PostgreSQL missing: installing Debian packages {pkgs} ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                               *DEBIAN_PACKAGES]):  # fmt: skip
        proc = subprocess.run(sudo + cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-1500:]}")
    if (found := postgres_bin()) is None:
        raise PostgresUnavailable(
            f"PostgreSQL's initdb/pg_ctl are still missing after `apt-get install {pkgs}`."
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(user: str | None) -> list[str]:
    """The prefix that runs a command as ``user`` (PostgreSQL refuses to run as root); none when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", user or "nobody", "--"]
    return ["su", "-s", "/bin/sh", user or "nobody", "-c"]  # pragma: no cover - no util-linux


@contextlib.contextmanager
def local_postgres(database: str = "mmsheaf", user: str = "mmsheaf", os_user: str | None = None,
                   port: int | None = None, log=print) -> Iterator[str]:  # fmt: skip
    """Start a throwaway PostgreSQL server and yield its SQLAlchemy URL
    (``postgresql+psycopg2://<user>@127.0.0.1:<port>/<database>``); stop it and delete its folder on exit.

    The cluster lives in a new temporary folder (mode 0700; ``initdb`` with a random password, scram-sha-256 over
    TCP on 127.0.0.1 and peer authentication on its private socket, so no other local user gets in), runs as
    ``os_user`` (``nobody`` when this process is root: PostgreSQL will not run as root;
    this process's user otherwise) and listens on ``port`` (a free one by default) of 127.0.0.1.

    Args:
        database: The database created for the studies.
        user: The database role (created as the superuser of the new cluster).
        os_user: The operating-system user the server runs as (root only).
        port: TCP port; ``None``: a free one.
        log: Progress messages.
    """
    bindir = ensure_postgres(log)
    prefix = _as_user(os_user)
    port = port or _free_port()
    password = secrets.token_urlsafe(24)  # scram for TCP, peer for the socket: no other local user gets in
    folder = Path(tempfile.mkdtemp(prefix="mmsheaf-pg-"))  # 0700
    data, sock, log_file = folder / "data", folder / "sock", folder / "server.log"
    env = dict(os.environ, PGPASSWORD=password)

    def run(*cmd: str) -> None:
        argv = [str(bindir / cmd[0]), *cmd[1:]]
        full = prefix + ([shlex.join(argv)] if prefix and prefix[0] == "su" else argv)
        proc = subprocess.run(full, capture_output=True, text=True, cwd=folder, env=env, check=False)
        if proc.returncode != 0:
            server = log_file.read_text(errors="replace")[-1500:] if log_file.is_file() else ""
            raise PostgresUnavailable(f"`{' '.join(argv)}` failed:\n{proc.stdout[-1000:]}{proc.stderr[-1500:]}"
                                      + (f"\nserver log:\n{server}" if server else ""))  # fmt: skip

    try:
        sock.mkdir(mode=0o700)
        (folder / "pw").write_text(password + "\n", encoding="utf-8")
        if prefix:
            for path in (folder, sock, folder / "pw"):
                shutil.chown(path, user=os_user or "nobody")
        run("initdb", "-D", str(data), "-U", user, "--auth-host=scram-sha-256", "--auth-local=peer",
            f"--pwfile={folder / 'pw'}", "-E", "UTF8", "--no-sync")  # fmt: skip
        (folder / "pw").unlink()
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(log_file), "-w", "-t", "60", "start")
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, database)
        yield f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():  # started, even if pg_ctl timed out waiting for it
            with contextlib.suppress(PostgresUnavailable):
                run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
