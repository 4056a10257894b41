"""``head.scores``: a two-class head fed one score s (z = [s, 0]) or two units (z_real, z_fake).

With one score the head must be, in float64, exactly the two-unit head evaluated at z = [s, 0]: the
same probabilities, losses and gradients, and the closed forms of docs/heads.md ("The heads") in s
(softmax: σ(s), the sigmoid head itself; sparsemax: clip((s + 1)/2, 0, 1); entmax15). Then D's width
follows the head for every architecture, a population's replicas follow their single runs, the option
is recorded as a param (old runs read as the two-unit default), and what cannot work is refused.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import _registry

from ganlab.errors import ComponentError, ConfigError

#: the two-class heads with a map over (real, fake), and each one's α (1.0: softmax)
TWO_CLASS = [("softmax", {}, 1.0), ("sparsemax", {}, 2.0), ("entmax", {}, 1.5), ("entmax", {"alpha": 1.25}, 1.25)]
S = torch.tensor([-1e3, -40.0, -3.0, -2.0, -1.2, -1.0, -0.6, -0.1, 0.0, 0.4, 0.99, 1.0, 1.5, 2.0, 2.7, 35.0, 1e3],
                 dtype=torch.float64)


def make_head(name: str, **options: Any) -> Any:
    return _registry().get("head", name).create(options)


def _id(spec: tuple) -> str:
    return spec[0] + "".join(f"-{k}{v}" for k, v in spec[1].items())


@pytest.mark.parametrize("spec", TWO_CLASS, ids=_id)
def test_one_score_is_the_two_unit_head_at_s_and_zero_in_float64(spec: tuple) -> None:
    name, options, _ = spec
    one, two = make_head(name, scores=1, **options), make_head(name, **options)
    s = S.clone().unsqueeze(-1).requires_grad_(True)
    z = torch.cat([S.unsqueeze(-1), torch.zeros_like(S).unsqueeze(-1)], dim=-1).requires_grad_(True)
    assert one.p_real(s).dtype == torch.float64
    assert torch.equal(one.p_real(s), two.p_real(z))
    assert torch.equal(one.probs(s), two.probs(z))
    target = torch.arange(len(S)) % 2
    for method in ("real_loss", "fake_loss"):
        assert torch.equal(getattr(one, method)(s), getattr(two, method)(z)), method
    assert torch.equal(one.loss(s, target), two.loss(z, target))
    # the gradient with respect to s is the two-unit head's with respect to z_real (t = z_real - z_fake = s)
    (one.real_loss(s).sum() + one.fake_loss(s).sum()).backward()
    (two.real_loss(z).sum() + two.fake_loss(z).sum()).backward()
    assert torch.equal(s.grad[:, 0], z.grad[:, 0])


def test_one_score_softmax_is_the_sigmoid_head() -> None:
    one, sigmoid = make_head("softmax", scores=1), make_head("sigmoid")
    s = S.unsqueeze(-1)
    torch.testing.assert_close(one.p_real(s), torch.sigmoid(S), rtol=0, atol=1e-15)
    torch.testing.assert_close(one.real_loss(s), torch.nn.functional.softplus(-S), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(one.fake_loss(s), torch.nn.functional.softplus(S), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(one.real_loss(s), sigmoid.real_loss(s), rtol=1e-15, atol=1e-15)


def test_one_score_sparsemax_closed_forms() -> None:
    one = make_head("sparsemax", scores=1)
    s = S.unsqueeze(-1)
    torch.testing.assert_close(one.p_real(s), ((S + 1) / 2).clamp(0, 1), rtol=0, atol=1e-15)
    # the sparsemax loss on two classes is a modified Huber loss of the margin (SCIENCE.md §2)
    def huber(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t >= 1, torch.zeros_like(t), torch.where(t <= -1, -t, (1 - t) ** 2 / 4))

    torch.testing.assert_close(one.real_loss(s), huber(S), rtol=1e-15, atol=1e-12)
    torch.testing.assert_close(one.fake_loss(s), huber(-S), rtol=1e-15, atol=1e-12)  # fake: the margin is -s


def test_one_score_entmax15_closed_form() -> None:
    p = make_head("entmax", scores=1).p_real(S.unsqueeze(-1))
    inside = (S + torch.sqrt((8 - S**2).clamp(min=0))) ** 2 / 16
    expected = torch.where(S >= 2, torch.ones_like(S), torch.where(S <= -2, torch.zeros_like(S), inside))
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("spec", TWO_CLASS, ids=_id)
def test_the_default_is_two_units_and_one_score_asks_d_for_one(spec: tuple) -> None:
    name, options, _ = spec
    assert _registry().get("head", name).options["scores"].default == 2
    assert make_head(name, **options).num_logits(1) == 2 and make_head(name, **options).num_logits(4) == 5
    one = make_head(name, scores=1, **options)
    assert one.num_logits(1) == 1
    with pytest.raises(ComponentError, match=r"head.scores=1 .* cannot separate 4 real classes plus fake; use head.scores=2"):
        one.num_logits(4)
    with pytest.raises(ComponentError, match=r"expects one score per sample, shape \(B, 1\), got \(3, 2\)"):
        one.p_real(torch.zeros(3, 2))


def test_scores_takes_1_or_2() -> None:
    with pytest.raises(ConfigError, match="head.scores must be one of 1, 2, not 3"):
        make_head("sparsemax", scores=3)
    assert make_head("softmax", scores="1").scores == 1  # as --set gives it


def test_what_one_score_cannot_train_is_refused() -> None:
    from conftest import make

    from ganlab.testing import tiny_vector_data

    data = tiny_vector_data(64, classes=3)
    one = make_head("sparsemax", scores=1)
    # margin games never use the map: sparsemax with one score would be the sigmoid run
    with pytest.raises(ComponentError, match="head.scores=1 trains the same network as --head sigmoid"):
        make("loss", "hinge").check("sparsemax", one, data)
    make("loss", "hinge").check("sigmoid", make_head("sigmoid"), data)
    # K + 1 classes keep K + 1 units
    with pytest.raises(ComponentError, match="needs K\\+1 = 4 scores"):
        make("loss", "nonsaturating", labeled=12).check("sparsemax", one, data)
    with pytest.raises(ComponentError, match="loss 'acgan'"):
        make("loss", "acgan").check("sparsemax", one, data)


def test_old_runs_without_the_param_read_as_two_units() -> None:
    from ganlab.compare.stats import _value

    old = SimpleNamespace(data=SimpleNamespace(params={"head.name": "softmax"}))
    new = SimpleNamespace(data=SimpleNamespace(params={"head.name": "softmax", "head.scores": "1"}))
    sigmoid = SimpleNamespace(data=SimpleNamespace(params={"head.name": "sigmoid"}))
    assert (_value(old, "head.scores"), _value(new, "head.scores"), _value(sigmoid, "head.scores")) == ("2", "1", "-")


# ---- training with each form ----------------------------------------------------------------------
def _config(**settings: Any) -> tuple[Any, Any]:
    from ganlab.config import ConfigBuilder
    from ganlab.testing import make_plugin_manager

    plugins = make_plugin_manager()
    base = {"steps": 4, "batch_size": 16, "latent_dim": 8, "tracking": False, "metrics": "diagnostics",
            "eval_every": 0, "sample_every": 0, "eval_samples": 64, "device": "cpu", "log_every": 1}
    return ConfigBuilder().add_mapping({**base, **settings}, "test").build(plugins.registry), plugins


def _width(ctx: Any) -> int:
    """The number of scores D emits for a batch of G's samples."""
    with torch.no_grad():
        return int(ctx.discriminator(ctx.generator(torch.randn(3, ctx.config.latent_dim))).shape[-1])


# every architecture, on data it takes (the text ones on a small oracle)
ARCHS = {
    "mlp": ({"name": "mlp", "hidden_scale": 0.05}, {"name": "tiny-vectors"}),
    "dcgan": ({"name": "dcgan", "ngf": 4, "ndf": 4}, {"name": "tiny-images"}),
    "lstm": ({"name": "lstm", "hidden": 8, "embedding": 4},
             {"name": "oracle", "vocab_size": 5, "seq_len": 4, "samples": 64, "test_samples": 16}),
    "conv": ({"name": "conv", "dim": 8, "blocks": 1},
             {"name": "oracle", "vocab_size": 5, "seq_len": 4, "samples": 64, "test_samples": 16}),
}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("scores", [1, 2])
def test_a_tiny_run_trains_with_each_form_on_every_architecture(arch: str, scores: int) -> None:
    import torch

    from ganlab.train.runner import run

    arch_table, dataset = ARCHS[arch]
    config, plugins = _config(head={"name": "sparsemax", "scores": scores}, arch=arch_table, dataset=dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ctx = run(config, plugins, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert ctx.step == 4 and _width(ctx) == scores  # D's last layer is the head's
    assert config.options_of("head")["scores"] == scores  # the resolved config the tracker records as params
    assert all(math.isfinite(float(p.detach().abs().sum())) for p in ctx.discriminator.parameters())


def test_a_population_with_one_score_follows_its_single_runs() -> None:
    from ganlab.train.population.launch import run_population
    from ganlab.train.runner import run

    settings = {"head": {"name": "entmax", "scores": 1}, "dataset": {"name": "ring8"},
                "arch": {"name": "mlp", "hidden_scale": 0.125}, "steps": 20, "metrics": "none"}
    config, plugins = _config(seeds="0-1", **settings)
    population = run_population(config, plugins, progress=False)
    for replica in population:
        single_config, single_plugins = _config(seed=replica.config.seed, **settings)
        single = run(single_config, single_plugins, progress=False)
        assert _width(single) == 1
        mine = torch.cat([p.detach().flatten() for p in replica.discriminator.parameters()])
        theirs = torch.cat([p.detach().flatten() for p in single.discriminator.parameters()])
        assert float((mine - theirs).abs().max()) < 1e-5


@pytest.mark.slow
def test_the_param_is_recorded(workdir: Any, mlflow_client: Any) -> None:
    from conftest import TINY, run_in_process

    done = run_in_process(["run", *TINY, "--dataset", "ring8", "--set", "arch.hidden_scale=0.05", "--head",
                           "softmax", "--set", "head.scores=1", "--set", "metrics=none"], workdir)
    assert done.returncode == 0, done.stderr
    (recorded,) = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert recorded.data.params["head.scores"] == "1"
