"""Passwords in URLs never leave ganlab, and a tracking server nothing answers at is refused at once.

A tracking URI or a study's storage may carry a password (``http://user:PW@host``,
``postgresql://alice:PW@host/db``, ``?password=PW``). Whatever ganlab prints, and whatever it
records in a store, shows it as ``***`` (ganlab.redact.mask_credentials), including the text
of the exceptions MLflow, SQLAlchemy and psycopg raise with the URL in it. Each case runs the
real CLI in a real process and searches every channel: stdout, stderr (the record writer's
own stderr too, let through with --verbose), and every file of the stores involved.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli

import servers
from ganlab.redact import mask_credentials

SECRET = "SECRETPW"
#: a run that trains in about a second (tests/test_bad_input.py's TINY_RUN)
TINY_RUN = ["--steps", "4", "--batch-size", "16", "--latent-dim", "8", "--log-every", "1", "--eval-every", "0",
            "--sample-every", "0", "--set", "metrics=none", "--set", "dataset.size=8", "--device", "cpu",
            "--set", "arch.hidden_scale=0.05"]
#: MLflow retries a failing request for minutes by default: once is enough to see what it says
ONE_TRY = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, text[-3000:]


def assert_one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("ganlab: error: "), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[-1]


def files_holding_the_secret(*roots: Path) -> list[Path]:
    return [path for root in roots if root.exists() for path in root.rglob("*")
            if path.is_file() and SECRET.encode() in path.read_bytes()]


# ---- the one function ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "masked"), [
    ("API request to http://user:SECRETPW@127.0.0.1:1/api/2.0/mlflow/runs/get failed",
     "API request to http://user:***@127.0.0.1:1/api/2.0/mlflow/runs/get failed"),
    ("storage postgresql+psycopg://alice:SECRETPW@db:5432/optuna is unreachable",
     "storage postgresql+psycopg://alice:***@db:5432/optuna is unreachable"),
    ("a password with an @: mysql://bob:SECRET@PW@db/x", "a password with an @: mysql://bob:***@db/x"),
    ("in a query: postgresql://db/x?user=alice&password=SECRETPW&sslmode=require",
     "in a query: postgresql://db/x?user=alice&password=***&sslmode=require"),
    ("cut inside the password: http://user:SECRE", "cut inside the password: http://user:***"),
    ("quoted ('https://u:SECRETPW@h/x', 1)", "quoted ('https://u:***@h/x', 1)"),
    # left as they are: no password
    ("http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning",
     "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"),
    ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db"),
    ("sqlite:////tmp/mlruns/mlflow.db and http://[::1]:5000/x",
     "sqlite:////tmp/mlruns/mlflow.db and http://[::1]:5000/x"),
    ("lr_g=0.0002", "lr_g=0.0002"),
    ("(e.g. sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000)",
     "(e.g. sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000)"),
    ("at http://mlflow:5000, then", "at http://mlflow:5000, then"),
])
def test_mask_credentials(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked
    assert mask_credentials(masked) == masked  # masking twice changes nothing


# ---- a study's storage --------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["sweep", "status", "nosuch"], ["sweep-worker", "nosuch"]],
                         ids=["sweep-status", "sweep-worker"])
@pytest.mark.slow
@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://alice:SECRETPW@127.0.0.1:{port}/db", "postgresql://alice:***@127.0.0.1:{port}/db"),
    ("postgresql://127.0.0.1:{port}/db?user=alice&password=SECRETPW",
     "postgresql://127.0.0.1:{port}/db?user=alice&password=***"),
], ids=["userinfo", "query"])
def test_a_storage_password_is_never_printed(tmp_path: Path, command: list[str], url: str, masked: str) -> None:
    port = closed_port()
    result = run_cli([*command, "--storage", url.format(port=port)], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert_no_secret(result.stdout, result.stderr)
    assert masked.format(port=port) in line and "unreachable" in line


@pytest.mark.slow
def test_a_missing_study_on_a_live_postgresql_names_its_storage_masked(tmp_path: Path) -> None:
    """The server answers (it trusts every password), and the study is not there."""
    try:
        context = servers.postgres(("optuna",))
        server = context.__enter__()
    except servers.Unavailable as why:
        pytest.skip(f"PostgreSQL cannot be started here: {why}")
    try:
        url = server.url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@") + "/optuna"
        for command in (["sweep", "status", "nosuch"], ["sweep-worker", "nosuch"]):
            result = run_cli([*command, "--storage", url], cwd=tmp_path, timeout=120)
            assert result.returncode == 2, result.stderr
            line = assert_one_error_line(result.stderr)
            assert_no_secret(result.stdout, result.stderr)
            assert "no study 'nosuch' in postgresql://postgres:***@127.0.0.1:" in line, line
    finally:
        context.__exit__(None, None, None)


# ---- a tracking server that does not answer -----------------------------------------------------
@pytest.mark.parametrize(("uri", "said"), [
    ("http://user:SECRETPW@127.0.0.1:{port}/",
     "cannot reach the MLflow tracking server at http://user:***@127.0.0.1:{port}/: connection refused"),
    ("postgresql://alice:SECRETPW@127.0.0.1:{port}/mlflow",
     "cannot reach the database server of the tracking store at postgresql://alice:***@127.0.0.1:{port}/mlflow: "
     "connection refused"),
], ids=["http", "postgresql"])
def test_a_tracking_server_nothing_answers_at_is_refused_at_once(tmp_path: Path, uri: str, said: str) -> None:
    """Not minutes of MLflow's retries, then 'failed at step 0' for a run that never existed."""
    port = closed_port()
    started = time.monotonic()
    result = run_cli(["run", *TINY_RUN, "--tracking-uri", uri.format(port=port)], cwd=tmp_path, timeout=90)
    took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert assert_one_error_line(result.stderr) == f"ganlab: error: {said.format(port=port)}"
    assert result.stderr.count("\n") == 1, result.stderr  # nothing else: no run was started, nothing promised
    assert_no_secret(result.stdout, result.stderr)
    assert not (tmp_path / "mlruns").exists()  # nothing was built or recorded
    assert took < 60, took


@pytest.fixture
def silent_server() -> Iterator[tuple[int, threading.Event]]:
    """A port that accepts connections and never answers: a tracking server stuck on its database."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    connected, stop, held = threading.Event(), threading.Event(), []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
                connected.set()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], connected
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@pytest.mark.slow
def test_a_record_writer_stuck_on_a_silent_server_is_abandoned_at_once(silent_server) -> None:
    """What a signal before the run exists needs: the writer stopped, not waited for (MLflow would
    retry for minutes), with ``StoreProcess.abandon``."""
    from ganlab.record.store_process import StoreProcess

    port, connected = silent_server
    store = StoreProcess(f"http://user:{SECRET}@127.0.0.1:{port}/")
    try:
        store.send("start_run", "ganlab", "stuck", {}, {})
        assert connected.wait(timeout=120), "the writer never asked the server"
        started = time.monotonic()
        store.abandon()
        assert time.monotonic() - started < 5
        assert store.process.returncode is not None and store.gone
    finally:
        store.close()  # after abandon: nothing left to wait for


# ---- MLflow's own exception text ----------------------------------------------------------------
@pytest.fixture
def failing_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server that answers every request 500, as a tracking server whose database is down does."""
    seen: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def _fail(self) -> None:
            seen.append(self.path)
            body = b'{"error_code": "INTERNAL_ERROR", "message": "database is down"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _fail

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_mlflows_exception_about_a_credentialed_server_is_masked(tmp_path: Path, failing_server, verbose: bool) -> None:
    """MLflow names the URL, password included, in its exception (twice); with --verbose the record
    writer's own stderr (MLflow's messages) reaches the terminal as well."""
    port, seen = failing_server
    result = run_cli(["run", *TINY_RUN, "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:{port}/",
                      *(["--verbose"] if verbose else [])], cwd=tmp_path, env=ONE_TRY, timeout=180)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert_no_secret(result.stdout, result.stderr)
    assert f"http://user:***@127.0.0.1:{port}" in line, line
    assert any(path.startswith("/api/") for path in seen), seen  # MLflow itself was asked, and failed
    assert files_holding_the_secret(tmp_path) == []


# ---- a run recorded on a real server ------------------------------------------------------------
LEAKY_PLUGIN = '''
from ganlab import hookimpl


@hookimpl
def on_step_end(ctx, step, losses):
    if step == 2:  # a plugin that talks to the same server, and names it when that fails
        raise RuntimeError(f"could not post to {ctx.config.tracking_uri}api/extra")
'''


@pytest.mark.slow
def test_a_failed_run_on_a_credentialed_server_records_and_prints_no_password(tmp_path: Path) -> None:
    """Params (the configuration's tracking_uri), tags (ganlab.error), config.toml, the run's lines."""
    from mlflow import MlflowClient

    store = tmp_path / "server"
    (store / "artifacts").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "leaky.py").write_text(LEAKY_PLUGIN)
    with servers.mlflow_server(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts") as uri:
        credentialed = uri.replace("http://", f"http://user:{SECRET}@") + "/"
        result = run_cli(["run", *TINY_RUN, "--tracking-uri", credentialed, "--plugin", "leaky.py",
                          "--experiment", "secrets"], cwd=project, env={"GANLAB_STRICT_PLUGINS": "1", **ONE_TRY},
                         timeout=300)
        assert result.returncode == 2, result.stderr
        line = assert_one_error_line(result.stderr)
        assert_no_secret(result.stdout, result.stderr)
        masked = credentialed.replace(SECRET, "***")
        assert f"could not post to {masked}api/extra" in line, line
        assert f"--tracking-uri {masked}" in result.stderr  # the hint printed at the start, masked

        client = MlflowClient(tracking_uri=uri)
        (run,) = client.search_runs([client.get_experiment_by_name("secrets").experiment_id])
        assert run.info.status == "FAILED"
        assert run.data.params["tracking_uri"] == masked
        assert masked in run.data.tags["ganlab.error"]
        recorded = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert "config.toml" in recorded
    assert files_holding_the_secret(store, project) == []


def test_the_record_writer_masks_what_it_stores() -> None:
    """The writer's choke point: every param, tag and JSON document passes through ``masked``."""
    from ganlab.record.store_worker import masked

    given = {"tracking_uri": f"https://me:{SECRET}@mlflow.example/", "nested": [f"mysql://a:{SECRET}@db/x", 3]}
    assert masked(given) == {"tracking_uri": "https://me:***@mlflow.example/", "nested": ["mysql://a:***@db/x", 3]}


@pytest.mark.slow
def test_local_workers_read_their_storage_from_the_environment_not_the_command_line(workdir: Path) -> None:
    """`ps` shows every user each process's command line: a storage URL (and its password) stays off it."""
    import os
    import subprocess
    import sys

    from conftest import TINY_RING8, TINY_SWEEP_BASE

    (workdir / "grid.toml").write_text('experiment = "ps"\n' + TINY_SWEEP_BASE + TINY_RING8 + "[grid]\nseed = [0]\n")
    sweep = subprocess.Popen([sys.executable, "-m", "ganlab", "sweep", "grid.toml", "--jobs", "2"], cwd=workdir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen: list[tuple[list[str], bytes]] = []
    while sweep.poll() is None and not seen:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                if "sweep-worker" in argv:
                    seen.append((argv, Path(f"/proc/{pid}/environ").read_bytes()))
            except OSError:
                continue
        time.sleep(0.01)
    _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, err
    assert seen, "no worker process was seen"
    argv, environ = seen[0]
    assert "--storage" not in argv and not any("journal:" in a for a in argv), argv
    assert b"GANLAB_SWEEP_STORAGE=journal:" in environ
