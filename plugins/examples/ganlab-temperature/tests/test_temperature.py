"""Tests of the example plugin, written with ganlab.testing.

Run them after installing the package: ``pip install -e . && pytest``.
"""

from __future__ import annotations

import math

import pytest
import torch

from ganlab import Picture, hookimpl
from ganlab.errors import ComponentError, GanlabError
from ganlab.testing import assert_metric_values, make_plugin_manager, run_steps
from ganlab_temperature import plugin


@pytest.fixture(scope="module")
def registry():
    """Our plugin next to ganlab's built-in heads and objectives, and nothing else."""
    return make_plugin_manager(plugin, builtins={"heads", "objectives", "architectures"}).registry


def make(registry, kind: str, name: str, **options):
    return registry.get(kind, name).create(options)


def test_components_are_registered_by_this_plugin(registry):
    for kind, name in (("head", "temperature-sigmoid"), ("loss", "margin-hinge"), ("regularizer", "logit-decay"),
                       ("dataset", "moons"), ("metric", "margins")):
        component = registry.get(kind, name)
        assert component.provenance.plugin == plugin.__name__
        assert not component.provenance.builtin


def test_head_is_a_sigmoid_of_the_scaled_score(registry):
    head = make(registry, "head", "temperature-sigmoid", temperature=2.0)
    s = torch.tensor([[-3.0], [0.0], [4.0]])
    assert torch.allclose(head.p_real(s), torch.sigmoid(s.squeeze(-1) / 2))
    assert torch.allclose(head.probs(s).sum(-1), torch.ones(3))
    assert torch.allclose(head.real_loss(s), -torch.log(torch.sigmoid(s.squeeze(-1) / 2)))
    assert torch.allclose(head.loss(s, torch.tensor([0, 1, 1])),
                          torch.stack([head.real_loss(s)[0], head.fake_loss(s)[1], head.fake_loss(s)[2]]))


def test_head_losses_stay_finite_and_float32_for_extreme_bf16_scores(registry):
    head = make(registry, "head", "temperature-sigmoid", temperature=0.5)
    s = torch.tensor([[-1e4], [1e4]], dtype=torch.bfloat16, requires_grad=True)
    loss = head.real_loss(s) + head.fake_loss(s)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(s.grad).all()


def test_head_loss_is_proper(registry):
    """The expected loss under a true posterior q is stationary exactly where p_real = q."""
    head = make(registry, "head", "temperature-sigmoid", temperature=3.0)
    q = 0.8
    best = 3.0 * math.log(q / (1 - q))  # the score with sigmoid(s / T) = q
    s = torch.tensor([[best - 1.0], [best], [best + 1.0]], requires_grad=True)
    (q * head.real_loss(s) + (1 - q) * head.fake_loss(s)).sum().backward()
    below, at, above = s.grad.squeeze(-1).tolist()
    assert head.p_real(s)[1].item() == pytest.approx(q)
    assert at == pytest.approx(0.0, abs=1e-6) and below < 0 < above


def test_head_refuses_classes(registry):
    with pytest.raises(ComponentError, match="single score"):
        make(registry, "head", "temperature-sigmoid").num_logits(10)


@pytest.mark.parametrize("head_name", ["sigmoid", "softmax", "sparsemax", "temperature-sigmoid"])
def test_hinge_margin_is_the_score_difference_for_every_head(registry, head_name):
    from ganlab_temperature.objectives import margin

    head = make(registry, "head", head_name)
    z = torch.randn(16, head.num_logits(1))
    expected = z[:, 0] if z.shape[1] == 1 else z[:, 0] - z[:, 1]
    assert torch.allclose(margin(head, z), expected, atol=1e-5)


def test_hinge_losses(registry):
    head, hinge = make(registry, "head", "sigmoid"), make(registry, "loss", "margin-hinge")
    real, fake = torch.tensor([[2.0], [0.5]]), torch.tensor([[-2.0], [0.5]])
    # relu(1 - t) on real: (0 + 0.5) / 2; relu(1 + t) on fake: (0 + 1.5) / 2
    from ganlab.train.step import Step

    d_step, g_step = Step.of_scores(head, real, fake), Step.of_scores(head, real, fake, phase="g")
    assert hinge.discriminator_loss(d_step).item() == pytest.approx(1.0, abs=1e-5)
    assert hinge.generator_loss(g_step).item() == pytest.approx(0.75, abs=1e-5)


def test_moons_are_scaled_labelled_and_seeded(registry):
    from ganlab.data import DataRequest

    moons = make(registry, "dataset", "moons", samples=400, seed=-1)
    a, b = moons.load(DataRequest(root=".", seed=3)), moons.load(DataRequest(root=".", seed=3))
    assert a.shape == (2,) and len(a) == 400 and a.num_classes == 2
    assert a.x.abs().max() <= 1.0 and torch.equal(a.x, b.x)
    assert set(a.y.tolist()) == {0, 1}


def test_a_few_training_steps(registry):
    recorded = run_steps(
        head={"name": "temperature-sigmoid", "temperature": 2.0}, loss="margin-hinge",
        dataset={"name": "moons", "samples": 256}, arch={"name": "mlp", "hidden_scale": 0.25},
        steps=3, plugins=[plugin], builtins={"heads", "objectives", "architectures", "metrics"},
        metrics="diagnostics",
    )
    assert recorded["step"] == [1.0, 2.0, 3.0]
    assert all(math.isfinite(v) for v in recorded["loss.d"] + recorded["loss.g"])
    assert 0.0 <= recorded["diag.p_real_real"][-1] <= 1.0


def test_bad_temperature_is_refused_by_name():
    with pytest.raises(GanlabError, match="head.temperature must be > 0"):
        run_steps(head={"name": "temperature-sigmoid", "temperature": 0.0}, plugins=[plugin], steps=1)


def test_logit_decay_is_the_mean_squared_critic_score_and_trains(registry):
    from ganlab.train.step import Step

    decay = make(registry, "regularizer", "logit-decay")
    d = torch.nn.Linear(2, 1)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    step = Step(phase="d", number=1, d_step=0, real=real, real_labels=None, noise=torch.zeros(8, 2), fake=fake,
                discriminator=d, head=make(registry, "head", "sigmoid"))
    expected = (d(real)[:, 0] ** 2).mean() + (d(fake)[:, 0] ** 2).mean()
    assert torch.allclose(decay.penalty(step), expected)
    recorded = run_steps(steps=2, plugins=[plugin], dataset="tiny-vectors", reg="logit-decay")
    for total, adversarial, penalty in zip(recorded["loss.d"], recorded["loss.d.adv"], recorded["loss.d.logit-decay"]):
        assert math.isclose(total, adversarial + penalty, rel_tol=1e-5)


class Pictures:
    """A lifecycle plugin keeping the pictures each evaluation returned."""

    def __init__(self):
        self.seen = {}

    @hookimpl
    def on_evaluate(self, step, metrics, pictures):
        self.seen[step] = (metrics, pictures)


def test_margins_metric_returns_its_number_and_its_picture():
    kept = Pictures()
    run_steps(head={"name": "temperature-sigmoid", "temperature": 2.0}, dataset={"name": "moons", "samples": 256},
              arch={"name": "mlp", "hidden_scale": 0.25}, steps=2, plugins=[plugin, kept],
              builtins={"heads", "objectives", "architectures", "metrics"}, metrics="margins",
              sets=["metric.margins.samples=64"])
    metrics, pictures = kept.seen[2]
    assert math.isfinite(metrics["margins.gap"])
    picture = pictures["margins"]
    assert picture.kind == "plot" and picture.draw == "ganlab_temperature.figures:draw_margins"
    assert picture.data["real"].shape == (64,) and picture.data["fake"].shape == (64,)
    assert_metric_values({"margins.gap": metrics["margins.gap"], "margins": picture})


def test_margins_picture_draws(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganlab_temperature.figures import draw_margins

    fig = plt.figure()
    draw_margins(fig, step=5, real=torch.randn(50).numpy() + 2, fake=torch.randn(50).numpy() - 2)
    fig.savefig(tmp_path / "margins.png")
    plt.close(fig)
    assert (tmp_path / "margins.png").stat().st_size > 1000
    assert isinstance(Picture.plot("ganlab_temperature.figures:draw_margins", step=1, real=torch.zeros(2),
                                   fake=torch.zeros(2)).data["real"], type(torch.zeros(1).numpy()))
