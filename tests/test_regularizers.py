"""Regularisers of D (``--reg``): the penalties against closed forms and an independent float64
computation, lazy regularisation, weight clipping, the configuration surface, and populations.

The independent reference computes each sample's input gradient with ``torch.func`` (``vmap`` of
``grad`` of a per-sample critic written here), where the regulariser takes one autograd
gradient of the summed critic through the step object; both are then differentiated with
respect to D's weights.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import make, run_in_process
from torch.func import functional_call, grad, vmap

from ganlab.testing import run_steps
from ganlab.train.step import Step, critic_score

HEADS = ("sigmoid", "softmax", "sparsemax", "entmax")


def _tiny_d(outputs: int) -> torch.nn.Module:
    torch.manual_seed(3)
    # tanh, not ReLU: a penalty's gradient then has non-zero second derivatives to get right
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, outputs)).double()


def _reference_critic(outputs: int) -> Any:
    """The critic score written independently of ganlab.train.step: s, or z_real - z_fake."""
    return (lambda z: z[0]) if outputs == 1 else (lambda z: z[0] - z[1])


def _step(d: torch.nn.Module, head: Any, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> Step:
    return Step(phase="d", number=1, d_step=0, real=real, real_labels=None, noise=torch.zeros(len(real), 1),
                fake=fake, discriminator=d, head=head, uniform=lambda lead: eps)


def _reference_penalty(kind: str, d: torch.nn.Module, outputs: int, real: torch.Tensor, fake: torch.Tensor,
                       eps: torch.Tensor, center: float = 1.0) -> dict[str, torch.Tensor]:
    """d penalty / d weights, with every per-sample gradient from torch.func."""
    critic = _reference_critic(outputs)
    names = [n for n, _ in d.named_parameters()]

    def penalty(params: dict[str, torch.Tensor]) -> torch.Tensor:
        def score_of(x: torch.Tensor) -> torch.Tensor:
            return critic(functional_call(d, params, (x.unsqueeze(0),))[0])

        if kind == "gp":
            x = eps[:, None] * real + (1 - eps[:, None]) * fake
            return ((vmap(grad(score_of))(x).norm(dim=1) - center) ** 2).mean()
        x = real if kind == "r1" else fake
        return (0.5 * vmap(grad(score_of))(x).pow(2).sum(dim=1)).mean()

    params = {n: p.detach() for n, p in d.named_parameters()}
    grads = grad(penalty)(params)
    return {n: grads[n] for n in names}


@pytest.mark.parametrize("head_name", HEADS)
@pytest.mark.parametrize(("kind", "options"), [("gp", {}), ("gp", {"center": 0.0}), ("r1", {}), ("r2", {})])
def test_penalty_gradients_match_an_independent_float64_computation(head_name: str, kind: str,
                                                                      options: dict[str, Any]) -> None:
    head = make("head", head_name)
    outputs = head.num_logits(1)
    d = _tiny_d(outputs)
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(6, 3, generator=gen, dtype=torch.float64), torch.randn(6, 3, generator=gen, dtype=torch.float64)
    eps = torch.rand(6, generator=gen, dtype=torch.float64)
    regularizer = make("regularizer", kind, **options)
    value = regularizer.penalty(_step(d, head, real, fake, eps))
    # the output bias does not move an input gradient: it gets None here and zeros from torch.func
    mine = torch.autograd.grad(value, list(d.parameters()), allow_unused=True)
    reference = _reference_penalty(kind, d, outputs, real, fake, eps, options.get("center", 1.0))
    assert float(value.detach()) > 0
    for (name, p), got in zip(d.named_parameters(), mine):
        got = torch.zeros_like(p) if got is None else got
        assert torch.allclose(got, reference[name], rtol=1e-10, atol=1e-12), name
    assert float(reference["2.weight"].abs().max()) > 0


def test_penalties_of_a_linear_critic_have_closed_forms() -> None:
    """s(x) = w.x + b: grad_x s = w everywhere, so R1 = |w|^2 / 2 (gradient w) and
    GP = (|w| - 1)^2 (gradient 2 (|w| - 1) w / |w|), whatever the samples."""
    head = make("head", "sigmoid")
    d = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64))
    w = d.weight.detach()[0]
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    step = _step(d, head, real, fake, torch.rand(4, dtype=torch.float64))
    r1 = make("regularizer", "r1").penalty(step)
    assert float(r1.detach()) == pytest.approx(0.5 * float(w @ w), rel=1e-12)
    (g,) = torch.autograd.grad(r1, d.weight)
    assert torch.allclose(g[0], w, rtol=1e-12)
    gp = make("regularizer", "gp").penalty(step)
    norm = w.norm()
    assert float(gp.detach()) == pytest.approx(float((norm - 1) ** 2), rel=1e-12)
    (g,) = torch.autograd.grad(gp, d.weight)
    assert torch.allclose(g[0], 2 * (norm - 1) * w / norm, rtol=1e-12)


def test_the_critic_score_of_two_class_heads_is_the_margin() -> None:
    z = torch.tensor([[2.0, -1.0], [0.5, 0.25]], dtype=torch.float64)
    for name in ("softmax", "sparsemax", "entmax"):
        assert torch.equal(critic_score(make("head", name), z), z[:, 0] - z[:, 1])
    one = torch.tensor([[1.5], [-2.0]])
    assert torch.equal(critic_score(make("head", "sigmoid"), one), one[:, 0])
    # K + 1 scores (semi-supervised): log-sum-exp of the real classes against "fake"
    three = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    assert float(critic_score(make("head", "softmax"), three)) == pytest.approx(
        float(torch.log(torch.exp(three[0, 0]) + torch.exp(three[0, 1])) - three[0, 2]), rel=1e-12)


# ---- in training ------------------------------------------------------------------------
def test_gp_is_added_to_d_loss_with_its_weight_and_logged_as_a_term() -> None:
    values = run_steps(dataset="tiny-vectors", steps=4, reg="gp", sets=["regularizer.gp.weight=2.5"])
    for total, adv, gp in zip(values["loss.d"], values["loss.d.adv"], values["loss.d.gp"]):
        assert gp > 0
        assert total == pytest.approx(adv + gp, rel=1e-5)
    assert len(values["loss.d.gp"]) == 4


def _trainer(**settings: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import PluginManager
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    plugins = PluginManager(warn=lambda message: None).load()
    base = {"dataset": "ring8", "steps": 3, "batch_size": 16, "latent_dim": 4, "tracking": False,
            "metrics": "none", "device": "cpu", "arch": {"name": "mlp", "dropout": 0.0, "hidden_scale": 0.125}}
    return Trainer(build(plugins, ConfigBuilder().add_mapping({**base, **settings}, "test").build(plugins.registry)),
                   plugins)


def test_lazy_regularisation_applies_every_n_steps_weighted_by_n() -> None:
    trainer = _trainer(reg="r1", regularizer={"r1": {"every": 3, "weight": 4.0}})
    real, labels = trainer.batches.next()
    _, off = trainer.d_loss_fn(real, labels, 2, 0)
    assert off == {}  # step 2: not due
    total, terms = trainer.d_loss_fn(real, labels, 3, 0)
    x = real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(trainer.b.discriminator(x)[:, 0].sum(), x)
    unweighted = float((0.5 * g.pow(2).sum(dim=1)).mean())
    assert float(terms["r1"].detach()) == pytest.approx(4.0 * 3 * unweighted, rel=1e-5)
    assert float(total.detach()) == pytest.approx(float((terms["adv"] + terms["r1"]).detach()), rel=1e-6)
    values = run_steps(dataset="tiny-vectors", steps=4, reg="r1", sets=["regularizer.r1.every=2"])
    assert len(values["loss.d.r1"]) == 2 and len(values["loss.d"]) == 4  # logged at steps 2 and 4 only


def test_weight_clip_keeps_every_weight_of_d_within_the_bound() -> None:
    trainer = _trainer(loss="wasserstein", reg="weight-clip", regularizer={"weight-clip": {"clip": 0.02}})
    before = max(float(p.detach().abs().max()) for p in trainer.b.discriminator.parameters())
    assert before > 0.02  # the bound has something to do
    trainer.train_step()
    assert max(float(p.detach().abs().max()) for p in trainer.b.discriminator.parameters()) <= 0.02


# ---- configuration ------------------------------------------------------------------------
def test_regularisers_are_recorded_as_params(workdir: Any, mlflow_client: Any) -> None:
    result = run_in_process(["run", "--dataset", "ring8", "--steps", "2", "--batch-size", "8", "--latent-dim", "2",
                             "--reg", "gp,r1", "--set", "regularizer.gp.center=0", "--eval-every", "0",
                             "--sample-every", "0"], workdir)
    assert result.returncode == 0, result.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    params = run.data.params
    assert params["reg"] == "gp,r1"
    assert params["regularizer.gp.center"] == "0.0" and params["regularizer.gp.weight"] == "10.0"
    assert params["regularizer.r1.every"] == "1"
    assert "loss.d.gp" in run.data.metrics and "loss.d.r1" in run.data.metrics


@pytest.mark.parametrize(("args", "message"), [
    (["--reg", "gpp"], "unknown regularizer 'gpp'; did you mean 'gp'?"),
    (["--reg", "gp", "--set", "regularizer.gp.weight=-1"], "regularizer.gp.weight"),
    (["--reg", "r1", "--set", "regularizer.r1.every=0"], "regularizer.r1.every"),
    (["--reg", "weight-clip", "--set", "regularizer.weight-clip.weight=2"], "unknown option 'regularizer.weight-clip.weight'"),
    (["--reg", "gp,none"], "'none' cannot be listed with other names"),
    (["--augment", "diffaugment"], "transforms images"),
    (["--augment", "diffaugment", "--set", "augmentation.diffaugment.policy=colour"], "augmentation.diffaugment.policy"),
])
def test_bad_regulariser_and_augmentation_input_is_one_line_exit_2(workdir: Any, mlflow_client: Any,
                                                                   args: list[str], message: str) -> None:
    result = run_in_process(["run", "--dataset", "ring8", "--steps", "2", *args], workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    experiment = mlflow_client.get_experiment_by_name("ganlab")
    runs = mlflow_client.search_runs([experiment.experiment_id]) if experiment else []
    assert not [r for r in runs if r.info.status == "RUNNING"]


# ---- populations ------------------------------------------------------------------------
def test_population_replicas_follow_their_single_runs_with_penalties_and_clipping() -> None:
    """gp and r1 through the stacked D (per-replica input gradients and interpolation draws), and
    weight clipping on each replica's views: replica i still matches the single run with seed i."""
    from test_population import _population_and_singles, _weights

    population, singles = _population_and_singles(
        "0-1", steps=20, dataset={"name": "ring8"}, arch={"name": "mlp", "hidden_scale": 0.125},
        reg="gp,r1,weight-clip", regularizer={"weight-clip": {"clip": 0.5}, "r1": {"every": 2}})
    for replica, single in zip(population, singles):
        difference = float((_weights(replica) - _weights(single)).abs().max())
        assert difference < 1e-5, f"seed {replica.config.seed}: {difference}"
    assert float((_weights(population[0]) - _weights(population[1])).abs().max()) > 1e-3
