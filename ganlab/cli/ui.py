"""``ganlab ui``: the MLflow UI on the project's store, bound to 127.0.0.1 by default.

Runs ``mlflow server`` on the store's SQLite database with one worker, serving
artifacts from the store's ``artifacts`` folder (where ganlab writes them), behind
ganlab's guard on artifact locations (ganlab.cli.ui_guard): no client of the port can
make the server read or write files outside that folder.
The server runs in its own session so that Ctrl-C stops it once, cleanly,
through this process; ``ganlab ui`` then exits 0. MLflow's telemetry is off
unless the environment says otherwise: nothing here should reach the network.
MLflow's own messages go to a file, shown when the server fails to start, unless
GANLAB_VERBOSE=1: ganlab says in its own words what the server does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError
from ganlab.redact import mask_credentials

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: binding these serves every interface: the URL printed names an address a browser can open instead
WILDCARD_HOSTS = ("0.0.0.0", "::")


#: MLflow's switch for its server's job runner (see ``ui``)
JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind (anything but 127.0.0.1 exposes the runs, without authentication).")] = "127.0.0.1",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow store to show. [default: sqlite:///mlruns/mlflow.db]")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 120.0,
) -> None:
    """Start the MLflow UI on the project's runs and print its URL; Ctrl-C stops it."""
    from ganlab.cli.ui_guard import GUARD_PATH, HOSTS_ENV, ROOT_ENV
    from ganlab.record.outputs import shown_path, store_label
    from ganlab.record.store import artifact_root, existing_store, local_artifact_dir

    uri = existing_store(tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise GanlabError(f"{uri} is already a tracking server: open it in a browser")
    shown = mask_credentials(store_label(uri))
    artifacts = artifact_root(uri) or (Path.cwd() / "mlartifacts").as_uri()  # the latter: MLflow's default
    folder: Path = local_artifact_dir(artifacts)  # type: ignore[assignment]
    folder.mkdir(parents=True, exist_ok=True)
    _check_port_free(host, port)
    local = f"http://127.0.0.1:{port}" if host in WILDCARD_HOSTS else _url(host, port)
    addresses = _addresses(host, port)  # what other machines open (none for a local host)
    if host not in LOCAL_HOSTS:
        print(f"ganlab: warning: {exposure(host, port, shown, shown_path(folder))}", file=sys.stderr)
    command = _server_command(uri, host, port, artifacts, default_root=artifact_root(uri) is not None)
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    # MLflow's server also starts a job runner and a Huey consumer per job kind (GenAI evaluation,
    # prompt optimisation, trace roll-ups), each a Python process importing MLflow: seconds of CPU and
    # hundreds of MB for features a GAN store never uses. Set the variable to true to have them.
    env.setdefault(JOBS_ENV, "false")
    env[ROOT_ENV] = artifacts
    env[HOSTS_ENV] = ",".join(_host_names(host, addresses))
    print(f"ganlab: starting the MLflow UI on {shown} ...", file=sys.stderr, flush=True)
    log = _server_log()
    # the server's own output goes to the log (stderr with GANLAB_VERBOSE=1): stdout carries only the URL line
    proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=log or _stderr_fd(), stderr=log)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        page = landing_page(uri)  # reads the store while the server starts
        _wait_ready(proc, local, timeout, log)
        _check_guard(f"{local}{GUARD_PATH}")
        first = addresses[0] if addresses else local
        elsewhere = f"; on this machine also {local}" if addresses else ""
        typer.echo(f"MLflow UI: {first}{page}  (store {shown}{elsewhere}; Ctrl-C to stop)")
        sys.stdout.flush()
        code = proc.wait()
        raise GanlabError(f"the MLflow server stopped by itself (exit code {code}){_last_words(log)}")
    except KeyboardInterrupt:
        print("ganlab: stopping the MLflow UI", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc)
        if log is not None:
            log.close()


def _server_command(uri: str, host: str, port: int, artifacts: str, default_root: bool) -> list[str]:
    """``mlflow server`` through ganlab.cli.ui_guard: its workers behind the guard on artifact locations.

    ``default_root``: new experiments keep their artifacts in ``artifacts`` as a file: URI (a SQLite
    store's), so that an experiment made in the UI is one ganlab's own commands, which open the
    store directly, can use; otherwise MLflow's default, its proxy (mlflow-artifacts:) into ``artifacts``.
    """
    return [sys.executable, "-m", "ganlab.cli.ui_guard", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", "1", "--uvicorn-opts", "--no-access-log", "--serve-artifacts",
            *(["--default-artifact-root", artifacts] if default_root else []), "--artifacts-destination", artifacts,
            "--disable-workspaces"]


def exposure(host: str, port: int, store: str, artifacts: str) -> str:
    """What a client of a non-local port can do, said precisely."""
    return (f"serving on {host} port {port} without authentication: anyone who can connect to this "
            f"port can read every run, metric, parameter and artifact in {store}, create, rename and delete "
            f"experiments and runs, log metrics, params and tags to any run, and upload files into {artifacts} "
            f"(nowhere else: artifact locations outside it are refused); leave out --host (127.0.0.1) to keep "
            f"the UI to this machine")


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _addresses(host: str, port: int) -> list[str]:
    """The URLs other machines open: the bound address, or for every interface this machine's own."""
    if host in LOCAL_HOSTS:
        return []
    if host not in WILDCARD_HOSTS:
        return [_url(host, port)]
    found = _outward_address()
    return [_url(found, port)] if found else []


def _outward_address() -> str | None:
    """The address other machines reach this one at: the interface of its default route, else its hostname's.

    A UDP socket's connect only picks a route (no packet is sent), so this needs no network.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    return next((info[4][0] for info in infos if not info[4][0].startswith("127.")), None)


def _host_names(host: str, addresses: list[str]) -> list[str]:
    """Host headers the server must accept (MLflow's defaults are this machine and private networks)."""
    from urllib.parse import urlsplit

    names = [urlsplit(a).hostname or "" for a in addresses]
    if host in WILDCARD_HOSTS:
        names += [socket.gethostname(), socket.getfqdn()]
    return [n if ":" not in n else f"[{n}]" for n in dict.fromkeys(names) if n]


def _server_log() -> IO[bytes] | None:
    """Where the server's own messages go: a file, read back when it fails; None with GANLAB_VERBOSE=1."""
    from ganlab.record.store import verbose

    return None if verbose() else tempfile.TemporaryFile()


def _last_words(log: IO[bytes] | None, lines: int = 3) -> str:
    """'; its last messages: ...' from the server's log, or a pointer to where they were printed."""
    if log is None:
        return "; see its messages above"
    try:
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return f"; its last messages: {mask_credentials(' | '.join(last))[-600:]}" if last else ""


def _check_guard(url: str) -> None:
    """Refuse to go on when the server answers without ganlab's guard in front of it."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            if response.status == 200:
                return
    except (urllib.error.URLError, OSError):
        pass
    raise GanlabError("the MLflow server started without ganlab's guard on artifact locations (an MLflow version "
                      "that starts its server differently?); refusing to serve it")


#: MLflow 3's UI has a GenAI / machine-learning switch (remembered per browser, GenAI at first)
#: that decides what an experiment opens on: traces and latency, or the runs table and charts.
#: This query parameter selects the machine-learning view for the page it opens.
MACHINE_LEARNING_VIEW = "workflowType=machine_learning"


def landing_page(uri: str) -> str:
    """The page to open: the runs of the experiment holding the newest run, in the machine-learning view.

    A GAN experiment opened in MLflow's GenAI view shows traces and latency,
    which a ganlab run has none of; ganlab marks its experiments as model
    development (ganlab.record.store.EXPERIMENT_KIND_TAG) for UIs that go by the
    experiment's kind, and links to the runs table for those that go by the switch.
    """
    from ganlab.record.store import client, search_all

    store = client(uri)
    experiments = [e.experiment_id for e in store.search_experiments()]
    newest = search_all(store, experiments, limit=1, newest_first=True) if experiments else []
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


def _wait_ready(proc: subprocess.Popen[Any], url: str, timeout: float, log: IO[bytes] | None = None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GanlabError(f"the MLflow server exited with code {proc.returncode} before it was ready"
                              f"{_last_words(log)}")
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
