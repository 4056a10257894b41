"""SNGAN's ResNets (``--arch sngan``) and spectral normalisation as an option of every image D: the
published layouts and their parameter counts, shapes at 32/48/64 px, singular values against a
float64 SVD, torch's own spectral norm, every head, conditioning, populations, gradient penalties,
torch.compile, resume, and the refusals."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from conftest import make, run_in_process
from torch import nn

from ganlab.errors import ComponentError

LATENT = 8
TINY_WIDTHS = {"ngf": 8, "ndf": 8}


def sngan(**options: Any) -> Any:
    return make("architecture", "sngan", **options)


def normalised_layers(net: nn.Module) -> list[nn.Module]:
    from ganlab_plugins.architectures.spectral import is_spectrally_normalised

    return [m for m in net.modules() if is_spectrally_normalised(m)]


def weight_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]


# ---- the published layouts ----------------------------------------------------------------
def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def g_block(cin: int, cout: int) -> int:
    """An up-block: BN(cin), conv3 cin->cout, BN(cout), conv3 cout->cout, 1x1 shortcut (BN: scale and shift)."""
    return 2 * cin + conv(cin, cout, 3) + 2 * cout + conv(cout, cout, 3) + conv(cin, cout, 1)


def d_block(cin: int, cout: int, learned_shortcut: bool) -> int:
    """A D block (hidden width = cin, as the paper's code): conv3 cin->cin, conv3 cin->cout, maybe 1x1."""
    return conv(cin, cin, 3) + conv(cin, cout, 3) + (conv(cin, cout, 1) if learned_shortcut else 0)


def published_counts(size: int) -> tuple[int, int]:
    """Parameters of the paper's CIFAR-10 and STL-10 ResNets (appendix B) and the Chainer code's 64x64 pair,
    counted by hand from their layer lists: z = 128, RGB, one score (a linear layer with a bias)."""
    first_d = lambda c: conv(3, c, 3) + conv(c, c, 3) + conv(3, c, 1)  # noqa: E731
    if size == 32:
        g = 128 * 4 * 4 * 256 + 4 * 4 * 256 + 3 * g_block(256, 256) + 2 * 256 + conv(256, 3, 3)
        d = first_d(128) + d_block(128, 128, True) + 2 * d_block(128, 128, False) + 128 + 1
        return g, d
    bottom, widths = (6, [512, 256, 128, 64]) if size == 48 else (4, [1024, 512, 256, 128, 64])
    g = 128 * bottom * bottom * widths[0] + bottom * bottom * widths[0]
    g += sum(g_block(a, b) for a, b in zip(widths, widths[1:])) + 2 * 64 + conv(64, 3, 3)
    d_widths = [64, 128, 256, 512, 1024]
    d = first_d(64) + sum(d_block(a, b, True) for a, b in zip(d_widths, d_widths[1:])) + 1024 + 1
    return g, d


def test_the_32px_pair_has_the_parameters_of_the_papers_layer_list():
    torch.manual_seed(0)
    generator, discriminator = sngan().build((3, 32, 32), 128, 1)
    counts = (sum(p.numel() for p in generator.parameters()), sum(p.numel() for p in discriminator.parameters()))
    assert counts == published_counts(32) == (4_276_739, 1_053_825)


@pytest.mark.slow
@pytest.mark.parametrize("size", (48, 64))
def test_the_48_and_64px_pairs_have_the_published_layers(size):
    torch.manual_seed(0)
    generator, discriminator = sngan().build((3, size, size), 128, 1)
    counts = (sum(p.numel() for p in generator.parameters()), sum(p.numel() for p in discriminator.parameters()))
    assert counts == published_counts(size)
    assert generator.bottom == (6 if size == 48 else 4)
    assert [b.conv2.out_channels for b in generator.blocks] == ([256, 128, 64] if size == 48 else [512, 256, 128, 64])
    assert [b.conv2.out_channels for b in discriminator.blocks] == [64, 128, 256, 512, 1024]
    # 48: the last block keeps 6x6; 64: every block halves, down to 2x2
    assert [getattr(b, "downsample", True) for b in discriminator.blocks] == [True] * 4 + [size == 64]


def test_the_32px_layers_follow_the_paper():
    from ganlab_plugins.architectures.resblocks import DownBlock, FirstDownBlock, UpBlock

    generator, discriminator = sngan().build((3, 32, 32), 128, 1)
    assert (generator.project.in_features, generator.project.out_features) == (128, 4 * 4 * 256)
    assert [type(b) for b in generator.blocks] == [UpBlock] * 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules()), "BatchNorm only in G"
    assert not normalised_layers(generator), "G has no spectral normalisation"
    blocks = list(discriminator.blocks)
    assert [type(b) for b in blocks] == [FirstDownBlock, DownBlock, DownBlock, DownBlock]
    assert [b.downsample for b in blocks[1:]] == [True, False, False]
    assert blocks[2].shortcut is None and blocks[3].shortcut is None, "identity shortcuts where sizes agree"
    assert discriminator.scores.in_features == 128 and discriminator.scores.out_features == 1
    # every convolution and linear layer of D is normalised
    assert normalised_layers(discriminator) == weight_layers(discriminator)
    assert len(weight_layers(discriminator)) == 3 + 3 + 2 + 2 + 1


# ---- shapes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("num_logits", (1, 2, 11))
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", (32, 48, 64))
def test_every_size_builds_and_scores(size, channels, num_logits):
    torch.manual_seed(0)
    generator, discriminator = sngan(**TINY_WIDTHS).build((channels, size, size), LATENT, num_logits)
    fake = generator(torch.randn(3, LATENT))
    assert fake.shape == (3, channels, size, size)
    assert float(fake.detach().abs().max()) <= 1.0, "tanh output"
    scores = discriminator(fake)
    assert scores.shape == (3, num_logits) and scores.dtype == torch.float32
    assert discriminator.features(fake).shape == (3, discriminator.feature_dim)


def test_widths_follow_the_options_in_the_published_ratios():
    generator, discriminator = sngan(ngf=32, ndf=16).build((1, 64, 64), LATENT, 1)
    assert [b.conv2.out_channels for b in generator.blocks] == [16, 8, 4, 2]
    assert [b.conv2.out_channels for b in discriminator.blocks] == [1, 2, 4, 8, 16]


def test_upsampling_is_nearest_unless_bilinear_is_asked_for():
    from ganlab_plugins.architectures.resblocks import UpBlock

    torch.manual_seed(0)
    nearest = UpBlock(2, 2).eval()
    bilinear = UpBlock(2, 2, upsampling="bilinear").eval()
    bilinear.load_state_dict(nearest.state_dict())
    x = torch.randn(1, 2, 4, 4)
    # nearest: each input pixel becomes a 2x2 patch of equal values before the 1x1 shortcut
    shortcut_only = nearest.shortcut(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.equal(shortcut_only[..., ::2, ::2], shortcut_only[..., 1::2, 1::2])
    assert not torch.allclose(nearest(x), bilinear(x))


# ---- spectral normalisation ---------------------------------------------------------------
def top_singular_value(weight: torch.Tensor) -> float:
    return float(torch.linalg.svdvals(weight.detach().double().flatten(1))[0])


def power_iterate(discriminator: nn.Module, x: torch.Tensor, times: int, labels: torch.Tensor | None = None) -> None:
    """Training-mode forwards with the weights unchanged: each runs one power iteration per layer."""
    discriminator.train()
    with torch.no_grad():
        for _ in range(times):
            discriminator(x) if labels is None else discriminator(x, labels)


@pytest.mark.parametrize("arch, shape, options", [
    ("sngan", (3, 32, 32), {"ngf": 8, "ndf": 8, "conditional": True}),
    ("dcgan", (1, 16, 16), {"ngf": 4, "ndf": 8, "spectral_norm": True, "conditional": True}),
    ("mlp", (1, 8, 8), {"d_widths": (16, 12), "spectral_norm": True, "conditional": True}),
])
def test_every_normalised_weight_has_largest_singular_value_one(arch, shape, options):
    """After the power iterations, W / sigma(W) has spectral norm 1 by a float64 SVD, for every layer of D
    (the projection's embedding included), while the raw weights' norms are far from 1."""
    torch.manual_seed(0)
    _, discriminator = make("architecture", arch, **options).build(shape, LATENT, 2, num_classes=3)
    layers = normalised_layers(discriminator)
    assert layers == weight_layers(discriminator) and len(layers) >= 3
    assert discriminator.projection.embed in layers
    raw = [top_singular_value(m.parametrizations.weight.original) for m in layers]
    assert max(abs(s - 1.0) for s in raw) > 0.1, "the test needs weights whose own norm is not 1"
    power_iterate(discriminator, torch.randn(2, *shape), 100, torch.tensor([0, 2]))
    for layer, before in zip(layers, raw):
        assert top_singular_value(layer.weight) == pytest.approx(1.0, abs=1e-3), (layer, before)


def test_the_parametrization_is_torchs_spectral_norm_with_the_same_state():
    """The same draws, the same updates, the same state-dict names as torch.nn.utils.parametrizations.spectral_norm,
    over training forwards between which the weights change (as an optimiser changes them)."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from ganlab_plugins.architectures.spectral import spectral_norm

    torch.manual_seed(3)
    theirs = torch_spectral_norm(nn.Conv2d(3, 6, 3))
    torch.manual_seed(3)
    mine = spectral_norm(nn.Conv2d(3, 6, 3))
    assert list(mine.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 3, 8, 8)
    for _ in range(5):
        assert torch.allclose(mine(x), theirs(x), atol=1e-6, rtol=1e-5)
        with torch.no_grad():
            for net in (mine, theirs):
                net.parametrizations.weight.original.mul_(1.1).add_(0.01)
    for key, value in theirs.state_dict().items():
        assert torch.allclose(mine.state_dict()[key], value, atol=1e-6), key


def test_eval_mode_changes_no_state():
    torch.manual_seed(0)
    _, discriminator = sngan(**TINY_WIDTHS).build((1, 32, 32), LATENT, 1)
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    discriminator.eval()
    discriminator(torch.randn(2, 1, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in discriminator.state_dict().items())
    discriminator.train()
    discriminator(torch.randn(2, 1, 32, 32))
    changed = [k for k, v in discriminator.state_dict().items() if not torch.equal(before[k], v)]
    assert changed and all(k.endswith(("._u", "._v")) for k in changed), "training forwards move u and v only"


def test_spectral_norm_off_gives_a_plain_resnet_d():
    _, discriminator = sngan(spectral_norm=False, **TINY_WIDTHS).build((1, 32, 32), LATENT, 1)
    assert not normalised_layers(discriminator)
    assert not any("parametrizations" in key for key in discriminator.state_dict())


@pytest.mark.slow
def test_a_gradient_penalty_differentiates_twice_through_the_normalisation():
    """gradgradcheck in float64: the second derivative a gradient penalty takes, through W / sigma(W), with
    respect to the raw weight and the input (eval mode: u and v held, as within one forward)."""
    from torch.func import functional_call

    from ganlab_plugins.architectures.spectral import spectral_norm

    torch.manual_seed(0)
    layer = spectral_norm(nn.Conv2d(2, 3, 3)).double().eval()
    bias = layer.bias.detach()

    def scores(original: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(layer, {"parametrizations.weight.original": original, "bias": bias}, (x,))
        return torch.tanh(out).sum(dim=(1, 2, 3))

    original = layer.parametrizations.weight.original.detach().clone().requires_grad_(True)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(scores, (original, x))
    assert torch.autograd.gradgradcheck(scores, (original, x))


@pytest.mark.slow
def test_a_wgan_gp_step_trains_a_normalised_d():
    """The engine's gradient penalty (a second derivative) on the normalised D, two steps."""
    from ganlab.testing import run_steps, tiny_image_data

    recorded = run_steps(head="sigmoid", loss="wasserstein", arch={"name": "sngan", **TINY_WIDTHS},
                         dataset=tiny_image_data(32, (1, 32, 32)), steps=2, reg="gp", metrics="none")
    assert len(recorded["loss.d.gp"]) == 2 and all(v > 0 for v in recorded["loss.d.gp"])
    assert all(math.isfinite(v) for key in ("loss.d", "loss.g") for v in recorded[key])


# ---- every head, the SNGAN settings, conditioning --------------------------------------------
#: settings of a run, and the number of scores D must give its head: (B, 1) sigmoid, (B, 2) two-class heads,
#: (B, K + 1) semi-supervised and AC-GAN heads over K = 3 classes
HEAD_RUNS = {
    "sigmoid": ({"head": "sigmoid"}, 1),
    "sigmoid-hinge": ({"head": "sigmoid", "loss": "hinge", "d_steps": 2, "beta1": 0.0, "beta2": 0.9}, 1),
    "softmax": ({"head": "softmax"}, 2),
    "softmax-one-score": ({"head": {"name": "softmax", "scores": 1}}, 1),
    "sparsemax": ({"head": "sparsemax"}, 2),
    "entmax": ({"head": "entmax"}, 2),
    "softmax-semi-supervised": ({"head": "softmax", "loss": {"name": "nonsaturating", "labeled": 16},
                                 "classes": 3}, 4),
    "entmax-acgan": ({"head": "entmax", "loss": "acgan", "classes": 3,
                      "arch": {"conditional": True, "projection": False}}, 4),
    "sigmoid-projection": ({"head": "sigmoid", "classes": 3, "arch": {"conditional": True}}, 1),
}


@pytest.mark.parametrize("name", HEAD_RUNS)
def test_every_head_trains_sngan(name, monkeypatch):
    """Two real training steps per head (forward and backward through D's last normalised layer, which gives the
    head's number of scores), including hinge with the SNGAN optimiser settings, semi-supervised K+1, AC-GAN."""
    from ganlab.testing import run_steps, tiny_image_data
    from ganlab_plugins.architectures.resnet import ResNetDiscriminator

    settings, scores = HEAD_RUNS[name]
    settings = dict(settings)
    classes = settings.pop("classes", 0)
    arch = {"name": "sngan", **TINY_WIDTHS, **settings.pop("arch", {})}
    asked: list[int] = []
    build = ResNetDiscriminator.__init__

    def spying(self: Any, channels: int, plan: Any, ndf: int, num_logits: int, *args: Any) -> None:
        asked.append(num_logits)
        build(self, channels, plan, ndf, num_logits, *args)

    monkeypatch.setattr(ResNetDiscriminator, "__init__", spying)
    recorded = run_steps(arch=arch, dataset=tiny_image_data(48, (1, 32, 32), classes=classes), steps=2,
                         metrics="none", **settings)
    assert recorded["step"] == [1.0, 2.0]
    assert all(math.isfinite(v) for key in ("loss.d", "loss.g") for v in recorded[key])
    assert asked == [scores]


def test_the_conditional_pair_uses_the_label_in_g_and_projects_it_in_d():
    from ganlab_plugins.architectures.conditional import ConditionalBatchNorm2d

    torch.manual_seed(0)
    generator, discriminator = sngan(conditional=True, **TINY_WIDTHS).build((1, 32, 32), LATENT, 2, num_classes=4)
    norms = [m for m in generator.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 6, "both BatchNorms of each of the 3 up-blocks are conditional"
    assert all(torch.equal(n.scale.weight, torch.ones_like(n.scale.weight)) for n in norms), "scale starts at 1"
    assert not any(isinstance(m, nn.Embedding) for m in [*generator.modules()] if m not in
                   {e for n in norms for e in (n.scale, n.shift)}), "no class embedding joins z"
    z, y = torch.randn(4, LATENT), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        for n in norms:  # labels that matter: distinct per-class shifts
            n.shift.weight.normal_()
    generator.eval()
    x = generator(z, y)
    assert x.shape == (4, 1, 32, 32)
    assert (generator(z, (y + 1) % 4) - x).abs().flatten(1).amax(dim=1).min() > 0
    with pytest.raises(ValueError, match="must be called with class labels"):
        generator(z)
    # D(x, a) - D(x, b) = (e_a - e_b) . phi(x), e the normalised embedding, score by score
    discriminator = discriminator.double().eval()
    x = x.double()
    features = discriminator.features(x)
    rows = discriminator.projection.embed.weight.view(4, 2, -1)
    a, b = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 3, 0, 1])
    expected = torch.einsum("bcf,bf->bc", rows[a] - rows[b], features)
    assert torch.allclose(discriminator(x, a) - discriminator(x, b), expected, atol=1e-9)
    assert float(expected.abs().max()) > 1e-3


def test_projection_false_keeps_d_unconditional():
    arch = sngan(conditional=True, projection=False, **TINY_WIDTHS)
    assert arch.conditional and not arch.conditional_discriminator
    _, discriminator = arch.build((1, 32, 32), LATENT, 4, num_classes=3)
    assert discriminator.projection is None
    assert discriminator(torch.randn(2, 1, 32, 32)).shape == (2, 4)


# ---- spectral_norm on dcgan and mlp -----------------------------------------------------------
def test_dcgan_spectral_norm_normalises_every_layer_of_d_in_place_of_batchnorm():
    torch.manual_seed(0)
    plain_g, plain_d = make("architecture", "dcgan", ngf=4, ndf=4).build((1, 32, 32), LATENT, 2)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain_d.modules()) and not normalised_layers(plain_d)
    generator, discriminator = make("architecture", "dcgan", ngf=4, ndf=4, spectral_norm=True).build(
        (1, 32, 32), LATENT, 2)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules())
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert normalised_layers(discriminator) == convs and len(convs) == 4
    assert all(m.bias is not None for m in convs), "a bias where BatchNorm's shift was"
    assert [m.out_channels for m in convs] == [4, 8, 16, 2]
    assert any(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) and not normalised_layers(generator)
    assert list(generator.state_dict()) == list(plain_g.state_dict()), "G is unchanged"
    assert discriminator(generator(torch.randn(3, LATENT))).shape == (3, 2)


def test_mlp_spectral_norm_normalises_every_linear_layer_of_d():
    _, discriminator = make("architecture", "mlp", d_widths=(16, 12), spectral_norm=True).build((1, 8, 8), LATENT, 3)
    linears = [m for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert normalised_layers(discriminator) == linears and len(linears) == 3
    assert discriminator(torch.randn(2, 1, 8, 8)).shape == (2, 3)


# ---- populations, torch.compile --------------------------------------------------------------
def _largest_difference(a: nn.Module, b: nn.Module, keep: Any = lambda key: True) -> float:
    mine, theirs = a.state_dict(), b.state_dict()
    return max(float((mine[k].double() - theirs[k].double()).abs().max()) for k in mine
               if mine[k].is_floating_point() and keep(k))


@pytest.mark.slow
def test_a_population_of_normalised_runs_is_stacked_and_follows_its_single_runs(capsys):
    """sngan's power iterations under vmap: each replica updates its own u and v, and its D ends where its single
    run's does (every weight, u and v) after 3 steps.

    G is compared by its weights: its convolutions' biases feed a BatchNorm, which removes them, so their true
    gradient is 0 and Adam turns the rounding noise of that gradient into steps of about lr (both ways, stacked
    or not; the biases are there because the paper's code has them).
    """
    from test_population import _population_and_singles

    population, singles = _population_and_singles(
        "0-1", steps=3, dataset={"name": "digits"}, arch={"name": "sngan", "ngf": 8, "ndf": 4}, loss="hinge",
        d_steps=2)
    assert "one after another" not in capsys.readouterr().err, "the population was stacked"
    for replica, single in zip(population, singles):
        assert sum(key.endswith(("._u", "._v")) for key in replica.discriminator.state_dict()) == 2 * 11
        assert _largest_difference(replica.discriminator, single.discriminator) < 1e-5, replica.config.seed
        assert _largest_difference(replica.generator, single.generator, lambda k: k.endswith("weight")) < 1e-5
    assert _largest_difference(population[0].discriminator, population[1].discriminator) > 1e-2, "seeds differ"


@pytest.mark.slow
def test_compiled_normalisation_updates_u_and_v_as_eager_does():
    """torch.compile of a normalised D (what --compile compiles inside the step): the same scores and gradients,
    and the power iteration's in-place updates of u and v happen in the compiled graph too."""
    import copy

    import torch._dynamo

    from ganlab_plugins.architectures.spectral import spectral_normalise

    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = spectral_normalise(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)))
    twin = copy.deepcopy(eager)
    start = {k: v.clone() for k, v in eager.state_dict().items()}
    compiled = torch.compile(twin)
    x = torch.randn(4, 6)
    for _ in range(3):
        mine, theirs = compiled(x), eager(x)
        assert torch.allclose(mine, theirs, atol=1e-6)
        mine.square().sum().backward()
        theirs.square().sum().backward()
    for (key, value), theirs in zip(twin.state_dict().items(), eager.state_dict().values()):
        assert torch.allclose(value, theirs, atol=1e-6), key
        if key.endswith(("._u", "._v")):
            assert not torch.equal(value, start[key]), f"{key} was not updated in the compiled graph"
    for mine, theirs in zip(twin.parameters(), eager.parameters()):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-5)
    torch._dynamo.reset()


# ---- the CLI: a run, a resume, a refusal ------------------------------------------------------
SNGAN_RUN = ["--arch", "sngan", "--set", "arch.ngf=8", "--set", "arch.ndf=8", "--dataset", "digits",
             "--loss", "hinge", "--set", "d_steps=2", "--set", "beta1=0", "--set", "beta2=0.9",
             "--batch-size", "8", "--latent-dim", "8", "--sample-every", "0", "--eval-every", "0",
             "--set", "metrics=none", "--device", "cpu"]


@pytest.mark.slow
def test_a_tiny_sngan_run_finishes(workdir, mlflow_client):
    done = run_in_process(["run", *SNGAN_RUN, "--steps", "2", "--set", "ema=0.9", "--experiment", "sngan"], workdir)
    assert done.returncode == 0, done.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("sngan").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["ganlab.arch"] == "sngan" and run.data.tags["ganlab.arch.plugin"] == "architectures"
    assert run.data.params["arch.spectral_norm"] == "True" and run.data.params["ema"] == "0.9"
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "loss.d")][-1] == 2


@pytest.mark.slow
def test_a_normalised_run_resumes_bit_identically(tmp_path):
    """6 steps in one go, and 3 steps then `ganlab resume DIR --steps 6`: every tensor equal, the power
    iteration's u and v included (they are buffers, so the checkpoint carries them)."""
    run = ["run", *SNGAN_RUN, "--set", "arch.conditional=true", "--no-tracking"]
    assert run_in_process([*run, "--steps", "6", "--run-dir", "whole"], tmp_path).returncode == 0
    first = run_in_process([*run, "--steps", "3", "--run-dir", "parts"], tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = run_in_process(["resume", "parts", "--steps", "6"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    mine = torch.load(tmp_path / "parts" / "discriminator.pt", weights_only=True)
    theirs = torch.load(tmp_path / "whole" / "discriminator.pt", weights_only=True)
    assert mine.keys() == theirs.keys()
    assert sum(key.endswith("._u") for key in mine) == 12, "11 layers and the projection's embedding"
    for name in ("generator.pt", "discriminator.pt"):
        mine = torch.load(tmp_path / "parts" / name, weights_only=True)
        theirs = torch.load(tmp_path / "whole" / name, weights_only=True)
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), f"{name}:{key}"


@pytest.mark.parametrize("shape", [(1, 40, 40), (3, 32, 48), (2,)])
def test_unsupported_shapes_are_refused_in_one_line(shape):
    with pytest.raises(ComponentError) as info:
        sngan(**TINY_WIDTHS).build(shape, LATENT, 1)
    message = str(info.value)
    assert "\n" not in message and "sngan" in message
    if len(shape) == 3:
        assert "32x32, 48x48, 64x64" in message


@pytest.mark.slow
def test_an_unsupported_resolution_ends_the_cli_in_one_line_with_nothing_running(workdir, mlflow_client):
    done = run_in_process(["run", "--arch", "sngan", "--dataset", "digits", "--set", "dataset.size=40",
                           "--steps", "1", "--experiment", "refused"], workdir)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "architecture 'sngan' does not support 40x40 images" in lines[0] and "32x32, 48x48, 64x64" in lines[0]
    experiment = mlflow_client.get_experiment_by_name("refused")
    runs = mlflow_client.search_runs([experiment.experiment_id]) if experiment else []
    assert all(r.info.status != "RUNNING" for r in runs)


def test_bad_options_are_refused_by_name():
    from ganlab.errors import ConfigError

    with pytest.raises(ConfigError, match="arch.upsampling must be one of 'nearest', 'bilinear'"):
        sngan(upsampling="bicubic")
    with pytest.raises(ConfigError, match="arch.ngf must be >= 0"):
        sngan(ngf=-1)
    with pytest.raises(ConfigError, match="arch.class_dim"):
        sngan(class_dim=8)
