"""A run ends with one screen: how it ended and in how long, its last losses and metrics (results before
head diagnostics), and the commands that show the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import TINY, run_in_process


def test_the_last_lines_sum_the_run_up(workdir: Path) -> None:
    done = run_in_process(["run", "--dataset", "ring8", "--arch", "mlp", *TINY, "--eval-every", "4"], workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()[-4:]
    run_id = re.search(r"run ([0-9a-f]{32})", lines[0]).group(1)
    assert re.fullmatch(rf"ganlab: finished at step 4/4 in \d+s; run {run_id}", lines[0]), lines
    assert re.fullmatch(r"ganlab:   losses at step 4: loss\.d=-?\d+\.\d{4} loss\.g=-?\d+\.\d{4}", lines[1]), lines
    assert lines[2].startswith("ganlab:   metrics at step 4: modes.") and "diag." in lines[2], lines
    assert lines[2].index("modes.") < lines[2].index("diag.")
    assert lines[3] == f"ganlab:   look: ganlab ui · ganlab sample {run_id} · ganlab compare -e ganlab"


@pytest.mark.slow
def test_each_replica_of_a_population_sums_up_its_own_run(workdir: Path, mlflow_client) -> None:
    done = run_in_process(["run", "--dataset", "ring8", "--arch", "mlp", *TINY, "--eval-every", "4",
                           "--seeds", "0-1"], workdir)
    assert done.returncode == 0, done.stderr
    summaries = re.findall(r"ganlab: finished at step 4/4 in \d+s; run ([0-9a-f]{32})\n"
                           r"ganlab:   losses at step 4: loss\.d=(-?\d+\.\d{4}) loss\.g=(-?\d+\.\d{4})\n"
                           r"ganlab:   metrics at step 4: (.*)\n", done.stderr)
    assert len(summaries) == 2, done.stderr
    for run_id, loss_d, loss_g, metrics in summaries:
        recorded = mlflow_client.get_run(run_id).data.metrics
        assert (loss_d, loss_g) == (f"{recorded['loss.d']:.4f}", f"{recorded['loss.g']:.4f}")
        shown = dict(item.split("=") for item in metrics.split(" (and")[0].split())
        assert all(f"{recorded[key]:.4g}" == value for key, value in shown.items())
    assert summaries[0][1:3] != summaries[1][1:3], "two seeds, two different sets of losses"
