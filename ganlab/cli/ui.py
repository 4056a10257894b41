"""``ganlab ui``: the MLflow UI on the project's store, bound to 127.0.0.1 by default.

Runs ``mlflow server`` on the store's SQLite database with one worker, serving
artifacts from the store's ``artifacts`` folder (where ganlab writes them).
The server runs in its own session so that Ctrl-C stops it once, cleanly,
through this process; ``ganlab ui`` then exits 0. MLflow's telemetry is off
unless the environment says otherwise: nothing here should reach the network.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind (anything but 127.0.0.1 exposes the runs, without authentication).")] = "127.0.0.1",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow store to show. [default: sqlite:///mlruns/mlflow.db]")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 120.0,
) -> None:
    """Start the MLflow UI on the project's runs and print its URL; Ctrl-C stops it."""
    from ganlab.compare.store import existing_store
    from ganlab.record.tracking import artifact_root, local_artifact_dir

    uri = existing_store(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise GanlabError(f"{uri} is already a tracking server: open it in a browser")
    _check_port_free(host, port)
    if host not in LOCAL_HOSTS:
        print(f"ganlab: warning: serving on {host}: anyone who can reach this machine can read and change the runs",
              file=sys.stderr)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", "1", "--uvicorn-opts", "--no-access-log"]
    artifacts = artifact_root(uri)
    if artifacts is not None:
        local_artifact_dir(artifacts).mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        command += ["--default-artifact-root", artifacts, "--artifacts-destination", artifacts]
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(f"ganlab: starting the MLflow UI on {uri} ...", file=sys.stderr, flush=True)
    # the server's own output goes to stderr: stdout carries only the URL line
    proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=_stderr_fd())
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        page = landing_page(uri)  # reads the store while the server starts
        _wait_ready(proc, url if host not in ("0.0.0.0", "::") else f"http://127.0.0.1:{port}", timeout)
        typer.echo(f"MLflow UI: {url}{page}  (store {uri}; Ctrl-C to stop)")
        sys.stdout.flush()
        code = proc.wait()
        raise GanlabError(f"the MLflow server stopped by itself (exit code {code}); see its messages above")
    except KeyboardInterrupt:
        print("ganlab: stopping the MLflow UI", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc)


#: MLflow 3's UI has a GenAI / machine-learning switch (remembered per browser, GenAI at first)
#: that decides what an experiment opens on: traces and latency, or the runs table and charts.
#: This query parameter selects the machine-learning view for the page it opens.
MACHINE_LEARNING_VIEW = "workflowType=machine_learning"


def landing_page(uri: str) -> str:
    """The page to open: the runs of the experiment holding the newest run, in the machine-learning view.

    A GAN experiment opened in MLflow's GenAI view shows traces and latency,
    which a ganlab run has none of; ganlab marks its experiments as model
    development (ganlab.record.tracking.EXPERIMENT_KIND_TAG) for UIs that go by the
    experiment's kind, and links to the runs table for those that go by the switch.
    """
    from ganlab.record.tracking import client

    store = client(uri)
    experiments = [e.experiment_id for e in store.search_experiments()]
    if not experiments:
        return f"/#/experiments?{MACHINE_LEARNING_VIEW}"
    newest = store.search_runs(experiments, max_results=1, order_by=["attributes.start_time DESC"])
    if not newest:
        return f"/#/experiments?{MACHINE_LEARNING_VIEW}"
    return f"/#/experiments/{newest[0].info.experiment_id}/runs?{MACHINE_LEARNING_VIEW}"


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (e.g. captured in tests)
        return None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GanlabError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; pick another with --port") from None


def _wait_ready(proc: subprocess.Popen[Any], url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GanlabError(f"the MLflow server exited with code {proc.returncode} before it was ready; "
                              f"see its messages above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise GanlabError(f"the MLflow server did not answer on {url} within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after a grace period."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
