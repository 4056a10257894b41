"""``ganlab compare --power``: the t distributions against scipy, the seeds needed against published
tables and closed forms, the power against a Monte Carlo of t-tests, and a store of simulated runs
whose true effect and spread are known, which the command must recover.
"""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np
import pytest

from ganlab.compare import power as pw
from ganlab.compare import tdist


# ---- the distributions, against scipy ----------------------------------------------------------
@pytest.mark.parametrize("df", [1, 2, 3, 8, 18, 38, 98, 500, 5000, 200_000])
def test_t_tail_and_quantile_match_scipy(df: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    for t in (-30.0, -2.5, -1.0, 0.0, 0.3, 1.0, 2.5, 5.0, 12.0):
        assert tdist.t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9, abs=1e-300)
    for p in (0.5, 0.9, 0.975, 0.99, 0.99583, 0.999, 0.99999):
        assert tdist.t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-12)
        assert tdist.t_quantile(1 - p, df) == pytest.approx(stats.t.ppf(1 - p, df), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("df", [2, 3, 8, 18, 38, 98, 500, 5000, 100_000])
def test_noncentral_t_tails_match_scipy(df: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    for ncp in (0.0, 0.5, 2.0, 6.0):
        # at c = 0 the tail is P(Z + ncp > 0) = Phi(ncp) (scipy's nct returns NaN there for some df)
        assert tdist.nct_sf(0.0, df, ncp) == pytest.approx(stats.norm.cdf(ncp), abs=1e-10)
        assert tdist.nct_two_sided_sf(0.0, df, ncp) == pytest.approx(1.0, abs=1e-10)
    for c in (0.5, 2.0, 3.5, 8.0):
        for ncp in (0.0, 0.5, 2.0, 3.0, 6.0, 15.0):
            assert tdist.nct_sf(c, df, ncp) == pytest.approx(stats.nct.sf(c, df, ncp), abs=1e-10)
            # P(T' < -c; ncp) = P(T' > c; -ncp) (scipy's nct.cdf returns NaN deep in the lower tail)
            both = stats.nct.sf(c, df, ncp) + stats.nct.sf(c, df, -ncp)
            assert tdist.nct_two_sided_sf(c, df, ncp) == pytest.approx(both, abs=1e-10)


def test_incomplete_beta_closed_forms() -> None:
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b; I_x(a, b) = 1 - I_{1-x}(b, a)
    for x in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert tdist.betainc(1, 1, x) == pytest.approx(x, abs=1e-15)
        assert tdist.betainc(3.5, 1, x) == pytest.approx(x ** 3.5, abs=1e-14)
        assert tdist.betainc(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-14)
        assert tdist.betainc(4, 0.5, x) == pytest.approx(1 - tdist.betainc(0.5, 4, 1 - x), abs=1e-14)


# ---- power and seeds -----------------------------------------------------------------------------
def test_power_is_the_noncentral_t_expression() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n1, n2, effect, sd, level in ((10, 10, 1.0, 1.2, 0.05), (7, 12, 3.0, 2.0, 0.05 / 6), (40, 40, 0.2, 1.0, 0.01)):
        df = n1 + n2 - 2
        crit = stats.t.ppf(1 - level / 2, df)
        ncp = effect / sd / math.sqrt(1 / n1 + 1 / n2)
        expected = stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, -ncp)
        assert pw.power(n1, n2, effect, sd, level) == pytest.approx(expected, abs=1e-9)
        assert pw.power(n1, n2, -effect, sd, level) == pytest.approx(expected, abs=1e-9)  # two-sided
    # no effect: the test rejects at its level
    assert pw.power(10, 10, 0.0, 1.0, 0.05) == pytest.approx(0.05, abs=1e-10)


@pytest.mark.parametrize(("d", "n"), [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_seeds_for_cohens_effect_sizes_match_the_published_table(d: float, n: int) -> None:
    # Cohen (1988), Table 2.4.1, two-tailed alpha 0.05, power 0.80 (the exact t values G*Power gives)
    assert pw.t_seeds(d, 1.0, 0.05) == n
    assert pw.t_seeds(10 * d, 10.0, 0.05) == n  # only the standardised effect matters


@pytest.mark.parametrize(("effect", "sd", "level"), [(1.0, 1.0, 0.05), (0.5, 1.0, 0.05 / 6), (2.9, 1.7, 0.05 / 3),
                                                     (0.05, 1.0, 0.05)])
def test_seeds_are_the_fewest_with_80_percent_power(effect: float, sd: float, level: float) -> None:
    stats = pytest.importorskip("scipy.stats")

    def scipy_power(n: int) -> float:
        crit = stats.t.ppf(1 - level / 2, 2 * n - 2)
        ncp = effect / sd * math.sqrt(n / 2)
        return stats.nct.sf(crit, 2 * n - 2, ncp) + stats.nct.sf(crit, 2 * n - 2, -ncp)

    n = pw.t_seeds(effect, sd, level)
    assert scipy_power(n) >= 0.8 > scipy_power(n - 1)
    # the normal approximation, 2 (z + z)^2 / d^2, undercounts by a little: the t's heavier tails
    assert 0 <= n - pw.normal_seeds(effect, sd, level) < 3


def test_the_figures_docs_running_md_quotes() -> None:
    # half a standard deviation: 64 seeds at 0.05 (Cohen), 99 at 0.05 / 6 (four heads, six pairs)
    assert pw.seeds_needed(0.5, 1.0, 0.05) == 64 and pw.seeds_needed(0.5, 1.0, 0.05 / 6) == 99


def test_permutation_floor_is_the_fewest_seeds_that_can_reach_the_level() -> None:
    # 2 / C(2n, n): n = 3 -> 0.1, 4 -> 0.029, 5 -> 0.0079, 6 -> 0.0022
    assert pw.permutation_floor(0.05) == 4
    assert pw.permutation_floor(0.05 / 6) == 5
    assert pw.permutation_floor(0.05 / 12) == 6
    # a huge effect still needs the floor: the t-test would settle for 2 seeds
    assert pw.t_seeds(100.0, 1.0, 0.05 / 6) == 2 and pw.seeds_needed(100.0, 1.0, 0.05 / 6) == 5


def test_no_effect_needs_no_finite_number_of_seeds() -> None:
    assert pw.seeds_needed(0.0, 1.0, 0.05) is None
    assert pw.seeds_needed(1e-4, 1.0, 0.05) is None  # more than MAX_SEEDS
    assert pw.seeds_needed(1.0, 0.0, 0.05) == pw.permutation_floor(0.05)  # no spread: any two runs show it


def test_monte_carlo_t_tests_reject_as_often_as_the_power_says() -> None:
    # 20 000 simulated experiments with a known effect at the computed n: the rejection rate is the
    # power up to Monte Carlo noise (sd sqrt(0.8 * 0.2 / 20 000) = 0.0028; bound: 4 sd)
    rng = np.random.default_rng(7)
    effect, sd, level = 1.0, 1.5, 0.05 / 3
    n = pw.t_seeds(effect, sd, level)
    expected = pw.power(n, n, effect, sd, level)
    a = rng.normal(effect, sd, size=(20_000, n))
    b = rng.normal(0.0, sd, size=(20_000, n))
    pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
    t = (a.mean(axis=1) - b.mean(axis=1)) / (pooled * math.sqrt(2 / n))
    rate = float((np.abs(t) > tdist.t_quantile(1 - level / 2, 2 * n - 2)).mean())
    assert expected >= 0.8 and abs(rate - expected) < 4 * math.sqrt(0.8 * 0.2 / 20_000)


def test_holm_family_is_the_pairs_tested_on_each_metric() -> None:
    samples = {"m": {"A": [1.0, 2.0, 3.0], "B": [4.0, 5.0, 6.5], "C": [2.0, 2.5, 3.5]},
               "k": {"A": [1.0, 2.0], "B": [2.0, 4.0], "C": [3.0]}}  # C has one value of k: left out
    rows = pw.power_rows(samples, [("A", "B"), ("A", "C"), ("B", "C")], {"m": 1.0})
    by = {(r.metric, r.first, r.second): r for r in rows}
    assert sorted(by) == [("k", "A", "B"), ("m", "A", "B"), ("m", "A", "C"), ("m", "B", "C")]
    assert by[("m", "A", "B")].tests == 3 and by[("m", "A", "B")].level == pytest.approx(0.05 / 3)
    assert by[("k", "A", "B")].tests == 1 and by[("k", "A", "B")].level == pytest.approx(0.05)
    row = by[("m", "A", "B")]
    assert row.effect == pytest.approx(2.0 - 5.1666666666666667)
    assert row.stderr == pytest.approx(math.sqrt(1.0 / 3 + statistics.variance([4.0, 5.0, 6.5]) / 3))
    assert row.sd == pytest.approx(math.sqrt((1.0 + statistics.variance([4.0, 5.0, 6.5])) / 2))
    assert row.seeds == pw.seeds_needed(row.effect, row.sd, 0.05 / 3)
    assert row.named_seeds == pw.seeds_needed(1.0, row.sd, 0.05 / 3)
    assert row.named_power == pytest.approx(pw.power(3, 3, 1.0, row.sd, 0.05 / 3))
    assert by[("k", "A", "B")].named_effect is None


@pytest.mark.parametrize(("text", "message"), [
    ("m=0", "must be a positive number"),
    ("m=-1", "must be a positive number"),
    ("m=big", "must be a number, not 'big'"),
    ("mm=1", "not a compared metric; did you mean 'm'?"),
    ("2", "name the metric"),
    (",", "--effect is empty"),
])
def test_bad_effects_are_refused_by_name(text: str, message: str) -> None:
    from ganlab.errors import GanlabError

    with pytest.raises(GanlabError, match=message.replace("?", r"\?")):
        pw.parse_effects(text, ["m", "n"])
    assert pw.parse_effects("1.5", ["m"]) == {"m": 1.5}


# ---- through the command, on a real store ----------------------------------------------------------
def _log_runs(client, experiment_id: str, head: str, values: list[float], metric: str = "modes.captured") -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    for seed, value in enumerate(values):
        run = client.create_run(experiment_id, run_name=f"{head}-{seed}")
        client.log_batch(run.info.run_id, metrics=[Metric(metric, float(value), now, 100)],
                         params=[Param("head.name", head), Param("seed", str(seed)), Param("dataset.name", "ring8")])
        client.set_terminated(run.info.run_id, status="FINISHED")


def _power_json(cli_inproc, capsys, *args: str) -> dict:
    code = cli_inproc(["compare", "-e", "sim", "--power", "--format", "json", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_exact_moments_give_exactly_the_formulas_answer(workdir, mlflow_client, cli_inproc, capsys) -> None:
    # values with sample mean and SD exactly 5 and 1 (sigmoid), 6.2 and 1 (sparsemax): the command must
    # print effect -1.2, SE sqrt(2/8), SD 1 and the seeds of the formula for effect 1.2 / SD 1 at 0.05
    base = np.random.default_rng(1).normal(size=8)
    z = (base - base.mean()) / base.std(ddof=1)
    exp = mlflow_client.create_experiment("sim")
    _log_runs(mlflow_client, exp, "sigmoid", list(5.0 + z))
    _log_runs(mlflow_client, exp, "sparsemax", list(6.2 + z[::-1]))
    (row,) = _power_json(cli_inproc, capsys, "--effect", "modes.captured=0.5")["power"]
    assert (row["first"], row["second"], row["n_first"], row["n_second"], row["tests"]) == ("sigmoid", "sparsemax", 8, 8, 1)
    assert row["effect"] == pytest.approx(-1.2, abs=1e-12)
    assert row["stderr"] == pytest.approx(0.5, abs=1e-12) and row["sd"] == pytest.approx(1.0, abs=1e-12)
    assert row["seeds"] == pw.t_seeds(1.2, 1.0, 0.05) == 12
    assert row["named_seeds"] == 64  # Cohen's d = 0.5 at 0.05 (one pair: Holm leaves the level alone)
    assert row["named_power"] == pytest.approx(pw.power(8, 8, 0.5, 1.0, 0.05))


@pytest.mark.slow
def test_a_simulated_true_effect_is_recovered_within_its_sampling_noise(workdir, mlflow_client, cli_inproc,
                                                                         capsys) -> None:
    # Three heads, 16 seeds each, values drawn N(mu, sigma) with known means (0, 1.0, 1.5) and sigma 1.2:
    # three pairs, so Holm's most stringent step is 0.05 / 3.
    rng = np.random.default_rng(2024)
    truth = {"sigmoid": 0.0, "softmax": 1.0, "sparsemax": 1.5}
    sigma, n = 1.2, 16
    exp = mlflow_client.create_experiment("sim")
    for head, mu in truth.items():
        _log_runs(mlflow_client, exp, head, list(rng.normal(mu, sigma, size=n)))
    rows = _power_json(cli_inproc, capsys)["power"]
    assert len(rows) == 3
    for row in rows:
        true_effect = truth[row["first"]] - truth[row["second"]]
        # the printed effect is within 3 of its printed standard errors of the truth (a 0.3 % miss rate)
        assert abs(row["effect"] - true_effect) < 3 * row["stderr"], row
        # the SD within 3 of its standard errors, sigma / sqrt(2 (2n - 2)) for a pooled normal SD
        assert abs(row["sd"] - sigma) < 3 * sigma / math.sqrt(2 * (2 * n - 2)), row
        assert row["level"] == pytest.approx(0.05 / 3)
        # the seeds it prints are the formula's for the observed standardised effect g; the formula's
        # seeds for the true effect lie between those for g +- 3 standard errors of g (Hedges & Olkin:
        # se(g)^2 = 2/n + g^2 / (4 (n - 1)))
        g = abs(row["effect"]) / row["sd"]
        se_g = math.sqrt(2 / n + g * g / (4 * (n - 1)))
        assert row["seeds"] == pw.seeds_needed(g, 1.0, 0.05 / 3)
        true_seeds = pw.seeds_needed(abs(true_effect), sigma, 0.05 / 3)
        fewest = pw.seeds_needed(g + 3 * se_g, 1.0, 0.05 / 3)
        most = pw.seeds_needed(g - 3 * se_g, 1.0, 0.05 / 3) if g > 3 * se_g else None
        assert fewest <= true_seeds and (most is None or true_seeds <= most), (row, true_seeds, fewest, most)


@pytest.mark.parametrize(("args", "message"), [
    (["--group-by", "dataset.name", "--pool", "head.name"], "--power compares groups that differ in one param, and these 1 group(s)"),
    (["--format", "csv"], "--power prints its own table"),
    (["--effect", "modes.captured=x"], "the size must be a number"),
    (["--effect", "modes.capturd=1"], "did you mean 'modes.captured'?"),
])
def test_power_refuses_in_one_line(workdir, mlflow_client, cli_inproc, capsys, args, message) -> None:
    exp = mlflow_client.create_experiment("sim")
    _log_runs(mlflow_client, exp, "sigmoid", [1.0, 2.0])
    _log_runs(mlflow_client, exp, "softmax", [2.0, 3.0])
    code = cli_inproc(["compare", "-e", "sim", "--power", *args])
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2 and out.out == "" and len(lines) == 1 and message in lines[0], out.err


def test_power_needs_two_runs_per_group(workdir, mlflow_client, cli_inproc, capsys) -> None:
    exp = mlflow_client.create_experiment("sim")
    _log_runs(mlflow_client, exp, "sigmoid", [1.0])
    _log_runs(mlflow_client, exp, "softmax", [2.0, 3.0])
    code = cli_inproc(["compare", "-e", "sim", "--power"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "two or more runs in each of two groups" in err[0]


def test_power_table_in_markdown(workdir, mlflow_client, cli_inproc, capsys) -> None:
    exp = mlflow_client.create_experiment("sim")
    _log_runs(mlflow_client, exp, "sigmoid", [1.0, 2.0, 3.0])
    _log_runs(mlflow_client, exp, "softmax", [2.0, 3.0, 4.0])
    code = cli_inproc(["compare", "-e", "sim", "--format", "markdown", "--effect", "2"])
    out = capsys.readouterr().out
    # effect -1, SE sqrt(1/3 + 1/3), SD 1; seeds for d = 1 at 0.05 is 17; for d = 2 it is 6
    row = next(line for line in out.splitlines() if line.startswith("| modes.captured | sigmoid"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert code == 0 and cells[3:] == ["-1", "0.82", "1", "3/3", "1", "17", "2", "6",
                                        f"{100 * pw.power(3, 3, 2.0, 1.0, 0.05):.0f} %"]
    assert "Holm's most stringent step" in out
