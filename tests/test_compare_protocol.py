"""``ganlab compare`` and a metric's protocol: inception.* numbers are shown with their protocol and never
averaged or tested across protocols (FID of 10,000 samples is not FID of 50,000).

The runs are written straight into the store with MlflowClient (as tests/test_compare.py does), with
the params the ``inception`` metric records.
"""

from __future__ import annotations

import json

import pytest

from test_compare import log_run

PROTOCOL = {"inception.samples": "50000", "inception.reference": "train", "inception.reference_samples": "50000",
            "inception.resize": "tf1-bilinear-299", "inception.weights": "0123456789abcdef"}


@pytest.fixture
def store(workdir, mlflow_client):
    """sigmoid and entmax at 50,000 samples, and sigmoid again at 10,000: three seeds each."""
    exp = mlflow_client.create_experiment("fid")
    for head, samples, fids in (("sigmoid", "50000", (30.0, 31.0, 29.5)), ("entmax", "50000", (25.0, 26.0, 24.0)),
                                ("sigmoid", "10000", (33.0, 34.5, 32.0))):
        for seed, fid in enumerate(fids):
            params = {"head.name": head, "seed": seed, **PROTOCOL, "inception.samples": samples,
                      "inception.reference_samples": samples}
            log_run(mlflow_client, exp, f"{head}-{samples}-{seed}", params, {"inception.fid": fid, "loss.d": 1.0})
    return mlflow_client


def compare(cli_inproc, capsys, *args: str) -> tuple[int, str, str]:
    code = cli_inproc(["compare", "--experiment", "fid", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: "), err
    return lines[0]


def test_runs_of_different_protocols_are_separate_groups_and_the_protocol_is_shown(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "-m", "inception.fid", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["group_by"] == ["head.name", "inception.reference_samples"]
    assert sorted((g["group"]["head.name"], g["group"]["inception.reference_samples"], g["runs"])
                  for g in data["groups"]) == [("entmax", "50000", 3), ("sigmoid", "10000", 3), ("sigmoid", "50000", 3)]
    assert data["protocols"] == {"inception": {"inception.samples": ["10000", "50000"],
                                               "inception.reference": ["train"],
                                               "inception.reference_samples": ["10000", "50000"],
                                               "inception.resize": ["tf1-bilinear-299"],
                                               "inception.weights": ["0123456789abcdef"]}}
    code, out, err = compare(cli_inproc, capsys, "-m", "inception.fid", "-f", "markdown")
    assert code == 0, err
    assert ("inception.* protocol: samples 10000 / 50000, reference train, reference_samples 10000 / 50000, "
            "resize tf1-bilinear-299, weights 0123456789abcdef") in out


def test_pooling_across_protocols_is_refused_for_inception_metrics_only(store, cli_inproc, capsys):
    code, out, err = compare(cli_inproc, capsys, "-m", "inception.fid", "--pool",
                             "inception.samples,inception.reference_samples")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "(head.name=sigmoid) differ in inception.samples (10000 / 50000)" in line
    assert "comparable only under one protocol" in line and "--pool" in line
    # a speed metric read from FID's curve is FID's too
    code, out, err = compare(cli_inproc, capsys, "-m", "auc:inception.fid", "--pool",
                             "inception.samples,inception.reference_samples")
    assert code == 2 and "differ in inception.samples (10000 / 50000)" in one_error_line(err)
    # the losses do not depend on how FID was measured: pooling over it is the user's choice
    code, out, err = compare(cli_inproc, capsys, "-m", "loss.d", "--pool",
                             "inception.samples,inception.reference_samples", "-f", "json")
    assert code == 0, err
    assert {g["group"]["head.name"]: g["runs"] for g in json.loads(out)["groups"]} == {"entmax": 3, "sigmoid": 6}


@pytest.mark.parametrize("flag", ["--test", "--power"])
def test_testing_groups_that_differ_in_protocol_is_refused(store, cli_inproc, capsys, flag):
    code, out, err = compare(cli_inproc, capsys, "-m", "inception.fid", flag, "-f", "json")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "groups 'sigmoid reference_samples=10000' and 'sigmoid reference_samples=50000'" in line
    assert "differ in inception.samples (10000 vs 50000)" in line
    assert "would measure the protocol, not the models" in line


def test_groups_of_one_protocol_are_tested_as_before(store, cli_inproc, capsys, mlflow_client):
    for run in mlflow_client.search_runs([mlflow_client.get_experiment_by_name("fid").experiment_id],
                                         "params.`inception.samples` = '10000'"):
        mlflow_client.delete_run(run.info.run_id)
    code, out, err = compare(cli_inproc, capsys, "-m", "inception.fid", "--test", "-f", "json")
    assert code == 0, err
    (test,) = json.loads(out)["tests"]
    assert {test["first"], test["second"]} == {"sigmoid", "entmax"}
