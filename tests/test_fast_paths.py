"""The engine's fast paths are correct: mixed precision, torch.compile and its fallback,
CUDA-only layouts and optimisers.

What needs CUDA (fp16 numerics, channels_last, fused Adam, the no-sync check)
is skipped here with the reason when no GPU is present; the configuration
paths around them are tested on every machine.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import TINY

from ganlab.train.build import build
from ganlab.config import ConfigBuilder
from ganlab.errors import GanlabError
from ganlab.train.engine import Trainer, make_step_functions
from ganlab.plugins import PluginManager
from ganlab.train.runtime import autocast

CUDA = torch.cuda.is_available()
TEST_PLUGINS = Path(__file__).parent / "plugins_for_tests"
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device; this machine has none")

#: tiny networks on 8x8 digits: a sixteenth of the article's MLP widths, or a 4-channel DCGAN
TINY_SETS = {"mlp": ["dataset.size=8", "arch.hidden_scale=0.0625"],
             "dcgan": ["dataset.size=8", "arch.ngf=4", "arch.ndf=4"]}


def make_trainer(arch: str = "mlp", sets: list[str] = (), **settings: Any) -> Trainer:
    plugins = PluginManager(warn=lambda message: None).load()
    flags = {"arch": arch, "head": "sigmoid", "loss": "nonsaturating", "dataset": "digits", "steps": 3,
             "batch_size": 16, "latent_dim": 8, "device": "cpu", "tracking": False, "metrics": "none",
             "sample_every": 0, "eval_every": 0, "seed": 0, **settings}
    config = ConfigBuilder().add_flags(flags).add_sets([*TINY_SETS[arch], *sets]).build(plugins.registry)
    return Trainer(build(plugins, config), plugins)


def train_losses(trainer: Trainer, steps: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(steps):
        losses = trainer.train_step()
        out.append((float(losses["loss.d"]), float(losses["loss.g"])))
    return out


# ---- bf16 -------------------------------------------------------------------------
def test_bf16_runs_networks_in_bf16_and_losses_in_float32() -> None:
    trainer = make_trainer(precision="bf16")
    seen: list[torch.dtype] = []
    handle = trainer.b.discriminator.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        losses = trainer.train_step()
    finally:
        handle.remove()
    # the discriminator really ran under bf16 autocast (otherwise this test proves nothing) ...
    assert seen and set(seen) == {torch.bfloat16}
    # ... and the head turned its scores into float32 losses
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert math.isfinite(float(value)), name
    for d_loss, g_loss in train_losses(trainer, 4):
        assert math.isfinite(d_loss) and math.isfinite(g_loss)


@pytest.mark.parametrize("head", ["sigmoid", "softmax", "entmax"])
def test_heads_compute_in_float32_under_autocast(head: str) -> None:
    # entmax with alpha != 1.5 uses bisection, which returns NaN in bf16
    # (docs/heads.md, "Proper losses: cross-entropy and Fenchel–Young")
    trainer = make_trainer(head=head, precision="bf16", sets=["head.alpha=1.3"] if head == "entmax" else [])
    b = trainer.b
    x = b.data.x[:16]
    with autocast(b.device, "bf16"):
        scores = b.discriminator(x)
        probs = b.head.probs(scores)
        p_real = b.head.p_real(scores)
        loss = b.head.real_loss(scores)
    assert scores.dtype == torch.bfloat16
    for value in (probs, p_real, loss):
        assert value.dtype == torch.float32
        assert torch.isfinite(value).all()
    # and the float32 result is what the head gives for the same scores outside autocast
    torch.testing.assert_close(probs, b.head.probs(scores.float()))


def test_bf16_cli_run_is_recorded(workdir: Path, cli_inproc, mlflow_client) -> None:
    # the head diagnostics evaluate under bf16 too; the heavier image metrics are not needed here
    args = ["run", "--precision", "bf16", "--device", "cpu", *TINY, "--set", "metrics=diagnostics"]
    assert cli_inproc(args) == 0
    [run] = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert run.info.status == "FINISHED"
    assert run.data.params["precision"] == "bf16"
    assert math.isfinite(run.data.metrics["loss.d"]) and math.isfinite(run.data.metrics["loss.g"])


# ---- fp16 -----------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_fp16_without_cuda_is_refused_in_one_line(device: str, workdir: Path, cli_inproc, mlflow_client,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    if device == "auto" and CUDA:
        pytest.skip("device 'auto' resolves to CUDA on this machine, where fp16 is allowed")
    code = cli_inproc(["run", "--precision", "fp16", "--device", device, *TINY])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("ganlab: error:")]
    assert len(lines) == 1 and "fp16 needs a CUDA device" in lines[0], err
    assert "Traceback" not in err
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert runs == []  # refused before a run was created, so none is left RUNNING


@needs_cuda
def test_fp16_trains_with_a_gradient_scaler_per_network_on_cuda() -> None:
    trainer = make_trainer(precision="fp16", device="cuda")
    assert trainer.scaler_d.is_enabled() and trainer.scaler_g.is_enabled()
    assert trainer.scaler_d is not trainer.scaler_g
    seen: list[torch.dtype] = []
    handle = trainer.b.discriminator.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        results = train_losses(trainer, 5)
    finally:
        handle.remove()
    assert set(seen) == {torch.float16}
    assert all(math.isfinite(d) and math.isfinite(g) for d, g in results)
    assert trainer.scaler_d.get_scale() > 0 and trainer.scaler_g.get_scale() > 0


def test_fp32_keeps_the_scalers_off() -> None:
    trainer = make_trainer()
    assert not trainer.scaler_d.is_enabled() and not trainer.scaler_g.is_enabled()


def cpu_scaler(init_scale: float) -> torch.amp.GradScaler:
    """A real, enabled gradient scaler on the CPU that doubles its scale at every update without an overflow.

    fp16 autocast needs CUDA, but a scaler's bookkeeping (scale, unscale, skip, grow) runs on the CPU
    just the same: swapped into a CPU trainer, it counts the updates each network's step gives it.
    """
    return torch.amp.GradScaler("cpu", init_scale=init_scale, growth_factor=2.0, growth_interval=1)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_fp16_each_network_has_its_own_scaler_updated_once_per_own_step(d_steps: int) -> None:
    trainer = make_trainer(d_steps=d_steps)
    assert trainer.scaler_d is not trainer.scaler_g
    trainer.scaler_d, trainer.scaler_g = cpu_scaler(2.0**4), cpu_scaler(2.0**4)
    train_losses(trainer, 3)
    # one doubling per optimiser step: D's scaler d_steps times an iteration, G's once. A scaler shared
    # by both would be at 2**(4 + 3 * (d_steps + 1)), and one the step ignores at 2**4.
    assert trainer.scaler_d.get_scale() == 2.0 ** (4 + 3 * d_steps)
    assert trainer.scaler_g.get_scale() == 2.0 ** (4 + 3)
    ((d_loss, g_loss),) = train_losses(trainer, 1)
    assert math.isfinite(d_loss) and math.isfinite(g_loss)  # the scaled steps still train


def test_checkpoints_hold_both_scalers_and_an_older_single_scaler_starts_both(tmp_path: Path) -> None:
    from ganlab.train import checkpoint

    trainer = make_trainer()
    trainer.scaler_d, trainer.scaler_g = cpu_scaler(2.0**4), cpu_scaler(2.0**9)
    train_losses(trainer, 2)
    path = checkpoint.save_atomic(trainer.state_dict(), tmp_path, 2, keep=1)
    state = checkpoint.load(path)
    assert "scaler" not in state
    assert (state["scaler_d"]["scale"], state["scaler_g"]["scale"]) == (2.0**6, 2.0**11)

    resumed = make_trainer()
    resumed.scaler_d, resumed.scaler_g = cpu_scaler(1.0), cpu_scaler(1.0)
    resumed.load_state_dict(state)
    assert (resumed.scaler_d.get_scale(), resumed.scaler_g.get_scale()) == (2.0**6, 2.0**11)
    assert resumed.scaler_d.state_dict() == trainer.scaler_d.state_dict()
    assert resumed.scaler_g.state_dict() == trainer.scaler_g.state_dict()

    # a checkpoint written when D and G shared one scaler: still read, and its scaler starts both
    older = {k: v for k, v in state.items() if k not in checkpoint.SCALER_KEYS} | {"scaler": state["scaler_g"]}
    older_path = checkpoint.save_atomic(older, tmp_path / "older", 2, keep=1)
    old = make_trainer()
    old.scaler_d, old.scaler_g = cpu_scaler(1.0), cpu_scaler(1.0)
    old.load_state_dict(checkpoint.load(older_path))
    assert old.scaler_d is not old.scaler_g
    assert (old.scaler_d.get_scale(), old.scaler_g.get_scale()) == (2.0**11, 2.0**11)

    # a file with neither is incomplete, named by what it lacks
    neither = {k: v for k, v in older.items() if k != "scaler"}
    with pytest.raises(GanlabError, match="lacks scaler_d, scaler_g"):
        checkpoint.load(checkpoint.save_atomic(neither, tmp_path / "neither", 2, keep=1))


# ---- torch.compile ----------------------------------------------------------------------
@pytest.mark.slow
def test_compile_gives_the_losses_of_eager(capsys: pytest.CaptureFixture[str]) -> None:
    import torch._dynamo
    import torch._inductor.config
    from torch._dynamo.utils import counters

    # Inductor draws its own random numbers unless told to use torch's: with fallback_random
    # both paths draw the same noise from the same seed. Dropout off for the same reason.
    # config.patch, not monkeypatch.setattr: undoing a setattr on torch's config module
    # deletes the option, and every later compile fails with "fallback_random does not exist".
    torch._dynamo.reset()
    counters.clear()
    eager = train_losses(make_trainer(sets=["arch.dropout=0.0"]), 3)
    with torch._inductor.config.patch(fallback_random=True):
        compiled = train_losses(make_trainer(compile=True, sets=["arch.dropout=0.0"]), 3)
    assert counters["stats"]["unique_graphs"] >= 2, "nothing was compiled"
    assert "continuing uncompiled" not in capsys.readouterr().err
    for (d_e, g_e), (d_c, g_c) in zip(eager, compiled):
        assert math.isfinite(d_c) and math.isfinite(g_c)
        assert d_c == pytest.approx(d_e, rel=1e-3, abs=1e-4)
        assert g_c == pytest.approx(g_e, rel=1e-3, abs=1e-4)


@pytest.mark.slow
def test_compile_failure_warns_once_per_step_function_and_trains_on(workdir: Path, cli) -> None:
    # A real failure: Inductor cannot find a C++ compiler (a common state of a fresh machine).
    # A fresh Inductor cache, so that no kernel compiled earlier can hide the failure.
    env = {"CXX": "/nonexistent/c++", "TORCHINDUCTOR_CACHE_DIR": str(workdir / "inductor-cache")}
    result = cli(["run", "--compile", "--device", "cpu", "--no-tracking", *TINY], env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "torch.compile of the" in line]
    assert len(warnings) == 2, result.stderr  # one line for the D step, one for the G step
    assert any("discriminator step failed" in w for w in warnings)
    assert any("generator step failed" in w for w in warnings)
    assert all(w.startswith("ganlab: warning:") and w.endswith("continuing uncompiled") for w in warnings)
    assert "Traceback" not in result.stderr
    assert "finished at step 4/4" in result.stderr


# ---- the G step skips D's weight gradients --------------------------------------------
def test_g_step_gives_g_the_same_gradients_with_d_frozen() -> None:
    frozen, reference = make_trainer(sets=["arch.dropout=0.0"]), make_trainer(sets=["arch.dropout=0.0"])
    reference.d_trainable = []  # the textbook step: D's weight gradients computed in the G step too
    torch.manual_seed(3)
    frozen.train_step()
    torch.manual_seed(3)
    reference.train_step()
    for mine, theirs in zip(frozen.b.generator.parameters(), reference.b.generator.parameters()):
        assert torch.equal(mine.grad, theirs.grad)
        assert torch.equal(mine, theirs)
    d_params = list(frozen.b.discriminator.parameters())
    assert all(p.requires_grad for p in d_params)
    # the G step added nothing to D's gradients: they are what the D step left, which the reference's
    # G step then accumulated into
    assert any(not torch.equal(p.grad, q.grad) for p, q in zip(d_params, reference.b.discriminator.parameters()))


def test_d_is_trainable_again_when_the_g_step_fails() -> None:
    trainer = make_trainer()
    seen: list[bool] = []

    def failing_g_loss(*args: Any) -> Any:
        seen.extend(p.requires_grad for p in trainer.b.discriminator.parameters())
        raise RuntimeError("injected")

    trainer.g_loss_fn = failing_g_loss
    with pytest.raises(RuntimeError, match="injected"):
        trainer.train_step()
    assert seen and not any(seen)
    assert all(p.requires_grad for p in trainer.b.discriminator.parameters())


# ---- one D call on real and fake together ---------------------------------------------
def count_d_calls(trainer: Trainer) -> list[int]:
    """Batch sizes of every call of D's forward, in order."""
    sizes: list[int] = []
    trainer.b.discriminator.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    return sizes


def separate_d_calls(trainer: Trainer) -> Trainer:
    """The textbook D step: D called on the real batch, then on the fake one."""
    trainer.b.architecture = SimpleNamespace()  # no samplewise_discriminator declaration
    trainer.d_loss_fn, _ = make_step_functions(trainer.b)
    return trainer


def test_samplewise_d_step_gives_the_textbook_loss_and_gradients_in_one_call() -> None:
    joint = make_trainer(sets=["arch.dropout=0.0"])
    textbook = separate_d_calls(make_trainer(sets=["arch.dropout=0.0"]))
    joint_calls, textbook_calls = count_d_calls(joint), count_d_calls(textbook)
    real, labels = joint.batches.next()
    for trainer in (joint, textbook):
        torch.manual_seed(5)  # the same fake batch for both
        trainer.b.opt_d.zero_grad(set_to_none=True)
        trainer.d_loss, _ = trainer.d_loss_fn(real, labels, 1, 0)
        trainer.d_loss.backward()
    assert joint_calls == [32] and textbook_calls == [16, 16]
    # the same numbers up to float32 summation order (a 32-row product blocks differently from two 16-row ones)
    assert torch.allclose(joint.d_loss, textbook.d_loss, rtol=1e-6, atol=1e-7)
    assert float(joint.d_loss.detach()) != 0.0
    for mine, theirs in zip(joint.b.discriminator.parameters(), textbook.b.discriminator.parameters()):
        assert torch.allclose(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7)


def test_batchnorm_discriminators_keep_separate_calls() -> None:
    trainer = make_trainer(arch="dcgan")
    calls = count_d_calls(trainer)
    trainer.train_step()
    # D step: real, then fake; G step: fake
    assert calls == [16, 16, 16]


def test_samplewise_declaration_on_a_batchnorm_discriminator_is_refused() -> None:
    from ganlab.errors import ComponentError
    from ganlab.testing import run_steps

    with pytest.raises(ComponentError) as refused:
        run_steps(arch="bn-mlp", plugins=[str(TEST_PLUGINS / "samplewise_batchnorm.py")], steps=1)
    message = str(refused.value)
    assert "'bn-mlp'" in message and "samplewise_discriminator" in message and "BatchNorm (2)" in message
    assert "\n" not in message


# ---- CUDA-only layouts and optimisers ---------------------------------------------------
def test_cpu_keeps_the_default_layout_and_uses_fused_adam() -> None:
    trainer = make_trainer(arch="dcgan")
    convs = [p for p in trainer.b.discriminator.parameters() if p.dim() == 4]
    wide = [p for p in convs if p.shape[1] > 1]  # a 1-channel kernel has both layouts at once
    assert wide and all(p.is_contiguous() for p in wide)  # channels_last is a CUDA fast path only
    # the fused Adam kernel exists for the CPU since torch 2.4 and is much faster there
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert trainer.b.opt_d.defaults["fused"] and trainer.b.opt_g.defaults["fused"]


@needs_cuda
def test_cuda_uses_channels_last_for_convolutions_and_fused_adam() -> None:
    trainer = make_trainer(arch="dcgan", device="cuda")
    convs = [p for net in (trainer.b.generator, trainer.b.discriminator) for p in net.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert trainer.b.opt_d.defaults["fused"] and trainer.b.opt_g.defaults["fused"]


@needs_cuda
def test_cuda_step_never_synchronises_with_the_host() -> None:
    trainer = make_trainer(arch="dcgan", device="cuda")
    trainer.train_step()  # first call: allocations, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_cuda_population_of_convolutional_replicas_trains(workdir: Path, cli_inproc, mlflow_client) -> None:
    # single CUDA runs keep convolutions channels_last; stacked so for vmap, CUDA's BatchNorm asked
    # the batched tensor a layout question functorch cannot answer (NYI), and every dcgan population failed
    args = ["run", "--arch", "dcgan", "--seeds", "0,1", "--device", "cuda", *TINY, "--set", "metrics=diagnostics",
            "--set", "arch.ngf=8", "--set", "arch.ndf=8"]
    assert cli_inproc(args) == 0
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(math.isfinite(r.data.metrics["loss.d"]) for r in children)
