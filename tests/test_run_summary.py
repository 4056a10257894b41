"""A run ends with one screen: how it ended and in how long, its last losses and metrics (results before
head diagnostics), and the commands that show the rest."""

from __future__ import annotations

import re
from pathlib import Path

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
