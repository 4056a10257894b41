"""``ganlab compare``: grouping, mean ± standard error, every output format, plots, errors.

The runs are written straight into a real SQLite store with MlflowClient, with
values chosen here, so every number the command prints can be checked.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from pathlib import Path

import pytest

# head -> final values per run of (modes.captured, diag.p_real_fake); None: metric not logged
FINISHED = {
    "sigmoid": [(8, 0.50), (6, 0.40), (7, 0.45)],
    "softmax": [(3, 0.20), (5, None), (4, 0.30)],
    "entmax": [(8, 0.10)],
}


def expected(values: list[float]) -> tuple[int, float, float | None]:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return len(values), statistics.fmean(values), se


def log_run(client, experiment_id: str, name: str, params: dict, final: dict, status: str = "FINISHED",
            tags: dict | None = None, steps: int = 3) -> str:
    """A run whose metrics have a short history ending at the given final values."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=name, tags=tags or {})
    now = int(time.time() * 1000)
    metrics = []
    for key, value in final.items():
        if value is None:
            continue
        # history: value + 2, value + 1, value  (the last step holds the final value)
        metrics += [Metric(key, float(value + (steps - 1 - s)), now + s, s * 10) for s in range(steps)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture
def store(workdir, mlflow_client):
    exp = mlflow_client.create_experiment("cmp")
    for head, runs in FINISHED.items():
        for seed, (modes, p_fake) in enumerate(runs):
            log_run(mlflow_client, exp, f"{head}-{seed}", {"head.name": head, "seed": seed, "dataset.name": "ring8"},
                    {"modes.captured": modes, "diag.p_real_fake": p_fake})
    log_run(mlflow_client, exp, "sigmoid-crashed", {"head.name": "sigmoid", "seed": 9, "dataset.name": "ring8"},
            {"modes.captured": 0, "diag.p_real_fake": 0.9}, status="FAILED")
    return mlflow_client


def compare(cli_inproc, capsys, *args: str) -> tuple[int, str, str]:
    code = cli_inproc(["compare", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_csv_holds_mean_and_standard_error_per_group(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "--experiment", "cmp", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {tuple(r) for r in [r.keys() for r in rows]} == {("head.name", "runs", "metric", "n", "mean", "stderr")}
    got = {(r["head.name"], r["metric"]): r for r in rows}
    assert {h for h, _ in got} == set(FINISHED)  # the FAILED run is not a group and not in any mean
    for head, runs in FINISHED.items():
        for column, metric in enumerate(("modes.captured", "diag.p_real_fake")):
            values = [run[column] for run in runs if run[column] is not None]
            n, mean, se = expected(values)
            row = got[(head, metric)]
            assert int(row["runs"]) == len(runs) and int(row["n"]) == n
            assert float(row["mean"]) == pytest.approx(mean, rel=1e-12)
            if se is None:
                assert row["stderr"] == ""
            else:
                assert float(row["stderr"]) == pytest.approx(se, rel=1e-12)


def test_json_groups_runs_and_reports_left_out(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-f", "json", "-m", "modes.*")
    assert code == 0, err
    data = json.loads(out)
    assert data["group_by"] == ["head.name"] and data["metrics"] == ["modes.captured"]
    assert data["left_out"] == {"FAILED": 1}
    groups = {g["group"]["head.name"]: g for g in data["groups"]}
    assert [g["group"]["head.name"] for g in data["groups"]] == sorted(FINISHED)
    sig = groups["sigmoid"]
    n, mean, se = expected([8, 6, 7])
    assert sig["runs"] == 3 and len(sig["run_ids"]) == 3
    assert sig["metrics"]["modes.captured"] == {"n": n, "mean": pytest.approx(mean), "stderr": pytest.approx(se)}
    assert groups["entmax"]["metrics"]["modes.captured"]["stderr"] is None


def test_all_runs_includes_unfinished_runs(store, cli_inproc, capsys):
    code, out, _ = compare(cli_inproc, capsys, "-e", "cmp", "-f", "json", "-m", "modes.captured", "--all-runs")
    assert code == 0
    sig = next(g for g in json.loads(out)["groups"] if g["group"]["head.name"] == "sigmoid")
    n, mean, se = expected([8, 6, 7, 0])
    assert sig["metrics"]["modes.captured"] == {"n": n, "mean": pytest.approx(mean), "stderr": pytest.approx(se)}


def test_markdown_and_table_show_mean_plus_minus_stderr(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-f", "markdown",
                             "-m", "modes.captured,diag.p_real_fake")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "| head.name | n | modes.captured | diag.p_real_fake |"
    assert lines[1] == "| --- | ---: | ---: | ---: |"
    _, mean, se = expected([8, 6, 7])
    _, pmean, pse = expected([0.5, 0.4, 0.45])
    assert f"| sigmoid | 3 | {mean:.4g} ± {se:.2g} | {pmean:.4g} ± {pse:.2g} |" in lines
    _, smean, sse = expected([0.2, 0.3])
    assert any(line.startswith("| softmax | 3 |") and f"{smean:.4g} ± {sse:.2g} (n=2)" in line for line in lines)
    assert "| entmax | 1 | 8 | 0.1 |" in lines
    assert "left out: 1 FAILED" in out

    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured,diag.p_real_fake")
    assert code == 0, err
    assert f"{mean:.4g} ± {se:.2g}" in out and "sigmoid" in out and "left out: 1 FAILED" in out
    # more metrics than groups: the metrics go down the rows
    code, out, _ = compare(cli_inproc, capsys, "-e", "cmp", "-f", "markdown", "-m", "*", "--rows", "metrics")
    assert out.splitlines()[0] == "| metric | entmax (n=1) | sigmoid (n=3) | softmax (n=3) |"


def test_default_grouping_separates_datasets(store, cli_inproc, capsys):
    exp = store.get_experiment_by_name("cmp").experiment_id
    log_run(store, exp, "grid", {"head.name": "sigmoid", "seed": 0, "dataset.name": "grid25"}, {"modes.captured": 20})
    code, out, _ = compare(cli_inproc, capsys, "-e", "cmp", "-f", "json", "-m", "modes.captured")
    assert code == 0
    data = json.loads(out)
    assert data["group_by"] == ["head.name", "dataset.name"]
    assert {(g["group"]["head.name"], g["group"]["dataset.name"]): g["runs"] for g in data["groups"]} == {
        ("entmax", "ring8"): 1, ("sigmoid", "grid25"): 1, ("sigmoid", "ring8"): 3, ("softmax", "ring8"): 3}


def test_sweep_selects_its_children_and_groups_by_its_axes(workdir, mlflow_client, cli_inproc, capsys):
    exp = mlflow_client.create_experiment("sw")
    grid = {"dataset.name": ["ring8", "grid25"], "head.name": ["sigmoid", "entmax"], "seed": [0, 1]}
    parent = mlflow_client.create_run(exp, run_name="study", tags={
        "ganlab.sweep.role": "parent", "ganlab.sweep.grid": json.dumps(grid)}).info.run_id
    values = {}
    for d in grid["dataset.name"]:
        for h in grid["head.name"]:
            for s in grid["seed"]:
                value = len(d) * 10 + len(h) + s
                values.setdefault((d, h), []).append(value)
                log_run(mlflow_client, exp, f"{d}-{h}-{s}", {"dataset.name": d, "head.name": h, "seed": s},
                        {"modes.captured": value}, tags={"mlflow.parentRunId": parent})
    log_run(mlflow_client, exp, "stray", {"dataset.name": "ring8", "head.name": "sigmoid", "seed": 5},
            {"modes.captured": 1000})  # same experiment, not in the sweep
    mlflow_client.set_terminated(parent, "FINISHED")

    for which in (parent, "last"):
        code, out, err = compare(cli_inproc, capsys, "--sweep", which, "-f", "json")
        assert code == 0, err
        data = json.loads(out)
        assert data["group_by"] == ["dataset.name", "head.name"]
        assert data["source"] == f"sweep 'study' ({parent})"
        got = {(g["group"]["dataset.name"], g["group"]["head.name"]): g["metrics"]["modes.captured"]
               for g in data["groups"]}
        assert set(got) == set(values)
        for key, vals in values.items():
            assert got[key]["n"] == 2 and got[key]["mean"] == pytest.approx(statistics.fmean(vals))


def test_plot_writes_curves(store, workdir, cli_inproc, capsys):
    from PIL import Image

    target = workdir / "curves.png"
    code, _, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured", "--plot", str(target),
                           "--plot-metric", "diag.p_real_fake")
    assert code == 0, err
    assert "3 group curve(s)" in err
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size[0] >= 400
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20  # lines and bands, not an empty canvas
    # two metrics: two panels side by side, each with the three groups
    code, _, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured", "--plot", str(target),
                           "--plot-metric", "diag.p_real_fake,modes.captured")
    assert code == 0 and "6 group curve(s)" in err, err
    with Image.open(target) as image:
        assert image.size[0] >= 2 * 700


@pytest.mark.parametrize(("args", "expected"), [
    (["-e", "cpm"], ("unknown experiment 'cpm'; did you mean 'cmp'? "
                     "(experiments in sqlite:///mlruns/mlflow.db: Default, cmp)")),
    (["-e", "cmp", "-m", "modes.capture"], "no run logged a metric 'modes.capture'; did you mean 'modes.captured'?"),
    (["-e", "cmp", "-g", "head"], "--group-by 'head' is not a param of any run"),
    (["-e", "cmp", "-f", "xml"], "--format must be one of table, csv, json, markdown"),
    (["-e", "cmp", "--plot", "x.jpg"], "use a .png, .svg or .pdf"),
    (["-e", "cmp", "--sweep", "last"], "not both"),
    (["--sweep", "last"], "no sweep in the tracking store"),
    (["--sweep", "0123456789abcdef"], "no run '0123456789abcdef'"),
    ([], "choose runs with --experiment NAME or --sweep RUN_ID|last (experiments in"),
])
def test_errors_are_one_clear_line(store, cli_inproc, capsys, args, expected):
    code, out, err = compare(cli_inproc, capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_no_store_is_not_created(tmp_path, monkeypatch, cli_inproc, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = compare(cli_inproc, capsys, "-e", "heads")
    assert code == 2 and "no MLflow store at mlruns/mlflow.db" in err
    assert not Path(tmp_path / "mlruns").exists()


def test_plotted_curve_is_the_mean_over_the_group_at_each_step(store):
    from ganlab.compare.stats import group_runs, history

    exp = store.get_experiment_by_name("cmp").experiment_id
    runs = [r for r in store.search_runs([exp]) if r.info.status == "FINISHED"]
    groups = {g.values: g for g in group_runs(runs, ["head.name"])}
    steps, means, errors = history(store, groups[("sigmoid",)], "modes.captured")
    assert steps == [0, 10, 20]
    for offset, mean, error in zip((2, 1, 0), means, errors):
        _, m, se = expected([8 + offset, 6 + offset, 7 + offset])
        assert mean == pytest.approx(m) and error == pytest.approx(se)


def test_sweep_of_populations_compares_the_replicas_as_seed_runs(workdir, mlflow_client, cli_inproc, capsys):
    """A sweep variant trained as a population is a parent run of its own: its replicas (the
    children of a child) are what gets averaged, each group holding all of a variant's seeds."""
    exp = mlflow_client.create_experiment("pop")
    grid = {"head.name": ["sigmoid", "entmax"], "seeds": ["0-1"]}
    sweep = mlflow_client.create_run(exp, run_name="study", tags={
        "ganlab.sweep.role": "parent", "ganlab.sweep.grid": json.dumps(grid)}).info.run_id
    values = {"sigmoid": [1.0, 3.0], "entmax": [5.0, 9.0]}
    for head, finals in values.items():
        population = log_run(mlflow_client, exp, f"{head}-population", {"head.name": head, "seeds": "0-1"},
                             {"modes.captured": 100.0}, tags={"mlflow.parentRunId": sweep})
        for seed, value in enumerate(finals):
            log_run(mlflow_client, exp, f"{head}-{seed}",
                    {"head.name": head, "seed": seed, "seeds": "0-1", "parent_run_id": population},
                    {"modes.captured": value}, tags={"mlflow.parentRunId": population})
    # the same variant trained as one plain run: a replicate like any other
    log_run(mlflow_client, exp, "sigmoid-2", {"head.name": "sigmoid", "seed": 2, "seeds": "", "parent_run_id": ""},
            {"modes.captured": 2.0})
    mlflow_client.set_terminated(sweep, "FINISHED")

    code, out, err = compare(cli_inproc, capsys, "--sweep", sweep, "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["group_by"] == ["head.name"]
    got = {g["group"]["head.name"]: g["metrics"]["modes.captured"] for g in data["groups"]}
    assert got == {h: {"n": 2, "mean": pytest.approx(statistics.fmean(v)), "stderr": pytest.approx(1.0 if h == "sigmoid" else 2.0)}
                   for h, v in values.items()}
    code, out, err = compare(cli_inproc, capsys, "-e", "pop", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["group_by"] == ["head.name"]
    got = {g["group"]["head.name"]: g["metrics"]["modes.captured"] for g in data["groups"]}
    assert got["sigmoid"]["n"] == 3 and got["sigmoid"]["mean"] == pytest.approx(2.0)
    assert got["entmax"]["n"] == 2 and got["entmax"]["mean"] == pytest.approx(7.0)


def test_a_run_recorded_before_a_setting_existed_groups_with_its_default(workdir, mlflow_client, cli_inproc, capsys):
    """Runs lacking a param that a later ganlab added (a setting, or a component option) trained with its
    default: they group with new runs that record the default, and apart from runs that changed it."""
    exp = mlflow_client.create_experiment("versions")
    base = {"head.name": "sigmoid", "arch.name": "mlp", "dataset.name": "ring8"}
    log_run(mlflow_client, exp, "old", {**base, "seed": 0}, {"modes.captured": 6.0})
    log_run(mlflow_client, exp, "new", {**base, "seed": 1, "ema": "0.0", "lr_schedule": "constant",
                                        "arch.g_batchnorm": "False", "latent.name": "gaussian"},
            {"modes.captured": 8.0})
    log_run(mlflow_client, exp, "averaged", {**base, "seed": 2, "ema": "0.999", "arch.g_batchnorm": "False",
                                             "latent.name": "gaussian"}, {"modes.captured": 5.0})
    code, out, err = compare(cli_inproc, capsys, "-e", "versions", "-f", "json")
    assert code == 0, err
    groups = {g["group"]["ema"]: g for g in json.loads(out)["groups"]}
    assert groups["0.0"]["runs"] == 2 and groups["0.0"]["metrics"]["modes.captured"]["mean"] == 7.0
    assert groups["0.999"]["runs"] == 1
    # a component kind added later (latent) reads as its default component for the older run
    log_run(mlflow_client, exp, "coded", {**base, "seed": 3, "ema": "0.0", "latent.name": "infogan"},
            {"modes.captured": 1.0})
    code, out, err = compare(cli_inproc, capsys, "-e", "versions", "-f", "json")
    assert code == 0, err
    by_latent = {(g["group"].get("latent.name"), g["group"].get("ema")): g["runs"] for g in json.loads(out)["groups"]}
    assert by_latent[("gaussian", "0.0")] == 2 and by_latent[("infogan", "0.0")] == 1


def test_at_step_compares_the_values_logged_at_that_step(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured", "-f", "json", "--at-step", "10")
    assert code == 0, err
    got = {g["group"]["head.name"]: g["metrics"]["modes.captured"] for g in json.loads(out)["groups"]}
    for head, runs in FINISHED.items():  # each run's history is final + 2, final + 1, final at steps 0, 10, 20
        assert got[head]["mean"] == pytest.approx(statistics.fmean(modes + 1 for modes, _ in runs))
    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured", "--at-step", "15")
    assert code == 2 and "--at-step 15: the runs logged modes.captured at steps 0, 10, 20" in err
    code, out, err = compare(cli_inproc, capsys, "-e", "cmp", "-m", "modes.captured", "--at-step", "0", "--test",
                             "-f", "markdown")
    assert code == 0 and "values at step 0" in out


def test_at_step_takes_the_step_from_any_run_when_the_runs_stopped_at_different_steps(workdir, mlflow_client,
                                                                                         cli_inproc, capsys):
    # interrupted populations end at different steps; the oldest and the newest run stopped earliest
    exp = mlflow_client.create_experiment("stopped")
    for seed, (head, steps) in enumerate((("entmax", 2), ("sigmoid", 3), ("entmax", 2))):
        log_run(mlflow_client, exp, f"{head}-{seed}", {"head.name": head, "seed": seed},
                {"images.fld": 1.5 if steps == 3 else 2.5}, status="FINISHED" if steps == 3 else "KILLED", steps=steps)
    code, out, err = compare(cli_inproc, capsys, "-e", "stopped", "-m", "images.fld", "--all-runs", "--at-step", "20",
                             "-f", "json")
    assert code == 0, err
    got = {g["group"]["head.name"]: g["metrics"].get("images.fld") for g in json.loads(out)["groups"]}
    assert got["sigmoid"]["mean"] == pytest.approx(1.5) and not got["entmax"]
    code, out, err = compare(cli_inproc, capsys, "-e", "stopped", "-m", "images.fld", "--all-runs", "--at-step", "30")
    assert code == 2 and "--at-step 30: the runs logged images.fld at steps 0, 10, 20" in err
