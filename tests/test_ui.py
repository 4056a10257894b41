"""``ganlab ui``: what a client of its port can do, and what the command prints.

A real ``ganlab ui`` on a free port, a real MlflowClient against it. The server keeps every
artifact inside the store's ``mlruns/artifacts`` (ganlab.cli.ui_guard): an experiment whose
artifact location lies elsewhere is refused, so neither a client logging to it nor the server's
own upload endpoint can write outside the store.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_ui_browser import free_port, nothing_listens, read_line

pytestmark = pytest.mark.slow


@contextmanager
def ganlab_ui(workdir: Path, log: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``ganlab ui OPTIONS`` in ``workdir``: yields the line it printed, stops it with Ctrl-C after."""
    with open(log, "w") as err:
        # SIGINT as in a terminal (a suite started in the background hands its children SIGINT ignored)
        proc = subprocess.Popen([sys.executable, "-m", "ganlab", "ui", *options], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            yield read_line(proc, timeout=120), proc
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-2000:]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while being read
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def upload(base: str, run_id: str, name: str, data: bytes) -> int:
    """The MLflow server's own upload endpoint: it writes under the run's artifact location itself."""
    request = urllib.request.Request(f"{base}/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_id}&path={name}",
                                     data=data, method="POST", headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_ui_keeps_every_artifact_in_the_store(workdir: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    outside = tmp_path / "outside"
    outside.mkdir()
    payload = tmp_path / "pwned.txt"
    payload.write_text("written by a client of the UI's port\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ganlab_ui(workdir, tmp_path / "ui.log", "--port", str(port)):
        client = MlflowClient(tracking_uri=base)
        refusals = []
        for n, location in enumerate([str(outside), outside.as_uri(),
                                      str(workdir / "mlruns" / "artifacts" / ".." / ".." / outside.name),
                                      f"file://{workdir}/mlruns/artifacts/%2E%2E/%2E%2E/{outside.name}"]):
            try:
                experiment = client.create_experiment(f"escape-{n}", artifact_location=location)
            except MlflowException as exc:
                refusals.append(str(exc))
                continue
            run = client.create_run(experiment)  # the server let it through: what a client can then do
            client.log_artifact(run.info.run_id, str(payload))
            upload(base, run.info.run_id, "pwned.txt", b"written by the server itself\n")
        # an experiment in the store, the server's default: its uploads land in the store
        inside = client.create_run(client.create_experiment("inside")).info.run_id
        assert upload(base, inside, "fine.txt", b"kept in the store\n") == 200
        client.log_artifact(inside, str(payload))

    assert sorted(p.name for p in outside.rglob("*")) == []  # nothing outside the store
    assert len(refusals) == 4 and all("outside the store's artifacts" in r for r in refusals), refusals
    kept = sorted(p.name for p in (workdir / "mlruns" / "artifacts").rglob("*.txt"))
    assert kept == ["fine.txt", "pwned.txt"]
    assert nothing_listens(port)


def test_ui_on_every_interface_prints_an_address_that_answers_and_keeps_mlflow_quiet(workdir: Path,
                                                                                     tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    with ganlab_ui(workdir, log, "--host", "0.0.0.0", "--port", str(port)) as (line, ui):
        printed = line.split()[2]
        assert "0.0.0.0" not in line, line
        base = printed.split("/#/")[0]
        # the address answers, and MLflow accepts it as a Host (not 403 for a DNS-rebinding suspect)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30) as answer:
            assert answer.status == 200
        if not base.startswith("http://127.0.0.1:"):
            assert f"on this machine also http://127.0.0.1:{port}" in line, line
        # MLflow's job runner and its consumers are not started (their job kinds serve nothing ganlab records)
        commands = [command for pid in descendants(ui.pid) if (command := command_line(pid))]
        assert any("ui_guard" in c for c in commands), commands  # (the server was found)
        assert not [c for c in commands if "mlflow.server.jobs" in c], commands
    said = log.read_text()
    warning = [x for x in said.splitlines() if x.startswith("ganlab: warning:")]
    assert len(warning) == 1, said
    for what in ("without authentication", "read every run", "delete experiments and runs",
                 "upload files into mlruns/artifacts", "artifact locations outside it are refused"):
        assert what in warning[0], warning[0]
    # MLflow's own lines (one says "localhost-only") stay off the terminal unless GANLAB_VERBOSE=1
    assert all(x.startswith("ganlab: ") for x in said.splitlines()), said
    assert "localhost-only" not in said and "INFO" not in said, said
    assert nothing_listens(port)
