"""``ganlab compare`` names every param that differs between its groups, not only those it groups by:
"entmax vs sigmoid" must not hide that one ran longer than the other."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY, run_in_process

BASE = ["run", "--dataset", "ring8", "--arch", "mlp", *TINY]


def test_a_param_that_differs_with_the_groups_is_named_in_the_caption_and_the_json(workdir: Path) -> None:
    for head, steps in (("entmax", "6"), ("sigmoid", "4")):
        done = run_in_process([*BASE, "--head", head, "--steps", steps], workdir)
        assert done.returncode == 0, done.stderr
    table = run_in_process(["compare", "-e", "ganlab", "-m", "loss.d", "-f", "markdown"], workdir)
    assert table.returncode == 0, table.stderr
    # entmax's own options (alpha, scores) group with its name; steps is named as differing
    assert "grouped by head.name, head.alpha, head.scores; the groups also differ in steps (4 / 6);" in table.stdout
    data = json.loads(run_in_process(["compare", "-e", "ganlab", "-m", "loss.d", "-f", "json"], workdir).stdout)
    assert data["group_by"] == ["head.name", "head.alpha", "head.scores"] and data["also_differ"]["steps"] == ["4", "6"]
    assert "seed" not in data["also_differ"] and "run_name" not in data["also_differ"]
