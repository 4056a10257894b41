"""Optimisers registered by a plugin (``register_optimizers``): picked per network by name,
options in ``[optimizer.NAME]``, vectorised in a population only when declared elementwise."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import run_in_process

from ganlab import Option, hookimpl
from ganlab.testing import make_plugin_manager


class SignSGD(torch.optim.Optimizer):
    """p <- p - lr * sign(grad) (Bernstein et al. 2018): elementwise, and simple to check by hand."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])


class SignSGDFactory:
    elementwise = True
    state_copies = 0

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def build(self, params: Any, lr: float, config: Any) -> torch.optim.Optimizer:
        return SignSGD(params, lr * self.scale)


class UndeclaredFactory(SignSGDFactory):
    elementwise = False  # as a plugin that says nothing


class Plugin:
    @hookimpl
    def register_optimizers(self, register: Any) -> None:
        register("signsgd", SignSGDFactory, summary="sign of the gradient times the rate",
                 options={"scale": Option(float, 1.0, "multiplies the rate", min=0.0)})
        register("undeclared", UndeclaredFactory, summary="signsgd without the elementwise declaration")


def _trainer(**settings: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    manager = make_plugin_manager(Plugin())
    base = {"dataset": "tiny-vectors", "steps": 2, "batch_size": 8, "latent_dim": 2, "tracking": False,
            "metrics": "none", "device": "cpu", "arch": {"name": "mlp", "dropout": 0.0, "hidden_scale": 0.125}}
    config = ConfigBuilder().add_mapping({**base, **settings}, "test").build(manager.registry)
    return Trainer(build(manager, config), manager)


def test_a_plugin_optimiser_trains_d_by_its_own_rule_with_its_options() -> None:
    trainer = _trainer(optimizer_d="signsgd", lr_d=0.01, optimizer={"signsgd": {"scale": 0.5}})
    assert isinstance(trainer.b.opt_d, SignSGD) and isinstance(trainer.b.opt_g, torch.optim.Adam)
    assert trainer.b.config.flat()["optimizer.signsgd.scale"] == 0.5
    before = [p.detach().clone() for p in trainer.b.discriminator.parameters()]
    real, labels = trainer.batches.next()
    trainer.b.opt_d.zero_grad()
    loss, _ = trainer.d_loss_fn(real, labels, 1, 0)
    loss.backward()
    grads = [p.grad.clone() for p in trainer.b.discriminator.parameters()]
    trainer.b.opt_d.step()
    for old, grad, new in zip(before, grads, trainer.b.discriminator.parameters()):
        torch.testing.assert_close(new.detach(), old - 0.005 * torch.sign(grad))


def test_an_unknown_optimiser_is_one_line_listing_the_valid_ones(workdir: Any) -> None:
    done = run_in_process(["run", "--optimizer-d", "adamm", "--dataset", "ring8", "--no-tracking"], workdir)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "unknown optimiser 'adamm'; did you mean 'adam'?" in done.stderr
    assert "valid: adam, adamw, rmsprop, sgd" in done.stderr


def test_a_population_vectorises_an_elementwise_plugin_optimiser_and_not_another() -> None:
    from ganlab.train.population.setup import why_sequential

    assert why_sequential(_trainer(optimizer_g="signsgd").b) is None
    assert "does not declare elementwise" in why_sequential(_trainer(optimizer_g="undeclared").b)


def test_the_schedule_scales_each_groups_own_starting_rate() -> None:
    """signsgd's scale sets its rate to lr x scale; a linear schedule then lowers that, not lr."""
    from ganlab.train.schedule import set_rates

    trainer = _trainer(optimizer_d="signsgd", lr_d=0.01, lr_schedule="linear", steps=4,
                       optimizer={"signsgd": {"scale": 0.5}})
    set_rates([(trainer.b.opt_d, 0.01)], "linear", 2, 4)
    assert trainer.b.opt_d.param_groups[0]["lr"] == pytest.approx(0.005 * 0.5)
    restored = _trainer(optimizer_d="signsgd", lr_d=0.01, lr_schedule="linear", steps=4,
                        optimizer={"signsgd": {"scale": 0.5}})
    restored.b.opt_d.load_state_dict(trainer.b.opt_d.state_dict())  # through a checkpoint
    set_rates([(restored.b.opt_d, 0.01)], "linear", 3, 4)
    assert restored.b.opt_d.param_groups[0]["lr"] == pytest.approx(0.005 * 0.25)


def test_compile_with_a_gradient_penalty_is_refused_in_one_line(workdir: Any) -> None:
    done = run_in_process(["run", "--compile", "--reg", "r1", "--dataset", "ring8", "--no-tracking"], workdir)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--compile cannot train regularizer 'r1'" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "optimizer.nope.scale=1"], "unknown optimiser 'nope' in [optimizer.nope]"),
    (["--set", "optimizer.adam.beta1=0.9"], "'adam' takes its options as settings (beta1, beta2, weight_decay)"),
])
def test_optimizer_tables_for_no_plugin_optimiser_are_one_line(workdir: Any, args: list[str], message: str) -> None:
    done = run_in_process(["run", "--dataset", "ring8", "--no-tracking", *args], workdir)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
