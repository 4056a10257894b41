"""``ganlab ui`` in a real browser: headless Chromium renders the MLflow runs page of a small sweep.

The page is the one ``ganlab ui`` prints: the runs of the newest run's
experiment, in MLflow's machine-learning view, not the GenAI view's traces.

The MLflow UI is a React single-page app, so an HTTP 200 proves little: the
run names only reach the DOM once the app has fetched and rendered the runs.
MLflow nests child runs under their parent (collapsed) when the table is
sorted by date, so the page is loaded twice: as it opens (the sweep's parent
run is listed) and sorted by name (nesting off: every child run is listed).
"""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (.ci/run installs it)")

SWEEP = '''
experiment = "ui-check"
name = "uisweep"
[base]
steps = 3
batch_size = 16
latent_dim = 8
log_every = 1
eval_every = 0
sample_every = 0
metrics = "none"
[grid]
"head.name" = ["sigmoid", "softmax"]
seed = [41]
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nothing_listens(port: int) -> bool:
    # (binding would be the wrong probe: closed connections linger in TIME_WAIT on the port)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line:
                return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"`ganlab ui` printed no URL (exit code {proc.poll()})")


def chromium(url: str, profile: Path, *extra: str) -> str:
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1400,900", *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_mlflow_ui_renders_the_sweep_runs(workdir, cli_inproc, mlflow_client, tmp_path):
    (workdir / "ui.toml").write_text(SWEEP)
    assert cli_inproc(["sweep", "ui.toml"]) == 0
    experiment_id = mlflow_client.get_experiment_by_name("ui-check").experiment_id

    port = free_port()
    log = open(tmp_path / "ui.log", "w")
    # Ctrl-C as in a terminal: a suite started in the background (`... &` without job control)
    # hands its children SIGINT ignored, and the test would then wait for a signal never received
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "ui", "--port", str(port)], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = read_line(proc, timeout=120)
        url = f"http://127.0.0.1:{port}"
        # the URL printed opens the newest run's experiment on its runs table, in MLflow's
        # machine-learning view (a GAN experiment has no traces for the GenAI view to show)
        printed = line.split()[2]
        assert printed == f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning", line
        kind = mlflow_client.get_experiment(experiment_id).tags.get("mlflow.experimentKind")
        assert kind == "custom_model_development"

        page = chromium(printed, tmp_path / "profile1", "--dump-dom")
        assert "uisweep" in page  # the parent run, its children folded under it
        assert "<title>Runs - Experiment" in page and "Model registry" in page  # the model-training view
        assert "Token Usage" not in page  # not the GenAI overview (latency, tokens, cost)

        by_name = f"{url}/#/experiments/{experiment_id}/runs?orderByKey=attributes.run_name&orderByAsc=true"
        page = chromium(by_name, tmp_path / "profile2", "--dump-dom")
        for name in ("uisweep", "sigmoid-seed=41", "softmax-seed=41"):
            assert name in page, name

        shot = tmp_path / "runs.png"
        chromium(by_name, tmp_path / "profile3", f"--screenshot={shot}")
        assert shot.stat().st_size > 10_000
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "ui.log").read_text()[-2000:]
    assert nothing_listens(port)  # the MLflow server went with it


def test_ui_refuses_a_busy_port_and_a_missing_store(workdir, tmp_path, cli_inproc, capsys, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli_inproc(["ui", "--port", str(port)]) == 2
        assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    elsewhere = tmp_path / "not-a-project"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli_inproc(["ui", "--port", str(free_port())]) == 2
    assert "no MLflow store at mlruns/mlflow.db" in capsys.readouterr().err
