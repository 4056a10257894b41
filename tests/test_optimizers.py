"""The optimiser settings (``optimizer_g``, ``optimizer_d``, ``momentum``, ``weight_decay``).

Each optimiser's first update of the generator is checked against its closed form
(computed here in float64 from the gradient the step left behind); a population's
replicas against their single runs; the memory estimate against the state each keeps.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

TINY = {"steps": 3, "batch_size": 16, "latent_dim": 4, "tracking": False, "metrics": "none", "eval_every": 0,
        "sample_every": 0, "device": "cpu", "dataset": {"name": "ring8"},
        "arch": {"name": "mlp", "hidden_scale": 0.0625}}
LR, DECAY = 1e-2, 0.05


def _config(**settings: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins

    plugins = load_plugins([])
    return ConfigBuilder().add_mapping({**TINY, **settings}, "test").build(plugins.registry), plugins


def first_update(kind: str, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """θ after one step of ``kind`` from fresh state (float64, torch's default eps and alpha)."""
    if kind == "sgd":  # momentum's buffer starts as the gradient itself: the first step is plain SGD
        return theta - LR * (grad + DECAY * theta)
    if kind == "adam":  # bias-corrected moments after one step: m̂ = g', v̂ = g'²
        g = grad + DECAY * theta
        return theta - LR * g / (g.abs() + 1e-8)
    if kind == "adamw":  # decoupled decay, then Adam on the raw gradient
        return theta * (1 - LR * DECAY) - LR * grad / (grad.abs() + 1e-8)
    if kind == "rmsprop":  # square average (1 − 0.99) g'²; momentum buffer = the first step
        g = grad + DECAY * theta
        return theta - LR * g / (torch.sqrt(0.01 * g * g) + 1e-8)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd", "rmsprop"])
def test_the_first_generator_update_is_the_optimisers_closed_form(kind: str) -> None:
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    config, plugins = _config(optimizer_g=kind, optimizer_d="sgd", lr_g=LR, momentum=0.9, weight_decay=DECAY)
    trainer = Trainer(build(plugins, config), plugins)
    expected_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
                      "rmsprop": torch.optim.RMSprop}[kind]
    assert type(trainer.b.opt_g) is expected_class and type(trainer.b.opt_d) is torch.optim.SGD
    before = [p.detach().double().clone() for p in trainer.b.generator.parameters()]
    trainer.train_step()
    for theta, param in zip(before, trainer.b.generator.parameters()):
        expected = first_update(kind, theta, param.grad.double())
        torch.testing.assert_close(param.detach().double(), expected, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(param.detach().double(), theta), "the step moved the weights"


@pytest.mark.parametrize("kind", ["sgd", "rmsprop", "adamw"])
def test_population_replicas_follow_their_single_runs_with_each_optimiser(kind: str) -> None:
    from ganlab.train.population.launch import run_population
    from ganlab.train.runner import run

    settings = {"optimizer_g": kind, "optimizer_d": kind, "momentum": 0.9, "weight_decay": 1e-3, "lr_g": 1e-3,
                "lr_d": 1e-3, "steps": 20}
    config, plugins = _config(seeds="0-1", **settings)
    population = run_population(config, plugins, progress=False)
    for replica in population:
        single_config, single_plugins = _config(seed=replica.config.seed, **settings)
        single = run(single_config, single_plugins, progress=False)
        for mine, theirs in ((replica.generator, single.generator), (replica.discriminator, single.discriminator)):
            gap = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(mine.parameters(), theirs.parameters()))
            assert gap < 1e-5, f"{kind} seed {replica.config.seed}: {gap}"


def test_the_memory_estimate_counts_each_optimisers_state() -> None:
    from ganlab.train.build import build, make_optimizer_plugins
    from ganlab.train.memory import step_memory

    config, plugins = _config()
    b = build(plugins, config)
    g_bytes, d_bytes = (sum(p.numel() * p.element_size() for p in n.parameters()) for n in (b.generator, b.discriminator))

    def need(**settings: Any) -> int:
        config = _config(**settings)[0]
        return step_memory(config, b.device, b.generator, b.discriminator, b.data,
                           make_optimizer_plugins(plugins, config))(16)

    adam = need()
    assert adam - need(optimizer_g="sgd", optimizer_d="sgd") == 2 * (g_bytes + d_bytes)
    assert adam - need(optimizer_g="sgd", optimizer_d="sgd", momentum=0.9) == g_bytes + d_bytes
    assert adam == need(optimizer_g="rmsprop", optimizer_d="rmsprop", momentum=0.9)
    assert math.isclose(adam - need(optimizer_d="rmsprop"), d_bytes)
