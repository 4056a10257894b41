"""Latents and InfoGAN: the code layout and its inverse, the plain Gaussian drawing what the engine always
drew, Q's information loss against an independent computation, runs per Q map, exact resume, a learning
test, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import make, run_in_process

from ganlab.testing import run_steps


def test_the_gaussian_latent_draws_what_torch_randn_draws() -> None:
    """Runs recorded before latents were components stay reproducible: the same numbers, in the same order."""
    gaussian = make("latent", "gaussian")  # the engine's own draw, registered by name
    torch.manual_seed(5)
    drawn = gaussian.sample(7, 3, "cpu")
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.randn(7, 3))
    seeded = gaussian.sample(4, 3, "cpu", torch.Generator().manual_seed(2))
    assert torch.equal(seeded, torch.randn(4, 3, generator=torch.Generator().manual_seed(2)))


def test_infogan_latents_hold_one_hot_and_uniform_codes_that_read_back() -> None:
    latent = make("latent", "infogan", categorical=(4, 3), continuous=2)
    z = latent.sample(500, 12, "cpu", torch.Generator().manual_seed(0))
    assert z.shape == (500, 12)
    noise, one_hot_a, one_hot_b, cont = z[:, :3], z[:, 3:7], z[:, 7:10], z[:, 10:]
    for block in (one_hot_a, one_hot_b):
        assert torch.equal(block.sum(dim=1), torch.ones(500)) and set(block.unique().tolist()) == {0.0, 1.0}
    assert cont.min() >= -1 and cont.max() <= 1 and cont.std() > 0.4  # U(-1, 1): sd 0.577
    assert abs(noise.mean().item()) < 0.15 and abs(noise.std().item() - 1) < 0.1
    codes = latent.codes(z)
    assert torch.equal(codes.categorical[0], one_hot_a.argmax(dim=1)) and torch.equal(codes.continuous, cont)
    assert torch.equal(latent.assemble(noise, codes.categorical, codes.continuous), z)


def test_the_sweep_varies_the_first_code_down_each_column_and_nothing_else() -> None:
    latent = make("latent", "infogan", categorical=(5,), continuous=1)
    grid = latent.sweep(5, 3, 10, torch.Generator().manual_seed(0)).view(5, 3, 10)  # rows, columns, latent
    codes = latent.codes(grid.reshape(15, 10)).categorical[0].view(5, 3)
    assert torch.equal(codes, torch.arange(5)[:, None].expand(5, 3))
    others = torch.cat([grid[..., :4], grid[..., 9:]], dim=-1)  # noise and the continuous code
    assert torch.equal(others, others[:1].expand_as(others))
    assert not torch.equal(others[0, 0], others[0, 1])


def test_a_latent_too_small_for_its_codes_is_refused() -> None:
    from ganlab.errors import ComponentError

    with pytest.raises(ComponentError, match="needs latent_dim above its 12 code dimensions"):
        make("latent", "infogan").check(12)


def _bound(objective: Any, latent: Any, q: torch.nn.Module) -> Any:
    objective.use_latent("infogan", latent)
    objective.q = q
    return objective


def test_information_loss_is_the_cross_entropy_and_gaussian_error_with_softmax() -> None:
    latent = make("latent", "infogan", categorical=(3,), continuous=2)
    q = torch.nn.Linear(4, 5).double()
    infogan = _bound(make("loss", "infogan", info_weight=2.0, continuous_weight=0.1), latent, q)
    z = latent.sample(6, 9, "cpu", torch.Generator().manual_seed(1)).double()
    features = torch.randn(6, 4, dtype=torch.float64)
    terms = infogan.information_terms(features, z)

    out = q(features)
    scores, means = out[:, :3], out[:, 3:]
    code = z[:, 4:7].argmax(dim=1)
    cross_entropy = (torch.logsumexp(scores, dim=1) - scores[torch.arange(6), code]).mean()
    gaussian = 0.5 * (means - z[:, 7:]).pow(2).sum(dim=1).mean()
    assert torch.allclose(terms["info_cat"].double(), 2.0 * cross_entropy, atol=1e-6)
    assert torch.allclose(terms["info_cont"].double(), 2.0 * 0.1 * gaussian, atol=1e-10)


def test_a_sparsemax_q_posterior_has_exact_zeros_and_no_loss_once_the_code_wins_by_one() -> None:
    latent = make("latent", "infogan", categorical=(3,), continuous=0)
    infogan = _bound(make("loss", "infogan", q_map="sparsemax"), latent, torch.nn.Identity())
    z = latent.assemble(torch.zeros(2, 1), [torch.tensor([0, 0])], torch.zeros(2, 0))
    clear = torch.tensor([[2.5, 1.4, 0.0], [2.5, 2.0, 0.0]])  # margins 1.1 and 0.5 for code 0
    per_sample = infogan.map.loss(clear, torch.tensor([0, 0]))
    assert per_sample[0].item() == 0.0 and per_sample[1].item() == pytest.approx(0.25 * 0.5 ** 2, abs=1e-6)
    assert infogan.information_terms(clear, z)["info_cat"].item() == pytest.approx(per_sample.mean().item())
    assert (infogan.map.probs(clear)[:, 2] == 0).all()


@pytest.mark.parametrize("q_map", ["softmax", "sparsemax", "entmax"])
def test_infogan_trains_with_each_q_map(q_map: str) -> None:
    values = run_steps(loss={"name": "infogan", "q_map": q_map}, latent={"name": "infogan", "categorical": (3,)},
                       arch={"name": "mlp", "hidden_scale": 0.02}, steps=3, latent_dim=12, metrics="infogan")
    for key in ("loss.d.adv", "loss.d.info_cat", "loss.d.info_cont", "loss.g.info_cat"):
        assert len(values[key]) == 3
    assert 0.0 <= values["infogan.code_accuracy"][-1] <= 1.0 and values["infogan.continuous_mse"][-1] >= 0


def test_q_trains_with_d_and_g_learns_through_it() -> None:
    """Q is in D's optimiser and moves with D's update; the G step's information loss reaches G's weights;
    Q is checkpointed."""
    from ganlab.config import ConfigBuilder
    from ganlab.testing import FAST_SETTINGS, make_plugin_manager
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    manager = make_plugin_manager()
    config = ConfigBuilder().add_mapping({**FAST_SETTINGS, "latent_dim": 16, "metrics": "none"}, "test").add_mapping(
        {"loss": "infogan", "latent": "infogan", "arch": {"name": "mlp", "hidden_scale": 0.02},
         "dataset": "tiny-images"}, "test").build(manager.registry)
    trainer = Trainer(build(manager, config), manager)
    q = trainer.b.auxiliary
    assert q is trainer.b.objective.q and all(any(p is g for g in trainer.b.opt_d.param_groups[0]["params"])
                                              for p in q.parameters())
    before = [p.detach().clone() for p in q.parameters()]
    trainer.train_step()
    assert any(not torch.equal(b, p) for b, p in zip(before, q.parameters()))
    assert "auxiliary" in trainer.state_dict()

    G = trainer.b.generator
    G.zero_grad()
    real, labels = trainer.batches.next()
    _, terms = trainer.g_loss_fn(16, real, labels, 2)
    terms["info_cat"].backward()
    assert sum(float(p.grad.abs().sum()) for p in G.parameters() if p.grad is not None) > 0


def test_an_infogan_run_resumes_exactly(tmp_path: Any) -> None:
    """8 steps in one go, and 4 then `ganlab resume DIR --steps 8`: the same G, D and Q, tensor for tensor."""
    run = ["run", "--batch-size", "16", "--latent-dim", "16", "--dataset", "digits", "--set", "dataset.size=8",
           "--set", "arch.hidden_scale=0.05", "--loss", "infogan", "--latent", "infogan", "--sample-every", "0",
           "--eval-every", "0", "--set", "metrics=none", "--device", "cpu", "--no-tracking",
           "--checkpoint-every", "4"]
    assert run_in_process([*run, "--steps", "8", "--run-dir", "whole"], tmp_path).returncode == 0
    assert run_in_process([*run, "--steps", "4", "--run-dir", "parts"], tmp_path).returncode == 0
    resumed = run_in_process(["resume", "parts", "--steps", "8"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("generator.pt", "discriminator.pt"):
        mine = torch.load(tmp_path / "parts" / name, weights_only=True)
        theirs = torch.load(tmp_path / "whole" / name, weights_only=True)
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), f"{name}:{key}"
    from ganlab.train.checkpoint import list_checkpoints, load

    q_of = [load(list_checkpoints(tmp_path / d / "checkpoints")[-1])["auxiliary"] for d in ("parts", "whole")]
    assert q_of[0].keys() == q_of[1].keys() and all(torch.equal(q_of[0][k], q_of[1][k]) for k in q_of[0])


@pytest.mark.slow
def test_infogan_on_digits_learns_codes_q_can_read(workdir: Any, cli_inproc: Any, mlflow_client: Any) -> None:
    """A learning test: dcgan (ngf = ndf = 16), latent size 64 with one 10-valued categorical code and two
    continuous codes, Q with softmax, 200 steps on digits (about 15 s on one core of the project's Xeon).

    Measured on the change that added InfoGAN (parent commit 982b534, 2026-11-27), infogan.code_accuracy at
    step 200 (chance 0.1): softmax seeds 0, 1, 2: 0.995, 0.998, 0.996 (0.51 at step 100); with
    loss.q_map=entmax 0.919 and sparsemax 0.358 (seed 0), slower to learn. The threshold 0.6 for softmax
    stays far above chance.
    """
    assert cli_inproc(["run", "--arch", "dcgan", "--set", "arch.ngf=16", "--set", "arch.ndf=16", "--dataset",
                       "digits", "--loss", "infogan", "--latent", "infogan", "--latent-dim", "64", "--steps", "200",
                       "--eval-every", "200", "--sample-every", "200", "--set", "metrics=infogan", "--device", "cpu",
                       "--experiment", "info"]) == 0
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("info").experiment_id])
    assert run.data.metrics["infogan.code_accuracy"] >= 0.6
    assert run.data.metrics["infogan.q_zero_fraction"] == 0.0  # softmax never gives an exact zero
    # and `ganlab sample` draws from the same latent: the codes' layout, not plain noise
    assert cli_inproc(["sample", run.info.run_id, "--n", "20", "--out", "s.npy"]) == 0


@pytest.mark.parametrize("args, says", [
    (["--loss", "infogan"], "latent 'gaussian' has none; use --latent infogan"),
    (["--loss", "infogan", "--latent", "infogan", "--latent-dim", "10"], "needs latent_dim above its 12 code"),
    (["--loss", "infogan", "--latent", "infogan", "--latent-dim", "16", "--pack", "2"],
     "a packed D scores packs"),
    (["--loss", "infogan", "--latent", "infogan", "--set", "loss.q_map=gumbel"], "loss.q_map must be one of"),
])
def test_infogan_refusals(tmp_path: Any, args: list[str], says: str) -> None:
    result = run_in_process(["run", "--steps", "2", "--batch-size", "16", "--set", "dataset.size=8", "--set",
                             "arch.hidden_scale=0.05", "--device", "cpu", "--no-tracking", *args], tmp_path)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_population_with_codes_or_q_trains_its_seeds_one_after_another() -> None:
    """InfoGAN's codes are drawn per run, and its Q is not stacked: the declared list says so in one line."""
    from ganlab.config import ConfigBuilder
    from ganlab.testing import FAST_SETTINGS, make_plugin_manager
    from ganlab.train.build import build
    from ganlab.train.population.setup import why_sequential

    manager = make_plugin_manager()

    def built(latent: str) -> Any:
        config = ConfigBuilder().add_mapping({**FAST_SETTINGS, "latent_dim": 16}, "test").add_mapping(
            {"latent": latent, "arch": {"name": "mlp", "hidden_scale": 0.02}, "dataset": "tiny-images"},
            "test").build(manager.registry)
        return build(manager, config)

    assert why_sequential(built("infogan")).startswith("latent 'infogan' does not declare standard_normal = True")
    assert why_sequential(built("gaussian")) is None


def test_a_latent_without_sample_is_refused_in_one_line() -> None:
    from ganlab import hookimpl
    from ganlab.errors import ComponentError

    class Broken:
        @hookimpl
        def register_latents(self, register: Any) -> None:
            register("hollow", lambda: object(), summary="no sample()")

    with pytest.raises(ComponentError, match="latent 'hollow' .* without sample"):
        run_steps(latent="hollow", plugins=[Broken()], steps=1, metrics="none")
