"""Augmentations of D's inputs (``--augment``) and objectives written on the step object.

DiffAugment's transforms are checked against what they must be (a whole-pixel shift with zero
fill, a zeroed square, the colour formulas), G is shown to learn through them, and the engine is
shown to augment every D input in training and none in evaluation.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import make

from ganlab import hookimpl
from ganlab.testing import make_plugin_manager, run_steps


def _images(n: int = 6, side: int = 8, channels: int = 3) -> torch.Tensor:
    # no zeros in the input: a zero in the output is then always the transform's
    return torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(0)) + 1.0


def test_translation_is_a_whole_pixel_shift_within_range_with_zero_fill() -> None:
    from ganlab_plugins.augmentations.diffaugment import translate

    x = _images(side=16)
    out = translate(x, torch.Generator().manual_seed(1), 0.125)
    reach = 2  # round(16 * 0.125)
    shifts = []
    for i in range(len(x)):
        found = []
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                expected = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)]
                expected[:, max(0, dy):16 - max(0, -dy), max(0, dx):16 - max(0, -dx)] = src
                if torch.equal(out[i], expected):
                    found.append((dy, dx))
        assert len(found) == 1, f"sample {i}: {found}"
        shifts.append(found[0])
    assert len(set(shifts)) > 1  # each sample draws its own shift


def test_cutout_zeroes_one_square_of_the_stated_side_and_keeps_the_rest() -> None:
    from ganlab_plugins.augmentations.diffaugment import cut_out

    x = _images(n=20, side=8)
    out = cut_out(x, torch.Generator().manual_seed(2), 0.5)
    for i in range(len(x)):
        hole = (out[i] == 0).all(dim=0)
        assert torch.equal(out[i][:, ~hole], x[i][:, ~hole])
        rows, cols = hole.any(dim=1).nonzero()[:, 0], hole.any(dim=0).nonzero()[:, 0]
        assert 0 < len(rows) <= 4 and 0 < len(cols) <= 4  # a 4 x 4 square, cut by the border at most
        assert int(hole.sum()) == len(rows) * len(cols)  # a rectangle: the square's part inside the image


def test_colour_is_brightness_saturation_contrast_in_closed_form() -> None:
    from ganlab_plugins.augmentations.diffaugment import colour

    x = _images(n=4, side=5).double()
    out = colour(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    u = [torch.rand(4, 1, 1, 1, generator=g, dtype=torch.float64) for _ in range(3)]
    y = x + (u[0] - 0.5)
    y = (y - y.mean(dim=1, keepdim=True)) * (2 * u[1]) + y.mean(dim=1, keepdim=True)
    y = (y - y.mean(dim=(1, 2, 3), keepdim=True)) * (u[2] + 0.5) + y.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, y, rtol=1e-12, atol=1e-12)


def test_the_same_generator_state_gives_the_same_augmentation() -> None:
    augment = make("augmentation", "diffaugment").augment
    x = _images()
    first = augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(4)))
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(5)))


def test_generator_learns_through_diffaugment() -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import PluginManager
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    plugins = PluginManager(warn=lambda message: None).load()
    config = ConfigBuilder().add_mapping({
        "dataset": "digits", "arch": {"name": "dcgan", "ngf": 8, "ndf": 8}, "augment": "diffaugment",
        "steps": 2, "batch_size": 8, "latent_dim": 8, "tracking": False, "metrics": "none", "device": "cpu",
    }, "test").build(plugins.registry)
    trainer = Trainer(build(plugins, config), plugins)
    real, labels = trainer.batches.next()
    loss, _ = trainer.g_loss_fn(8, real, labels, 1)
    loss.backward()
    grads = [p.grad for p in trainer.b.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    x = _images().requires_grad_(True)
    make("augmentation", "diffaugment").augment(x, torch.Generator().manual_seed(0)).sum().backward()
    assert float(x.grad.abs().sum()) > 0


class _Counting:
    """An augmentation that counts the samples it is given, and marks them (adds 0: values unchanged)."""

    def __init__(self) -> None:
        self.samples = 0

    def augment(self, x: torch.Tensor, generator: Any) -> torch.Tensor:
        self.samples += x.shape[0]
        return x + 0.0


class _CountingPlugin:
    def __init__(self) -> None:
        self.made = _Counting()

    @hookimpl
    def register_augmentations(self, register: Any) -> None:
        register("counting", lambda: self.made, summary="counts D's inputs")


def test_every_d_input_is_augmented_in_training_and_none_in_evaluation() -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    plugin = _CountingPlugin()
    manager = make_plugin_manager(plugin)
    config = ConfigBuilder().add_mapping({
        "dataset": "tiny-vectors", "augment": "counting", "reg": "gp", "steps": 2, "batch_size": 8, "latent_dim": 2,
        "tracking": False, "metrics": "diagnostics", "device": "cpu", "arch": {"name": "mlp", "hidden_scale": 0.125},
    }, "test").build(manager.registry)
    trainer = Trainer(build(manager, config), manager)
    trainer.select_metrics()
    trainer.train_step()
    # D step: real 8 + fake 8 (and the gradient penalty's 8 interpolates); G step: fake 8
    assert plugin.made.samples == 8 + 8 + 8 + 8
    before = plugin.made.samples
    trainer.ctx.step = 1
    metrics = trainer.evaluate(1)
    assert "diag.p_real_real" in metrics
    assert plugin.made.samples == before


@pytest.mark.slow
def test_a_population_with_diffaugment_follows_its_single_runs() -> None:
    """Each replica draws its augmentation from its own generator, as its single run draws from the global one."""
    from test_population import _population_and_singles, _weights

    population, singles = _population_and_singles(
        "0-1", steps=10, dataset={"name": "digits"}, arch={"name": "dcgan64"}, augment="diffaugment", reg="r1")
    for replica, single in zip(population, singles):
        reference = _weights(single)
        gap = float((_weights(replica) - reference).norm() / reference.norm())
        assert gap < 1e-6, f"seed {replica.config.seed}: relative difference {gap}"


# ---- objectives written on the step object ---------------------------------------------------
class _StepObjective:
    """The non-saturating game plus a small penalty on D's real scores, written on the step object."""

    def discriminator_loss(self, step: Any) -> dict[str, torch.Tensor]:
        real, fake = step.critic(step.real), step.critic(step.fake)
        adv = step.mean(step.head.real_loss(step.scores(step.real))) + step.mean(step.head.fake_loss(step.scores(step.fake)))
        return {"adv": adv, "drift": 1e-3 * step.mean(real.pow(2) + 0 * fake)}

    def generator_loss(self, step: Any) -> torch.Tensor:
        return step.mean(step.head.real_loss(step.scores(step.fake)))


class _StepObjectivePlugin:
    @hookimpl
    def register_losses(self, register: Any) -> None:
        register("step-ns", _StepObjective, summary="non-saturating with a drift term, on the step object")


def test_an_objective_on_the_step_object_trains_and_its_terms_are_logged() -> None:
    values = run_steps(loss="step-ns", dataset="tiny-vectors", steps=3, plugins=[_StepObjectivePlugin()])
    assert len(values["loss.d.adv"]) == len(values["loss.d.drift"]) == 3
    for total, adv, drift in zip(values["loss.d"], values["loss.d.adv"], values["loss.d.drift"]):
        assert drift > 0 and total == pytest.approx(adv + drift, rel=1e-5)
    assert "loss.g.adv" not in values  # a bare tensor is one unnamed term


def test_an_objective_that_does_not_declare_vectorisable_trains_its_seeds_one_after_another() -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.train.build import build
    from ganlab.train.population.setup import why_sequential

    manager = make_plugin_manager(_StepObjectivePlugin())
    config = ConfigBuilder().add_mapping({"dataset": "tiny-vectors", "loss": "step-ns", "tracking": False,
                                          "device": "cpu", "metrics": "none"}, "test").build(manager.registry)
    assert why_sequential(build(manager, config)) == (
        "loss 'step-ns' does not declare vectorisable = True (its terms reduce with step.mean, and it keeps no "
        "state of its own for each run)")


class _NamedTermsObjective:
    """The non-saturating game in named terms, declared vectorisable: a population stacks it."""

    vectorisable = True

    def discriminator_loss(self, step: Any) -> Any:
        head = step.head
        return {"real": step.mean(head.real_loss(step.scores(step.real))),
                "fake": step.mean(head.fake_loss(step.scores(step.fake)))}

    def generator_loss(self, step: Any) -> Any:
        return {"ns": step.mean(step.head.real_loss(step.scores(step.fake)))}


class _OldContractObjective:
    """Written for hookspec 1.x (scores only): refused since 2.0."""

    def d_loss(self, head: Any, real_logits: torch.Tensor, fake_logits: torch.Tensor, real_labels: Any = None) -> Any:
        return head.real_loss(real_logits).mean()

    def g_loss(self, head: Any, fake_logits: torch.Tensor) -> Any:
        return head.real_loss(fake_logits).mean()


class _MorePlugin:
    @hookimpl
    def register_losses(self, register: Any) -> None:
        register("named-terms", _NamedTermsObjective, summary="non-saturating, in named terms")
        register("old-contract", _OldContractObjective, summary="d_loss and g_loss (hookspec 1.x)")


def test_named_terms_of_a_scores_objective_are_logged_per_replica_in_a_population() -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.train.population.launch import run_population

    seen: dict[int, list[dict[str, float]]] = {}

    class Watch:
        @hookimpl
        def on_step_end(self, ctx: Any, losses: dict[str, Any]) -> None:
            seen.setdefault(ctx.config.seed, []).append({k: float(v) for k, v in losses.items()})

    manager = make_plugin_manager(_MorePlugin(), Watch())
    config = ConfigBuilder().add_mapping({
        "dataset": "tiny-vectors", "loss": "named-terms", "reg": "r1", "steps": 2, "batch_size": 8, "latent_dim": 2,
        "seeds": "0,1", "tracking": False, "metrics": "none", "device": "cpu",
        "arch": {"name": "mlp", "hidden_scale": 0.125}}, "test").build(manager.registry)
    run_population(config, manager, progress=False)
    assert sorted(seen) == [0, 1]
    for rows in seen.values():
        for row in rows:
            assert row["loss.d"] == pytest.approx(row["loss.d.real"] + row["loss.d.fake"] + row["loss.d.r1"], rel=1e-5)
            assert row["loss.g"] == pytest.approx(row["loss.g.ns"], rel=1e-6)
    assert seen[0][0]["loss.d.real"] != seen[1][0]["loss.d.real"]  # each replica its own


def test_an_objective_written_for_the_old_contract_is_refused_in_one_line_saying_what_to_rename() -> None:
    from ganlab.config import ConfigBuilder
    from ganlab.errors import ComponentError
    from ganlab.train.build import build

    manager = make_plugin_manager(_MorePlugin())
    config = ConfigBuilder().add_mapping({"dataset": "tiny-vectors", "loss": "old-contract", "tracking": False,
                                          "device": "cpu", "metrics": "none"}, "test").build(manager.registry)
    with pytest.raises(ComponentError) as caught:
        build(manager, config)
    line = str(caught.value)
    assert "\n" not in line and caught.value.exit_code == 2
    assert line.startswith("loss 'old-contract' (plugin ") and "hookspec 1.x" in line
    assert "rename d_loss(head, real_logits, fake_logits, real_labels) to discriminator_loss(step)" in line
    assert "g_loss(head, fake_logits) to generator_loss(step)" in line
