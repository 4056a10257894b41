"""Benchmark 4: start-up time of the light commands against the bare interpreter.

``ganlab --help``, ``ganlab components`` and ``ganlab plugins`` must not import
torch or mlflow (tests/test_startup_imports.py checks that); this measures what
they cost in wall time. Each command runs ``--repeat`` times, all commands
interleaved, and the median is compared with ``python -c pass``.
Targets: --help < 0.5 s and components < 1 s above the interpreter.
``import torch`` is timed too, for scale.

    python benchmarks/bench_startup.py [--repeat 15]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

TARGETS = {"ganlab --help": 0.5, "ganlab components": 1.0}


def main() -> None:
    args = benchlib.repeat_options(__doc__ or "", repeat=15, quick=3)
    benchlib.warn_if_busy()
    info = benchlib.machine(torch_too=False)

    # the console script is what people type; fall back to -m where it is not installed
    script = shutil.which("ganlab")
    ganlab = [script] if script else benchlib.ganlab_cmd()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ganlab --help": [*ganlab, "--help"],
        "ganlab components": [*ganlab, "components"],
        "ganlab plugins": [*ganlab, "plugins"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        env = benchlib.clean_env(Path(tmp) / "cache")
        env["COLUMNS"] = "120"
        for name, cmd in commands.items():  # warm the page cache once
            benchlib.check(benchlib.run_timed(cmd, cwd=Path(tmp), env=env), name)
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                times[name].append(benchlib.check(benchlib.run_timed(cmd, cwd=Path(tmp), env=env), name).wall)

    info["load_1min_end"] = benchlib.load_average()
    base = benchlib.median(times["python -c pass"])
    rows = []
    for name, values in times.items():
        above = benchlib.median(values) - base
        target = TARGETS.get(name)
        verdict = "-" if target is None else (f"< {target} s: " + ("meets" if above < target else "misses"))
        rows.append([name, f"{benchlib.median(values):.3f}", f"{min(values):.3f}",
                     "-" if name == "python -c pass" else f"{above:+.3f}", verdict])
    print(f"# Start-up: {'console script ' + script if script else 'python -m ganlab'}")
    print(benchlib.describe(info) + f"; load at end {info['load_1min_end']:.2f}")
    print(f"{args.repeat} interleaved runs each\n")
    print(benchlib.table(["command", "median s", "min s", "above interpreter s", "target"], rows))
    benchlib.save_json(args.json, {"benchmark": "startup", "machine": info, "times": times})


if __name__ == "__main__":
    main()
