"""The plugin docs against the code: the hook reference, and the guides' examples actually working.

docs/hooks.md is generated from ganlab/hookspecs.py by tools/hooks_doc.py and must be what that
script writes today (so each hook's text is its docstring), listing every hook specification with
exactly its signature; every ``@hookimpl`` example of docs/plugins.md and docs/compatibility.md
must name only arguments its specification has; and their complete example files (code blocks
starting with ``# file: NAME.py``) must load as plugins and train.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ganlab import Option, hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
REFERENCE = ROOT / "docs" / "hooks.md"
#: the pages whose examples are checked and run
GUIDES = (DOC, ROOT / "docs" / "compatibility.md")
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def spec_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "ganlab_spec"))


def python_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def guide_blocks() -> list[str]:
    return [block for page in GUIDES for block in python_blocks(page.read_text(encoding="utf-8"))]


def hooks_doc():
    """tools/hooks_doc.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("hooks_doc", ROOT / "tools" / "hooks_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_signatures() -> dict[str, list[inspect.Signature]]:
    """Signatures of the defs in the hook reference, compiled as hookspecs.py is
    (postponed annotations), so annotation text is normalised the same way."""
    found: dict[str, list[inspect.Signature]] = {}
    for block in python_blocks(REFERENCE.read_text(encoding="utf-8")):
        namespace: dict = {}
        exec(compile("from __future__ import annotations\n" + block, str(REFERENCE), "exec"), namespace)
        for node in ast.parse(block).body:
            if isinstance(node, ast.FunctionDef):
                found.setdefault(node.name, []).append(inspect.signature(namespace[node.name]))
    return found


def test_the_reference_is_what_the_generator_writes_from_the_hookspecs():
    assert REFERENCE.read_text(encoding="utf-8") == hooks_doc().render(), (
        "docs/hooks.md differs from ganlab/hookspecs.py: run python tools/hooks_doc.py")


@pytest.mark.parametrize("name", spec_names())
def test_each_hook_is_documented_with_its_docstring(name):
    module = hooks_doc()
    doc = getattr(hookspecs, name).__doc__
    assert doc and module._markdown(doc) in REFERENCE.read_text(encoding="utf-8"), (
        f"docs/hooks.md does not carry the docstring of {name}: run python tools/hooks_doc.py")


def test_the_reference_parses_and_is_not_empty():
    assert len(documented_signatures()) >= 10


@pytest.mark.parametrize("name", spec_names())
def test_hookspec_is_documented_with_its_exact_signature(name):
    documented = documented_signatures()
    assert name in documented, f"hook '{name}' is missing from the hook reference docs/hooks.md"
    expected = inspect.signature(getattr(hookspecs, name))
    for signature in documented[name]:
        assert str(signature) == str(expected), f"docs/hooks.md documents {name}{signature}; code has {name}{expected}"


def test_reference_documents_no_hook_that_does_not_exist():
    stale = sorted(set(documented_signatures()) - set(spec_names()))
    assert not stale, f"docs/hooks.md documents hooks that hookspecs.py lacks: {stale}"


def test_every_hookimpl_example_names_only_arguments_its_spec_has():
    checked = 0
    for block in guide_blocks():
        for node in ast.walk(ast.parse(block)):
            if not isinstance(node, ast.FunctionDef):
                continue
            if not any(isinstance(d, ast.Name) and d.id == "hookimpl" for d in node.decorator_list):
                continue
            assert node.name in spec_names(), f"docs example implements unknown hook '{node.name}'"
            args = [a.arg for a in node.args.args if a.arg != "self"]
            allowed = set(inspect.signature(getattr(hookspecs, node.name)).parameters)
            assert set(args) <= allowed, f"docs example {node.name}({', '.join(args)}) names arguments not in the spec"
            checked += 1
    assert checked >= 10


def test_option_is_documented_with_its_fields_and_defaults():
    text = DOC.read_text(encoding="utf-8")
    line = re.search(r"^Option\(type, default.*\)$", text, re.M)
    assert line, "the Option(...) signature line is missing from docs/plugins.md"
    call = ast.parse(line.group(0)).body[0].value
    documented = [a.id for a in call.args] + [k.arg for k in call.keywords]
    defaults = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    params = inspect.signature(Option).parameters
    assert documented == list(params)
    assert defaults == {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


# ---- the examples work -------------------------------------------------------------------
@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every ``# file:`` block written to a temporary directory, which becomes the cwd."""
    files = {}
    for block in guide_blocks():
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            name = first[len("# file: "):].strip()
            assert name not in files, f"two examples named {name}"
            files[name] = tmp_path / name
            files[name].write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return files


def import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_component_and_lifecycle_examples_train_together(examples, capsys):
    from ganlab.testing import run_steps

    files = [str(examples[n]) for n in ("scaled_sigmoid.py", "mixed_game.py", "tiny_mlp.py", "two_blobs.py",
                                        "mean_gap.py", "loss_print.py", "old_plugin.py")]
    loss_log = import_file(examples["loss_log.py"]).plugin
    recorded = run_steps(
        head={"name": "scaled-sigmoid", "scale": 0.5}, loss={"name": "mixed", "mix": 0.25},
        arch={"name": "tiny-mlp", "hidden": 16}, dataset={"name": "two-blobs", "samples": 64},
        steps=3, plugins=[*files, loss_log], builtins=False, metrics="mean-gap", log_every=2,
    )
    assert recorded["step"] == [1.0, 2.0, 3.0]
    assert recorded["mean-gap.l2"][0] >= 0
    rows = Path("losses.csv").read_text().splitlines()
    assert rows[0] == "step,loss.d,loss.g" and [r.split(",")[0] for r in rows[1:]] == ["2", "3"]
    out = capsys.readouterr().out
    assert "step 2: D" in out and "first step done" in out and "finished 3 steps" in out
    assert "losses.csv written; run finished" in out


def test_metric_picture_example_is_drawn_by_its_function(examples, capsys):
    from ganlab import hookimpl
    from ganlab.record.pictures import render
    from ganlab.testing import run_steps

    class Kept:
        pictures = None

        @hookimpl
        def on_evaluate(self, pictures):
            Kept.pictures = pictures

    run_steps(dataset="tiny-vectors", steps=1, plugins=[str(examples["mean_gap.py"]), Kept()], metrics="mean-gap")
    picture = Kept.pictures["mean-gap"]
    assert picture.draw.endswith("mean_gap:draw_gap") and picture.origin.endswith("mean_gap.py")
    assert render(picture).size == (500, 500)
    assert "failed" not in capsys.readouterr().err


@pytest.mark.parametrize("head", ["sigmoid", "entmax"])
def test_conditional_architecture_example_trains_on_labelled_data(examples, head):
    from ganlab.testing import run_steps

    recorded = run_steps(head=head, arch="tiny-cgan", dataset={"name": "tiny-images", "classes": 3}, steps=3,
                         plugins=[str(examples["tiny_cgan.py"])], metrics="images")
    assert len(recorded["loss.d"]) == 3 and 0.0 <= recorded["images.cond_accuracy"][-1] <= 1.0


def test_latent_example_feeds_g_unit_vectors(examples):
    import torch

    from ganlab.testing import make_plugin_manager, run_steps

    sphere = make_plugin_manager(str(examples["sphere_latent.py"]), builtins=False).registry.get(
        "latent", "sphere").create({})
    z = sphere.sample(5, 4, "cpu", torch.Generator().manual_seed(0))
    assert torch.allclose(z.norm(dim=1), torch.ones(5))
    recorded = run_steps(latent="sphere", dataset="tiny-vectors", steps=3, plugins=[str(examples["sphere_latent.py"])],
                         metrics="none")
    assert recorded["step"] == [1.0, 2.0, 3.0]


def test_plugin_file_example_from_the_command_line(examples, cli_inproc, capsys):
    assert cli_inproc(["components", "head", "--plugin", "scaled_sigmoid.py", "--json"]) == 0
    listed = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert listed["scaled-sigmoid"]["plugin"] == "scaled_sigmoid"
    assert listed["scaled-sigmoid"]["options"]["scale"]["default"] == 1.0


def test_command_example(examples, cli_inproc, capsys, monkeypatch):
    monkeypatch.setenv("GANLAB_PLUGINS", str(examples["hello_command.py"]))
    assert cli_inproc(["hello", "--name", "lab"]) == 0
    assert capsys.readouterr().out.strip() == "hello, lab"


def test_testing_example_passes(examples):
    sys.modules.pop("scaled_sigmoid", None)  # the example test imports the module by name
    test_module = import_file(examples["test_scaled_sigmoid.py"])
    tests = [getattr(test_module, n) for n in dir(test_module) if n.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_step_object_regulariser_and_augmentation_examples_train_together(examples):
    """The examples of the training step's surface in one run (objective, regulariser, augmentation,
    optimiser), with the built-in head, mlp and data."""
    from ganlab.testing import run_steps

    files = [str(examples[n]) for n in ("drift_game.py", "lipschitz_penalty.py", "jitter.py", "sign_sgd.py")]
    recorded = run_steps(loss={"name": "drift-game", "epsilon": 0.01}, dataset="tiny-vectors", steps=3,
                         plugins=files, reg="one-sided,gp", augment="jitter", optimizer_d="signsgd")
    assert recorded["step"] == [1.0, 2.0, 3.0]
    for key in ("loss.d.adv", "loss.d.drift", "loss.d.one-sided", "loss.d.gp"):
        assert len(recorded[key]) == 3, key
    assert all(v > 0 for v in recorded["loss.d.drift"])
    for total, *terms in zip(recorded["loss.d"], recorded["loss.d.adv"], recorded["loss.d.drift"],
                             recorded["loss.d.one-sided"], recorded["loss.d.gp"]):
        assert total == pytest.approx(sum(terms), rel=1e-5)


def test_plugin_options_example_is_silent_until_enabled(examples, capsys):
    from ganlab.testing import run_steps

    run_steps(dataset="tiny-vectors", steps=4, plugins=[str(examples["every_nth.py"])])
    assert "every_nth:" not in capsys.readouterr().out
    run_steps(dataset="tiny-vectors", steps=4, plugins=[str(examples["every_nth.py"])],
              sets=["plugins.every_nth.enabled=true", "plugins.every_nth.every=2"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("every_nth:")]
    assert [line.split(",")[0] for line in lines] == ["every_nth: step 2", "every_nth: step 4"]
