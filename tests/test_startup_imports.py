"""The light commands stay light: they import neither torch nor mlflow (DESIGN.md, principle 2).

Each command runs in a fresh interpreter, through the same ``main()`` the
console script calls, with every built-in plugin discovered from its entry
point. A watcher on the import system records who first imports a heavy
module, so a failure names the culprit instead of just saying "torch".
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "mlflow")

WRAPPER = r"""
import json, sys, traceback

HEAVY = HEAVY_MODULES
culprits = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        root = name.partition(".")[0]
        if root in HEAVY and root not in culprits:
            frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            culprits[root] = " <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(frames[-4:]))
        return None

sys.meta_path.insert(0, Watch())
from ganlab.cli.app import main

try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
report = {"code": code, "loaded": [m for m in HEAVY if m in sys.modules], "culprits": culprits}
sys.stderr.write("\nSTARTUP-REPORT " + json.dumps(report) + "\n")
""".replace("HEAVY_MODULES", repr(HEAVY))


def run_light(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", WRAPPER, *args], check=False, capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.startswith("STARTUP-REPORT ")]
    assert lines, f"no report from `ganlab {' '.join(args)}`:\n{result.stderr[-2000:]}"
    report = json.loads(lines[-1].split(" ", 1)[1])
    report["stdout"] = result.stdout
    return report


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--help"],
    ["plugins"],
    ["plugins", "--json"],
    ["components"],
    ["components", "head", "--json"],
    ["run", "--help"],
], ids=lambda args: " ".join(args))
def test_light_command_imports_neither_torch_nor_mlflow(args: list[str]) -> None:
    report = run_light(args)
    assert report["code"] in (0, None), report
    assert report["stdout"].strip(), "the command printed nothing"
    loaded = report["loaded"]
    where = "; ".join(f"{m} first imported at {report['culprits'].get(m, '?')}" for m in loaded)
    assert loaded == [], f"`ganlab {' '.join(args)}` imported {', '.join(loaded)}: {where}"


@pytest.mark.slow
def test_the_watcher_sees_a_heavy_import() -> None:
    # The check above is only as good as its watcher: an interpreter that does import
    # torch must be reported as such, with where it happened.
    probe = subprocess.run(
        [sys.executable, "-c", WRAPPER.replace("from ganlab.cli.app import main", "import torch\nfrom ganlab.cli.app import main"),
         "--help"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    line = [x for x in probe.stderr.splitlines() if x.startswith("STARTUP-REPORT ")][-1]
    report = json.loads(line.split(" ", 1)[1])
    assert report["loaded"] == ["torch"] and "torch" in report["culprits"]


@pytest.mark.slow
def test_importing_every_module_leaves_torchs_compiler_front_end_unloaded() -> None:
    # torch._dynamo costs every process that imports it about 1.5 s of CPU; a training run loads it
    # anyway (torch's optimisers do when built), but a refusal, a listing or a sweep's parent must
    # not, so no module of ganlab or its built-in plugins may import it (or decorate with
    # torch.compiler.disable) at import time: only compile=true needs it.
    probe = subprocess.run([sys.executable, "-c", r"""
import importlib, pkgutil, sys
import ganlab, ganlab_plugins
for package in (ganlab, ganlab_plugins):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if module.name.endswith("__main__"):  # would run the CLI
            continue
        importlib.import_module(module.name)
print(len(sys.modules), "torch" in sys.modules, "torch._dynamo" in sys.modules)
"""], check=False, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    modules, torch_loaded, dynamo_loaded = probe.stdout.split()
    assert torch_loaded == "True" and int(modules) > 500  # the modules that need torch were imported
    assert dynamo_loaded == "False"
