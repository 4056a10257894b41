"""Packing (PacGAN, Lin et al. 2018): D scores ``pack`` samples jointly, for any architecture and head.

In process: the wrapper's reshaping in closed form, the engine's D and G losses on packs, the memory
estimate. Through the real CLI: every head and loss trains with pack 2, images pack by channels, bad
values are refused in one line before any run exists, and pack 1 is bit-identical to no pack at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import TINY, _registry, cli_in_process, process_state_restored, run_in_process
from ganlab.errors import GanlabError
from ganlab.train.packing import PackedDiscriminator, build_networks, check_pack, packed_shape

ERROR = "ganlab: error:"
#: a shrunk mlp on the 2-D ring: a run takes a couple of seconds
RING = ["--dataset", "ring8", "--set", "dataset.samples=512", "--set", "arch.hidden_scale=0.05"]


def only_run(client: Any) -> Any:
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


def artifact(run: Any, name: str) -> dict[str, torch.Tensor]:
    return torch.load(Path(run.info.artifact_uri.replace("file://", "")) / name, weights_only=True)


# ---- the wrapper, in closed form -------------------------------------------------
def test_a_pack_of_vectors_is_scored_as_its_samples_concatenated() -> None:
    torch.manual_seed(0)
    m, d, batch = 3, 2, 12
    inner = nn.Sequential(nn.Linear(m * d, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(batch, d)
    scores = PackedDiscriminator(inner, m)(x)
    packs = torch.stack([torch.cat([x[p * m + j] for j in range(m)]) for p in range(batch // m)])
    expected = inner(packs)
    assert scores.shape == (batch, 2)  # one row per sample: each carries its pack's score
    for i in range(batch):
        assert torch.equal(scores[i], expected[i // m]), i


def test_a_pack_of_images_concatenates_their_channels() -> None:
    torch.manual_seed(0)
    m, c, batch = 2, 3, 6
    inner = nn.Sequential(nn.Conv2d(m * c, 4, 3), nn.Flatten(), nn.LazyLinear(1))
    x = torch.randn(batch, c, 5, 5)
    scores = PackedDiscriminator(inner, m)(x)
    packs = torch.stack([torch.cat([x[p * m], x[p * m + 1]], dim=0) for p in range(batch // m)])
    assert packs.shape == (batch // m, *packed_shape((c, 5, 5), m)) == (3, 6, 5, 5)
    expected = inner(packs)
    assert all(torch.equal(scores[i], expected[i // m]) for i in range(batch))


def test_a_batch_of_partial_packs_is_completed_with_its_first_samples() -> None:
    """Only outside training (evaluation chunks, diagnostics): training batches are whole packs."""
    torch.manual_seed(0)
    inner = nn.Linear(4 * 2, 1)
    x = torch.randn(5, 2)
    scores = PackedDiscriminator(inner, 4)(x)
    second = torch.cat([x[4], x[0], x[1], x[2]])
    assert scores.shape == (5, 1)
    assert torch.equal(scores[4], inner(second[None])[0])
    assert torch.equal(scores[0], scores[3])


def test_real_and_fake_in_one_call_never_share_a_pack() -> None:
    """The engine scores cat(real, fake) in one D call and splits at B: the same as two calls."""
    torch.manual_seed(0)
    wrapped = PackedDiscriminator(nn.Linear(4, 1), 2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    together = wrapped(torch.cat((real, fake))).split(8)
    assert torch.equal(together[0], wrapped(real)) and torch.equal(together[1], wrapped(fake))


def test_pack_1_calls_the_architecture_exactly_as_without_packing() -> None:
    calls: list[tuple[int, ...]] = []
    made = (nn.Linear(1, 2), nn.Linear(2, 1))

    def build(shape: tuple[int, ...]) -> Any:
        calls.append(shape)
        return made

    assert build_networks(build, (2,), 1) is made and calls == [(2,)]
    calls.clear()
    generator, discriminator = build_networks(build, (3, 8, 8), 4)
    assert calls == [(3, 8, 8), (12, 8, 8)]  # G for the data, D for packs of 4
    assert generator is made[0] and isinstance(discriminator, PackedDiscriminator)
    assert discriminator.inner is made[1] and discriminator.pack == 4


def test_check_pack_names_what_would_be_right() -> None:
    check_pack(1, 7, 3, 11, "nonsaturating")  # pack 1: nothing to check
    check_pack(4, 64, 50_000, 1, "nonsaturating")
    with pytest.raises(GanlabError, match=r"batch_size 64 is not divisible by pack 3.*--batch-size 63 or 66"):
        check_pack(3, 64, 50_000, 1, "nonsaturating")
    with pytest.raises(GanlabError, match=r"only 6 samples.*4 does not divide"):
        check_pack(4, 16, 6, 1, "nonsaturating")
    with pytest.raises(GanlabError, match=r"loss 'minimax'.*11 classes.*pack 1"):
        check_pack(2, 64, 50_000, 11, "minimax")


# ---- the engine's steps and the memory estimate, on a real build --------------------
@pytest.fixture
def packed_build(tmp_path: Path) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import PluginManager
    from ganlab.train.build import build

    plugins = PluginManager(warn=lambda message: None).load()
    config = ConfigBuilder().add_mapping({
        "pack": 2, "batch_size": 8, "latent_dim": 4, "device": "cpu", "tracking": False,
        "data_root": str(tmp_path), "arch": {"name": "mlp", "hidden_scale": 0.05, "dropout": 0.0},
        "dataset": {"name": "ring8", "samples": 64},
    }, "test").build(plugins.registry)
    return build(plugins, config)


def test_the_d_and_g_steps_are_pacgans_losses(packed_build: Any) -> None:
    from ganlab.train.engine import make_step_functions

    b = packed_build
    assert b.architecture.samplewise_discriminator  # the one-call D step is the one under test
    inner, head = b.discriminator.inner, b.head
    assert inner.main[0].in_features == 4  # ring8's (2,) packed by 2
    d_loss_fn, g_loss_fn = make_step_functions(b)
    real = b.data.x[:8]

    def packs(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(4, 4)

    torch.manual_seed(1)
    d_loss, _ = d_loss_fn(real, None, 1, 0)
    torch.manual_seed(1)
    fake = b.generator(torch.randn(8, 4))
    expected = head.real_loss(inner(packs(real))).mean() + head.fake_loss(inner(packs(fake))).mean()
    assert torch.allclose(d_loss, expected, rtol=1e-6, atol=1e-7)

    torch.manual_seed(2)
    g_loss, _ = g_loss_fn(8, real, None, 1)
    torch.manual_seed(2)
    expected_g = head.real_loss(inner(packs(b.generator(torch.randn(8, 4))))).mean()
    assert torch.allclose(g_loss, expected_g, rtol=1e-6, atol=1e-7)


def test_the_memory_estimate_measures_a_packed_discriminator(packed_build: Any) -> None:
    from ganlab.train.memory import check_step, kept_bytes_per_sample

    b = packed_build
    g_kept, d_kept = kept_bytes_per_sample(b.config, b.device, b.generator, b.discriminator)
    assert g_kept > 0 and d_kept > 0  # 0 would mean the forward failed on the probe batches
    check_step(b.config, b.device, b.generator, b.discriminator, b.data)


def test_the_memory_estimate_counts_whole_packs_of_four() -> None:
    """Probe batches of 2 and 4 samples are one pack of 4 each: their difference would say a packed
    D keeps nothing per sample. Whole packs are measured, and a sample's share is a quarter pack's."""
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import PluginManager
    from ganlab.train.build import build
    from ganlab.train.memory import _kept_by, kept_bytes_per_sample
    from ganlab.train.packing import PackedDiscriminator

    plugins = PluginManager(warn=lambda message: None).load()
    settings = {"batch_size": 8, "latent_dim": 4, "device": "cpu", "tracking": False,
                "arch": {"name": "mlp", "hidden_scale": 0.05, "dropout": 0.0}, "dataset": {"name": "ring8", "samples": 64}}
    packed = build(plugins, ConfigBuilder().add_mapping({**settings, "pack": 4}, "test").build(plugins.registry))
    assert isinstance(packed.discriminator, PackedDiscriminator)
    _, per_sample = kept_bytes_per_sample(packed.config, packed.device, packed.generator, packed.discriminator)
    inner = packed.discriminator.inner
    with torch.no_grad():
        two, four = torch.randn(2, 8), torch.randn(4, 8)  # 2 and 4 packs of four 2-D points
    per_pack = (_kept_by(lambda: inner(four), four)[0] - _kept_by(lambda: inner(two), two)[0]) // 2
    assert per_pack > 0
    assert per_pack / 4 <= per_sample <= per_pack / 2, (per_sample, per_pack)  # plus the repeated scores


# ---- through the real CLI -------------------------------------------------------
HEADS = [c.name for c in _registry().of_kind("head")]


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_every_head_trains_with_pack_2(workdir: Path, mlflow_client: Any, head: str) -> None:
    loss = "minimax" if HEADS.index(head) % 2 else "nonsaturating"  # every loss with some head
    # in this process (the refusals below go through real subprocesses): four runs, without four imports
    assert cli_in_process(["run", *TINY, *RING, "--head", head, "--loss", loss, "--pack", "2"]) == 0
    run = only_run(mlflow_client)
    assert run.info.status == "FINISHED" and run.data.params["pack"] == "2"
    assert {"diag.p_real_real", "modes.captured"} <= set(run.data.metrics)  # evaluation scores packs too
    weights = artifact(run, "discriminator.pt")
    assert weights["inner.main.0.weight"].shape[1] == 4, "D's input is a pack of two 2-D points"
    assert artifact(run, "generator.pt")["main.0.weight"].shape[1] == 8  # G is built for single samples


def test_images_are_packed_by_channels_with_a_convolutional_d(workdir: Path, mlflow_client: Any) -> None:
    # eval_samples 202: evaluation chunks that are not whole packs must still be scored
    assert cli_in_process(["run", *TINY, "--arch", "dcgan", "--set", "arch.ngf=4", "--set", "arch.ndf=4",
                           "--set", "dataset.size=8", "--head", "entmax", "--pack", "4", "--set", "eval_samples=202",
                           "--set", "metrics=diagnostics"]) == 0
    run = only_run(mlflow_client)
    assert run.info.status == "FINISHED" and "diag.p_real_fake" in run.data.metrics
    first_conv = next(v for k, v in artifact(run, "discriminator.pt").items() if k.endswith("weight") and v.dim() == 4)
    assert first_conv.shape[1] == 4, "four 1-channel digits make a 4-channel pack"


@pytest.mark.parametrize("args, says", [
    (["--pack", "3"], "batch_size 16 is not divisible by pack 3"),
    (["--pack", "0"], "pack must be >= 1, not 0"),
    (["--set", "pack=1.5"], "pack must be an int"),
    (["--pack", "2", "--head", "softmax", "--set", "loss.labeled=16"], "trains D to classify each real sample"),
    (["--pack", "4", "--set", "dataset.samples=6"], "only 6 samples"),
], ids=["indivisible", "zero", "not-an-int", "semi-supervised", "dataset-smaller-than-batch"])
def test_bad_pack_is_refused_in_one_line_before_any_run(workdir: Path, mlflow_client: Any, args: list[str],
                                                        says: str) -> None:
    out = run_in_process(["run", *TINY, *RING, *args], workdir)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith(ERROR) and says in lines[-1], out.stderr
    assert all(line.startswith("ganlab: ") for line in lines), out.stderr  # no traceback
    assert mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]) == []


@pytest.mark.slow
def test_pack_1_is_bit_identical_to_no_pack(workdir: Path, mlflow_client: Any) -> None:
    common = ["run", *TINY, *RING, "--set", "metrics=none", "--deterministic", "--seed", "3"]
    for extra in ([], ["--pack", "1"]):
        with process_state_restored():  # --deterministic
            out = run_in_process([*common, *extra, "--experiment", "pack-" + ("set" if extra else "unset")], workdir)
        assert out.returncode == 0, out.stderr
    runs = {r.data.params["experiment"]: r for r in mlflow_client.search_runs(
        [e.experiment_id for e in mlflow_client.search_experiments()])}
    unset, one = runs["pack-unset"], runs["pack-set"]
    assert unset.data.params["pack"] == one.data.params["pack"] == "1"
    for name in ("generator.pt", "discriminator.pt"):
        a, b = artifact(unset, name), artifact(one, name)
        assert a.keys() == b.keys() and "main.0.weight" in a  # no wrapper with pack 1
        assert all(torch.equal(a[k], b[k]) for k in a), name
