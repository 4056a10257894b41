"""Facts the guides state about the code, read from the code: which objective takes which head, the
built-in plugins and component hooks docs/plugins.md names, the hookspec history's last version
(docs/compatibility.md), and
the Python the example plugin declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from conftest import make
from ganlab.errors import ComponentError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def pair_table() -> list[tuple[str, bool, str, str]]:
    """docs/heads.md's table of objective/head pairs: (objective, labelled?, sigmoid cell, other heads' cell)."""
    text = (DOCS / "heads.md").read_text(encoding="utf-8")
    table = text[text.index("| objective | sigmoid | softmax, sparsemax, entmax |"):].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        first, sigmoid, others = (cell.strip() for cell in line.strip().strip("|").split("|"))
        for part in first.split(";"):
            labelled = "loss.labeled" in part
            for name in re.findall(r"`([a-z-]+)`", part):
                rows.append((name, labelled, sigmoid, others))
    return rows


def test_the_table_names_every_objective() -> None:
    from conftest import _registry

    losses = set(_registry().names("loss"))
    named = {name for name, *_ in pair_table()}
    assert losses <= named, f"docs/heads.md's table of pairs leaves out {sorted(losses - named)}"


@pytest.mark.parametrize(("objective", "labelled", "sigmoid", "others"), pair_table(),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_the_table_of_pairs_says_what_the_objectives_refuse(objective: str, labelled: bool, sigmoid: str,
                                                            others: str) -> None:
    from ganlab.testing import tiny_vector_data

    data = tiny_vector_data(64, classes=3)
    loss = make("loss", objective, **({"labeled": 12} if labelled else {}))
    for head_name, cell in (("sigmoid", sigmoid), ("softmax", others), ("sparsemax", others), ("entmax", others)):
        check = getattr(loss, "check", None)
        try:
            if check is not None:
                check(head_name, make("head", head_name), data)
            refused = False
        except ComponentError:
            refused = True
        assert refused == cell.startswith("refused"), (
            f"docs/heads.md says {objective}{' (labelled)' if labelled else ''} with {head_name}: '{cell}', "
            f"but its check {'refuses' if refused else 'accepts'} it")


def test_plugins_md_names_every_builtin_plugin_and_component_hook() -> None:
    from ganlab.hookspecs import COMPONENT_HOOKS
    from ganlab.plugins import DEFAULT_PLUGINS

    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    loading = _section(text, "## Loading and trying plugins")
    missing = [m for m in DEFAULT_PLUGINS if f".{m.rsplit('.', 1)[1]}`" not in loading]
    assert not missing, f"docs/plugins.md, 'Loading and trying plugins', leaves out the built-ins {missing}"
    intro = text[:text.index("## ")]
    missing = [hook for hook in COMPONENT_HOOKS if f"`{hook}`" not in intro]
    assert not missing, f"docs/plugins.md's list of component hooks leaves out {missing}"


def test_the_hookspec_history_ends_at_the_current_version() -> None:
    from ganlab import HOOKSPEC_VERSION

    policy = _section((DOCS / "compatibility.md").read_text(encoding="utf-8"), "## Versions")
    versions = re.findall(r"^\* \*\*(\d+\.\d+)\*\*", policy, flags=re.M)
    assert versions and versions[-1] == HOOKSPEC_VERSION, (versions, HOOKSPEC_VERSION)
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))))


def test_the_example_plugin_needs_the_python_ganlab_needs() -> None:
    def python(path: Path) -> str:
        return tomllib.loads(path.read_text(encoding="utf-8"))["project"]["requires-python"]

    example = ROOT / "plugins" / "examples" / "ganlab-temperature" / "pyproject.toml"
    assert python(example) == python(ROOT / "pyproject.toml")
