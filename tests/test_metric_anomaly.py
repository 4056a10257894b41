"""The ``anomaly`` metric: AUROC (rank form, ties) against scikit-learn and hand
cases, the dataset contract it relies on, and a digits run that logs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from conftest import TINY
from ganlab.config import RunConfig
from ganlab.context import EvalContext, RunContext
from ganlab.data import DataRequest, TensorData
from ganlab.errors import GanlabError
from ganlab_plugins.datasets.digits import Digits
from ganlab_plugins.heads.torch_heads import SigmoidHead, SparsemaxHead
from ganlab_plugins.metrics.anomaly import AnomalyMetric
from ganlab_plugins.metrics.stats import auroc

def store(workdir: Path) -> str:
    """An absolute store URI: MLflow caches stores by URI within a process, so the default
    relative one would keep pointing at the first in-process test's directory."""
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"



# ---- AUROC ------------------------------------------------------------------------
def test_auroc_hand_cases() -> None:
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), torch.tensor([True, True, False, False])) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), torch.tensor([True, True, False, False])) == 0.0
    assert auroc(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([True, False, False])) == 0.5
    # positives 0.9, 0.4; negatives 0.5, 0.1, 0.4: pairs won 3 + (0 + 1 + 1/2) of 6
    scores = torch.tensor([0.9, 0.4, 0.5, 0.1, 0.4])
    assert auroc(scores, torch.tensor([True, True, False, False, False])) == pytest.approx(4.5 / 6)


def test_auroc_refuses_a_single_class_and_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        auroc(torch.tensor([0.1, 0.2]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match="non-finite"):
        auroc(torch.tensor([0.1, float("nan")]), torch.tensor([True, False]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60)
       .filter(lambda pairs: 0 < sum(p for _, p in pairs) < len(pairs)))
def test_auroc_matches_scikit_learn_with_many_ties(pairs: list[tuple[int, bool]]) -> None:
    scores = [float(s) for s, _ in pairs]
    labels = [p for _, p in pairs]
    assert auroc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_matches_scikit_learn_on_continuous_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(2000, generator=gen, dtype=torch.float64)
    labels = torch.rand(2000, generator=gen) < scores.sigmoid()
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12)


# ---- the metric -------------------------------------------------------------------
CLS = 3


def toy_data(train_has_cls: bool = False, test_has_cls: bool = True) -> TensorData:
    """Images whose every pixel is label/10, so a hand-written D can read the label."""
    train_y = torch.tensor([0, 1, 2, 4, 5] + ([CLS] if train_has_cls else []))
    test_y = torch.tensor([0, 1, 2, 4, 5, 6, 7, 8] + ([CLS, CLS, CLS] if test_has_cls else [9]))
    def images(y: torch.Tensor) -> torch.Tensor:
        return (y.float() / 10).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    return TensorData(x=images(train_y), y=train_y, num_classes=10, test_x=images(test_y), test_y=test_y)


def config(exclude_class: int = CLS) -> RunConfig:
    return RunConfig(settings={"eval_samples": 100},
                     components={"dataset": {"name": "toy", "exclude_class": exclude_class}})


def eval_context(data: TensorData, head, score_of_label) -> EvalContext:
    def discriminate(x: torch.Tensor) -> torch.Tensor:
        labels = (x[:, 0, 0, 0] * 10).round().long()
        return torch.stack([score_of_label(int(label)) for label in labels])

    return EvalContext(
        step=0, device=torch.device("cpu"), dataset_name="toy", data=data, head=head, generator=None,
        discriminator=None, latent_dim=2, seed=0, cache_dir=Path("unused"), generate=lambda n: data.x[:n],
        discriminate=discriminate, real_batch=lambda n: data.x[:n], config=config(),
    )


def run_context(data: TensorData, exclude_class: int = CLS) -> RunContext:
    return RunContext(config=config(exclude_class), device="cpu", generator=None, discriminator=None, head=None,
                      objective=None, data=data, data_shape=tuple(data.shape), num_classes=1)


def test_a_discriminator_that_rejects_the_held_out_class_scores_one() -> None:
    ctx = eval_context(toy_data(), SigmoidHead(), lambda y: torch.tensor([-4.0 if y == CLS else 4.0]))
    assert AnomalyMetric().evaluate(ctx) == {"anomaly.auroc": 1.0}
    assert ctx.params["anomaly.class"] == CLS
    assert ctx.params["anomaly.positives"] == 3 and ctx.params["anomaly.negatives"] == 8
    reverse = eval_context(toy_data(), SigmoidHead(), lambda y: torch.tensor([4.0 if y == CLS else -4.0]))
    assert AnomalyMetric().evaluate(reverse) == {"anomaly.auroc": 0.0}


def test_the_score_is_one_minus_the_heads_p_real_with_exact_ties() -> None:
    """A sparsemax head outputs p_real exactly 0 or 1 beyond margin 1: ties at the extremes."""
    def logits(y: int) -> torch.Tensor:
        if y == CLS or y in (0, 1, 2, 4):
            return torch.tensor([-3.0, 0.0])  # p_real = 0 exactly: score 1
        return torch.tensor([3.0, 0.0])  # p_real = 1 exactly: score 0

    # positives all score 1; negatives: 4 tie at 1, 4 score 0 -> (4 * 1/2 + 4 * 1) / 8
    out = AnomalyMetric().evaluate(eval_context(toy_data(), SparsemaxHead(), logits))
    assert out["anomaly.auroc"] == pytest.approx(0.75)


def test_samples_option_takes_a_fixed_subset() -> None:
    calls: list[int] = []

    def logits(y: int) -> torch.Tensor:
        calls.append(y)
        return torch.tensor([-1.0 if y == CLS else 1.0])

    ctx = eval_context(toy_data(), SigmoidHead(), logits)
    metric = AnomalyMetric(samples=10)
    assert metric.evaluate(ctx) == {"anomaly.auroc": 1.0}
    assert len(calls) == 10
    assert ctx.params["anomaly.positives"] + ctx.params["anomaly.negatives"] == 10


def test_applies_only_when_a_class_is_excluded() -> None:
    metric = AnomalyMetric()
    assert metric.applies_to(run_context(toy_data()))
    assert not metric.applies_to(run_context(toy_data(), exclude_class=-1))
    no_test = TensorData(x=toy_data().x, y=toy_data().y, num_classes=10)
    assert not metric.applies_to(run_context(no_test))


def test_does_not_apply_to_a_packed_discriminator() -> None:
    """With --pack m, D scores packs of m images: a test image has no score of its own to rank."""
    ctx = run_context(toy_data())
    assert AnomalyMetric().applies_to(ctx)
    ctx.config.settings["pack"] = 2
    assert not AnomalyMetric().applies_to(ctx)


def test_refuses_a_dataset_that_breaks_the_exclusion_contract() -> None:
    with pytest.raises(GanlabError, match="kept class 3 in its training split"):
        AnomalyMetric().applies_to(run_context(toy_data(train_has_cls=True)))
    with pytest.raises(GanlabError, match="test split needs images of class 3"):
        AnomalyMetric().applies_to(run_context(toy_data(test_has_cls=False)))


def test_digits_drops_the_class_from_training_and_keeps_it_in_test() -> None:
    data = Digits(16, exclude_class=CLS).load(DataRequest(root=Path("data")))
    assert not bool((data.y == CLS).any())
    assert set(data.test_y.tolist()) == set(range(10))
    AnomalyMetric().check(data, CLS, "digits")


def test_a_digits_run_without_the_class_logs_auroc(workdir, cli_inproc, mlflow_client) -> None:
    args = ["run", "--arch", "mlp", "--dataset", "digits", *TINY, "--set", f"dataset.exclude_class={CLS}",
            "--set", "dataset.size=16", "--set", "metrics=anomaly", "--tracking-uri", store(workdir)]
    assert cli_inproc(args) == 0
    (run,) = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert 0.0 <= run.data.metrics["anomaly.auroc"] <= 1.0
    assert run.data.params["anomaly.class"] == str(CLS)
    assert run.data.params["anomaly.positives"] == "37"  # the threes of the stratified 20% digits test split
    assert not any(key.startswith("images.") for key in run.data.metrics)


def test_asking_for_anomaly_without_an_excluded_class_is_refused(workdir, cli_inproc, mlflow_client, capsys) -> None:
    args = ["run", "--arch", "mlp", "--dataset", "digits", *TINY, "--set", "dataset.size=16",
            "--set", "metrics=anomaly", "--tracking-uri", store(workdir)]
    assert cli_inproc(args) == 2
    assert "metric 'anomaly' does not apply" in capsys.readouterr().err
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert all(r.info.status != "RUNNING" for r in runs)
