"""Speed metrics read from the recorded learning curves (ganlab.compare.speed): steps and wall time to a
threshold, whether it was reached, and the area under the curve, tested by ``compare --test`` like any
other metric. The histories are written here into a real SQLite store, so every value is known.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from ganlab.compare import speed
from ganlab.compare.significance import permutation_p
from ganlab.errors import GanlabError

AVAILABLE = ["modes.captured", "modes.hq_percent", "images.fld"]


def points(curve: list[tuple[int, float]], start: int = 1_000_000, per_step_ms: int = 10) -> list[SimpleNamespace]:
    return [SimpleNamespace(step=s, value=v, timestamp=start + s * per_step_ms) for s, v in curve]


def test_steps_to_is_the_first_step_that_meets_the_threshold() -> None:
    curve = points([(0, 1.0), (500, 4.0), (1000, 6.0), (1500, 5.0), (2000, 7.0)])
    spec = speed.parse("steps_to:modes.captured>=6", AVAILABLE)[0]
    assert speed.evaluate(spec, curve, None) == (1000.0, False)
    assert speed.evaluate(speed.parse("steps_to:modes.captured>6", AVAILABLE)[0], curve, None) == (2000.0, False)
    # a distance falls: the first step at or below the threshold
    fd = points([(0, 90.0), (500, 50.0), (1000, 38.0), (1500, 41.0)])
    assert speed.evaluate(speed.parse("steps_to:images.fld<=40", AVAILABLE)[0], fd, None) == (1000.0, False)
    assert speed.evaluate(speed.parse("steps_to:images.fld<38", AVAILABLE)[0], fd, None) == (1500.0, True)


def test_a_run_that_never_gets_there_is_censored_at_its_last_logged_step() -> None:
    curve = points([(0, 1.0), (500, 4.0), (1000, 5.0)])
    spec = speed.parse("steps_to:modes.captured>=6", AVAILABLE)[0]
    assert speed.evaluate(spec, curve, None) == (1000.0, True)
    assert speed.evaluate(speed.parse("reached:modes.captured>=6", AVAILABLE)[0], curve, None) == (0.0, False)
    assert speed.evaluate(speed.parse("reached:modes.captured>=5", AVAILABLE)[0], curve, None) == (1.0, False)
    # non-finite values are not evaluations; a run without any finite value has no value at all
    assert speed.evaluate(spec, points([(0, float("nan"))]), None) is None


def test_time_to_counts_from_the_runs_start() -> None:
    curve = points([(0, 1.0), (500, 6.0), (1000, 7.0)], start=2_000_000, per_step_ms=4)
    spec = speed.parse("time_to:modes.captured>=6", AVAILABLE)[0]
    assert speed.evaluate(spec, curve, start_ms=1_999_000) == (pytest.approx((2_000_000 + 2000 - 1_999_000) / 1000), False)
    censored = speed.parse("time_to:modes.captured>=8", AVAILABLE)[0]
    assert speed.evaluate(censored, curve, start_ms=2_000_000) == (pytest.approx(4.0), True)


def test_auc_is_the_trapezoid_area_over_the_steps_spanned() -> None:
    spec = speed.parse("auc:modes.captured", AVAILABLE)[0]
    # (0,0)-(1000,4)-(2000,8): the area is 8000 over 2000 steps, a mean height of 4
    assert speed.evaluate(spec, points([(0, 0.0), (1000, 4.0), (2000, 8.0)]), None) == (4.0, False)
    # unequal spacing: 100*(2+4)/2 + 900*(4+4)/2 = 300 + 3600 over 1000 steps
    assert speed.evaluate(spec, points([(0, 2.0), (100, 4.0), (1000, 4.0)]), None)[0] == pytest.approx(3.9)
    assert speed.evaluate(spec, points([(300, 5.0)]), None) == (5.0, False)


def test_patterns_expand_and_names_read_back() -> None:
    specs = speed.parse("auc:modes.*", AVAILABLE)
    assert [s.name for s in specs] == ["auc:modes.captured", "auc:modes.hq_percent"]
    spec = speed.parse("steps_to: modes.captured >= 6.0", AVAILABLE)[0]
    assert spec.name == "steps_to:modes.captured>=6" and speed.base_metric(spec.name) == "modes.captured"
    assert speed.is_derived("auc:x") and not speed.is_derived("modes.captured") and not speed.is_derived("a:b")


@pytest.mark.parametrize(("text", "message"), [
    ("steps_to:modes.captured=6", "not a speed metric; write steps_to:METRIC>=X"),
    ("steps_to:modes.captured>=six", "the threshold must be a number, not 'six'"),
    ("steps_to:modes.captured>=inf", "must be a finite number"),
    ("time_to:modes.captured", "not a speed metric"),
    ("auc:modes.captured>=3", "auc takes a metric and no threshold"),
    ("auc:", "auc takes a metric"),
    ("reached:modes.capturd>=6", "no run logged a metric 'modes.capturd'; did you mean 'modes.captured'?"),
])
def test_malformed_specs_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(GanlabError) as caught:
        speed.parse(text, AVAILABLE)
    assert message in str(caught.value)


# ---- through compare, on a real store -----------------------------------------------------------
#: per head, each run's curve of modes.captured at steps 0, 500, ..., 2000
CURVES = {
    "sparsemax": [[2, 6, 7, 8, 8], [1, 4, 6, 7, 8], [3, 6, 6, 7, 7], [2, 5, 6, 6, 8]],
    "sigmoid": [[1, 2, 4, 6, 7], [1, 3, 5, 5, 5], [0, 2, 3, 6, 6], [1, 2, 2, 4, 6]],
}
STEPS = [0, 500, 1000, 1500, 2000]


@pytest.fixture
def curves(workdir, mlflow_client):
    from mlflow.entities import Metric, Param

    exp = mlflow_client.create_experiment("speed")
    now = int(time.time() * 1000)
    for head, runs in CURVES.items():
        for seed, curve in enumerate(runs):
            run = mlflow_client.create_run(exp, run_name=f"{head}-{seed}")
            metrics = [Metric("modes.captured", float(v), now + s, s) for s, v in zip(STEPS, curve)]
            mlflow_client.log_batch(run.info.run_id, metrics=metrics,
                                    params=[Param("head.name", head), Param("seed", str(seed))])
            mlflow_client.set_terminated(run.info.run_id, status="FINISHED")
    return mlflow_client


def first_step(curve: list[int], k: int, until: int = 2000) -> int:
    kept = [(s, v) for s, v in zip(STEPS, curve) if s <= until]
    return next((s for s, v in kept if v >= k), kept[-1][0])


def compare_json(cli_inproc, capsys, *args: str) -> tuple[dict, str]:
    code = cli_inproc(["compare", "-e", "speed", "--format", "json", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out), out.err


def test_speed_metrics_are_compared_and_tested_like_any_other(curves, cli_inproc, capsys) -> None:
    name = "steps_to:modes.captured>=6"
    report, err = compare_json(cli_inproc, capsys, "-m", f"modes.captured,{name},auc:modes.captured", "--test")
    assert report["metrics"] == ["modes.captured", name, "auc:modes.captured"]
    groups = {g["group"]["head.name"]: g["metrics"] for g in report["groups"]}
    expected = {head: [first_step(c, 6) for c in runs] for head, runs in CURVES.items()}
    for head in CURVES:
        assert groups[head][name]["mean"] == pytest.approx(sum(expected[head]) / 4)
    # one sigmoid run never reaches 6 modes: counted at step 2000 (as is the run that reaches it there), and named
    assert expected["sigmoid"] == [1500, 2000, 1500, 2000]
    assert report["censored"] == {name: {"sigmoid": [1, 4]}}
    assert "steps_to:modes.captured>=6: never reached by 1 of 4 sigmoid run(s)" in err
    # --test tests the speed metric on exactly these per-run values
    test = next(t for t in report["tests"] if t["metric"] == name)
    assert (test["first"], test["second"]) == ("sigmoid", "sparsemax")
    assert test["p"] == pytest.approx(permutation_p(expected["sigmoid"], expected["sparsemax"])[0])
    assert test["difference"] == pytest.approx((sum(expected["sigmoid"]) - sum(expected["sparsemax"])) / 4)
    auc = {head: [sum((b - a) * (u + v) / 2 for a, b, u, v in zip(STEPS, STEPS[1:], c, c[1:])) / 2000 for c in runs]
           for head, runs in CURVES.items()}
    assert groups["sparsemax"]["auc:modes.captured"]["mean"] == pytest.approx(sum(auc["sparsemax"]) / 4)


def test_at_step_censors_at_that_step(curves, cli_inproc, capsys) -> None:
    name = "steps_to:modes.captured>=6"
    report, _ = compare_json(cli_inproc, capsys, "-m", f"{name},reached:modes.captured>=6", "--at-step", "1000")
    groups = {g["group"]["head.name"]: g["metrics"] for g in report["groups"]}
    for head, runs in CURVES.items():
        assert groups[head][name]["mean"] == pytest.approx(sum(first_step(c, 6, 1000) for c in runs) / 4)
        reached = [any(v >= 6 for s, v in zip(STEPS, c) if s <= 1000) for c in runs]
        assert groups[head]["reached:modes.captured>=6"]["mean"] == pytest.approx(sum(reached) / 4)
    assert report["censored"] == {name: {"sigmoid": [4, 4]}}  # every sparsemax run has 6 modes by step 1000


def test_power_sizes_a_speed_metric(curves, cli_inproc, capsys) -> None:
    report, _ = compare_json(cli_inproc, capsys, "-m", "steps_to:modes.captured>=6", "--power")
    (row,) = report["power"]
    assert row["metric"] == "steps_to:modes.captured>=6" and row["n_first"] == row["n_second"] == 4


@pytest.mark.slow
def test_a_plot_of_a_speed_metric_draws_the_curve_it_reads(curves, workdir, cli_inproc, capsys) -> None:
    target = workdir / "c.png"
    code = cli_inproc(["compare", "-e", "speed", "-m", "steps_to:modes.captured>=6", "--plot", str(target)])
    err = capsys.readouterr().err
    assert code == 0 and target.exists() and "plot of modes.captured (2 group curve(s))" in err


@pytest.mark.parametrize(("metric", "message"), [
    ("steps_to:modes.captured=>6", "not a speed metric"),
    ("steps_to:modes.capturd>=6", "did you mean 'modes.captured'?"),
    ("auc:modes.captured<3", "auc takes a metric and no threshold"),
])
def test_bad_speed_metrics_are_one_line(curves, cli_inproc, capsys, metric: str, message: str) -> None:
    code = cli_inproc(["compare", "-e", "speed", "-m", metric])
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2 and out.out == "" and len(lines) == 1 and lines[0].startswith("ganlab: error: ")
    assert message in lines[0]
