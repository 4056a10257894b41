"""Benchmark 9: CPU seconds a process costs before it does its work (what the test suite pays per process).

On a 2-core machine the suite is bound by CPU, and most of it is process start-up
(docs/development.md). Two figures, each against a baseline measured in the same run:

- ``ganlab ui``'s server: the CPU of its whole process tree once it answers and has settled, started
  as ganlab starts it (without MLflow's job runner) against MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true
  (MLflow's default: a job runner and a Huey consumer per job kind, each a Python process importing MLflow);
- loading the built-in objectives (which every command that builds a run imports) against
  ``import torch``: what the plugin adds to torch's own import (no torch._dynamo: about 1.3 s more).

CPU time, not wall time: it is what a busy machine runs out of, and it is what another process
running beside the benchmark disturbs least.

    python benchmarks/bench_process_cpu.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

#: seconds the server is left after it answers: MLflow's job runner waits 10 s for its consumers
SETTLE_S = 12.0


def tree_cpu(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) of ``pid`` and every process below it now, and their number."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while read
            continue
        table[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, count, frontier = table.get(pid, (0, 0.0))[1], 1, [pid]
    while frontier:
        children = [child for child, (parent, _) in table.items() if parent in frontier]
        total += sum(table[child][1] for child in children)
        count += len(children)
        frontier = children
    return total, count


def ui_cpu(jobs: str, workdir: Path, env: dict[str, str]) -> tuple[float, int]:
    """``ganlab ui`` on ``workdir``'s store with MLflow's job runner on ("true") or as ganlab starts it ("")."""
    port = free_port()
    run_env = dict(env)
    if jobs:
        run_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = jobs
    proc = subprocess.Popen([*benchlib.ganlab_cmd(), "ui", "--port", str(port)], cwd=workdir, env=run_env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("MLflow UI:"):
            raise SystemExit(f"ganlab ui printed no URL (exit code {proc.poll()})")
        time.sleep(SETTLE_S)
        return tree_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def import_cpu(code: str, env: dict[str, str]) -> float:
    started = os.times()
    benchlib.check(benchlib.run_timed([sys.executable, "-c", code], env=env), code)
    ended = os.times()
    return (ended.children_user - started.children_user) + (ended.children_system - started.children_system)


def main() -> None:
    args = benchlib.repeat_options(__doc__ or "", repeat=3, quick=1)
    info = benchlib.machine(torch_too=False)
    rows, payload = [], {"machine": info}
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        env = benchlib.clean_env(Path(tmp) / "cache")
        workdir = Path(tmp) / "project"
        workdir.mkdir()
        benchlib.check(benchlib.run_timed([*benchlib.ganlab_cmd(), "run", "--steps", "2", "--batch-size", "8",
                                           "--eval-every", "0", "--sample-every", "0", "--set", "metrics=none"],
                                          cwd=workdir, env=env), "a first run (makes the store)")
        servers: dict[str, list[tuple[float, int]]] = {"true": [], "": []}
        imports: dict[str, list[float]] = {"torch": [], "objectives": []}
        for _ in range(args.repeat):  # interleaved, so that a change in load falls on both sides
            for jobs in servers:
                servers[jobs].append(ui_cpu(jobs, workdir, env))
            imports["torch"].append(import_cpu("import torch", env))
            imports["objectives"].append(import_cpu("import ganlab_plugins.objectives.games", env))
    mlflow_default = benchlib.median([cpu for cpu, _ in servers["true"]])
    ganlab_default = benchlib.median([cpu for cpu, _ in servers[""]])
    rows.append(["ganlab ui's server tree, MLflow's job runner on", f"{mlflow_default:.1f}",
                 servers["true"][0][1], "1.00"])
    rows.append(["ganlab ui's server tree, as ganlab starts it", f"{ganlab_default:.1f}", servers[""][0][1],
                 f"{ganlab_default / mlflow_default:.2f}"])
    torch_cpu, objectives_cpu = benchlib.median(imports["torch"]), benchlib.median(imports["objectives"])
    rows.append(["python -c 'import torch'", f"{torch_cpu:.2f}", 1, "1.00"])
    rows.append(["python -c 'import ganlab_plugins.objectives.games'", f"{objectives_cpu:.2f}", 1,
                 f"{objectives_cpu / torch_cpu:.2f}"])
    print(benchlib.describe(info))
    print(benchlib.table(["what", "CPU s (median)", "processes", "ratio to the row's baseline"], rows))
    payload.update(ui_jobs_on=mlflow_default, ui_ganlab=ganlab_default, import_torch=torch_cpu,
                   import_objectives=objectives_cpu, repeat=args.repeat)
    benchlib.save_json(args.json, payload)


if __name__ == "__main__":
    main()
