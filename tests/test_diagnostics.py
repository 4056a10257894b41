"""Head diagnostics metric: values against hand-computed references."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ganlab.context import EvalContext
from conftest import _registry, make

KEYS = {"diag.p_real_real", "diag.p_real_fake", "diag.frac_exact_0", "diag.frac_exact_1", "diag.entropy",
        "diag.g_grad_norm", "diag.g_grad_zero"}
#: the pictures beside the numbers (tests/test_head_pictures.py); no field here: these contexts have no run
PICTURES = {"head_histograms"}




def linear_d(head, slope: float) -> torch.nn.Linear:
    """Margin t = slope · x₀ (real score slope·x₀, fake score 0; sigmoid: s = slope·x₀)."""
    net = torch.nn.Linear(2, head.num_logits(1))
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[0, 0] = slope
    return net


def eval_context(head, objective, net, real: torch.Tensor, fake: torch.Tensor, eval_samples: int = 10_000):
    def discriminate(x):
        with torch.no_grad():
            return net(x).float()

    return EvalContext(
        step=1, device=torch.device("cpu"), dataset_name="test", data=None, head=head, generator=None,
        discriminator=net, latent_dim=2, seed=0, cache_dir=Path("."), generate=lambda n: fake[:n],
        discriminate=discriminate, real_batch=lambda n: real[:n], objective=objective,
        config=SimpleNamespace(eval_samples=eval_samples, precision="fp32"),
    )


def test_registered_and_applies_to_every_run():
    component = _registry().get("metric", "diagnostics")
    assert component.provenance.plugin == "metrics"
    assert make("metric", "diagnostics").applies_to(SimpleNamespace(objective=None, head=None)) is True


def test_sigmoid_values_match_closed_forms():
    head, objective = make("head", "sigmoid"), make("loss", "nonsaturating")
    slope = 2.0
    net = linear_d(head, slope)
    real = torch.tensor([[1.0, 0.0], [0.5, 3.0], [2.0, -1.0]])
    fake = torch.tensor([[-1.0, 0.0], [-0.25, 1.0], [0.0, 0.0]])
    out = make("metric", "diagnostics").evaluate(eval_context(head, objective, net, real, fake))
    assert set(out) == KEYS | PICTURES and all(isinstance(out[k], float) and math.isfinite(out[k]) for k in KEYS)
    s_real, s_fake = slope * real[:, 0].double(), slope * fake[:, 0].double()
    assert out["diag.p_real_real"] == pytest.approx(torch.sigmoid(s_real).mean().item(), rel=1e-6)
    assert out["diag.p_real_fake"] == pytest.approx(torch.sigmoid(s_fake).mean().item(), rel=1e-6)
    assert out["diag.frac_exact_0"] == 0 and out["diag.frac_exact_1"] == 0
    p = torch.sigmoid(torch.cat([s_real, s_fake]))
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    assert out["diag.entropy"] == pytest.approx(entropy.mean().item(), rel=1e-5)
    # NS generator loss softplus(−s): ∂/∂x = −σ(−s)·slope·e₀ per sample
    expected_norm = (torch.sigmoid(-s_fake) * slope).mean().item()
    assert out["diag.g_grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    assert out["diag.g_grad_zero"] == 0


def test_sparse_head_saturation_exact_zeros_and_vanishing_minimax_gradient():
    head = make("head", "sparsemax")
    net = linear_d(head, 1.0)
    real = torch.tensor([[3.0, 0.0], [5.0, 1.0]])  # t ≥ 1: p = [1, 0] exactly
    fake = torch.tensor([[-3.0, 0.0], [-4.0, 1.0]])  # t ≤ −1: p = [0, 1] exactly
    metric = make("metric", "diagnostics")
    out = metric.evaluate(eval_context(head, make("loss", "minimax"), net, real, fake))
    assert out["diag.p_real_real"] == 1 and out["diag.p_real_fake"] == 0
    assert out["diag.frac_exact_0"] == 0.5 and out["diag.frac_exact_1"] == 0.5
    assert out["diag.entropy"] == 0  # 0·log 0 = 0, not NaN
    assert out["diag.g_grad_norm"] == 0 and out["diag.g_grad_zero"] == 1
    # the non-saturating game keeps the constant slope of the sparsemax loss's linear tail
    out_ns = metric.evaluate(eval_context(head, make("loss", "nonsaturating"), net, real, fake))
    assert out_ns["diag.g_grad_norm"] == pytest.approx(1.0) and out_ns["diag.g_grad_zero"] == 0


@pytest.mark.parametrize("name,options", [("softmax", {}), ("entmax", {}), ("entmax", {"alpha": 1.25})])
def test_entropy_of_indifferent_head_is_log2(name, options):
    head = make("head", name, **options)
    net = linear_d(head, 0.0)  # every score equal: p = [½, ½]
    x = torch.randn(8, 2)
    out = make("metric", "diagnostics").evaluate(eval_context(head, make("loss", "nonsaturating"), net, x, x))
    assert out["diag.entropy"] == pytest.approx(math.log(2), rel=1e-6)
    assert out["diag.p_real_real"] == pytest.approx(0.5) and out["diag.p_real_fake"] == pytest.approx(0.5)


def test_sample_counts_and_no_side_effects_on_d():
    head = make("head", "softmax")
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seen = {}
    real, fake = torch.randn(50, 2), torch.randn(50, 2)
    ctx = eval_context(head, make("loss", "minimax"), net, real, fake, eval_samples=20)
    scorer = copy.deepcopy(net)  # the context's own scoring must not touch `net` either
    ctx.discriminate = lambda x: scorer(x).detach()
    ctx.real_batch = lambda n: seen.setdefault("real", n) and real[:n]
    ctx.generate = lambda n: seen.setdefault("fake", n) and fake[:n]
    out = make("metric", "diagnostics", samples=30, grad_samples=10).evaluate(ctx)
    assert seen == {"real": 20, "fake": 20}  # capped by the run's eval_samples
    assert set(out) == KEYS | PICTURES
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics restored
    assert net.training and all(p.grad is None for p in net.parameters())


def test_without_objective_gradient_keys_are_left_out():
    head = make("head", "softmax")
    x = torch.randn(4, 2)
    out = make("metric", "diagnostics").evaluate(eval_context(head, None, linear_d(head, 1.0), x, x))
    assert set(out) == KEYS - {"diag.g_grad_norm", "diag.g_grad_zero"} | PICTURES
    assert out["head_histograms"].data["grad"] is None  # no gradient panel either
