"""A real PostgreSQL server and a real ``mlflow server`` for the multi-worker sweep test.

PostgreSQL refuses to run as root, so as root (CI) the cluster is made and started as the
unprivileged ``postgres`` user that Debian's package creates. Both servers listen on free
local ports and are stopped (and their files removed) by the context managers.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganlab.cli.ui import JOBS_ENV, _stop, _wait_ready
from ganlab.errors import GanlabError


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise Unavailable("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from None
    return ["runuser", "-u", "postgres", "--", *command]


class Postgres:
    def __init__(self, url: str, stop: Any) -> None:
        self.url = url  # postgresql://postgres@127.0.0.1:PORT (append /DB)
        self.stop = stop  # stop the server at once, as if it crashed


@contextlib.contextmanager
def postgres(databases: tuple[str, ...]) -> Iterator[Postgres]:
    """A fresh cluster on a free port, stopped and removed afterwards."""
    bin_dir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="ganlab-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run = lambda cmd: subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        made = run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        if made.returncode != 0:
            raise Unavailable(f"initdb failed: {(made.stderr or made.stdout).strip().splitlines()[-1:]}")
        started = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                       f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        if started.returncode != 0:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else started.stderr
            raise Unavailable(f"pg_ctl start failed: {log.strip().splitlines()[-1:]}")
        try:
            for name in databases:
                created = run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                               f"CREATE DATABASE {name}"])
                if created.returncode != 0:
                    raise Unavailable(f"CREATE DATABASE {name} failed: {created.stderr.strip()}")
            stop = lambda: run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])  # noqa: E731
            yield Postgres(f"postgresql://postgres@127.0.0.1:{port}", stop)
        finally:
            run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """``mlflow server`` on a free port backed by ``backend_uri``; yields its http:// URI."""
    port = free_port()
    log = open(artifacts.parent / "mlflow-server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, JOBS_ENV: "false"})  # as `ganlab ui` starts it: no job runner
    uri = f"http://127.0.0.1:{port}"
    try:
        try:  # the same readiness wait and group stop as `ganlab ui`
            _wait_ready(proc, uri, timeout=120)
        except GanlabError as exc:
            text = (artifacts.parent / "mlflow-server.log").read_text(errors="replace")
            raise RuntimeError(f"mlflow server did not start ({exc}): {text[-2000:]}") from None
        yield uri
    finally:
        _stop(proc)
        log.close()
