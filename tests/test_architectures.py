"""The built-in architectures: shapes, the article's and Radford's layers, clear refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from ganlab_plugins.architectures.dcgan import SUPPORTED_SIZES
from torch import nn

from ganlab.errors import ComponentError, ConfigError
from ganlab.plugins import PluginManager

LATENT = 16
LOGITS = (1, 2, 11)  # sigmoid-like, softmax over real/fake, K+1 for K = 10 classes


@pytest.fixture(scope="module")
def registry():
    return PluginManager(warn=lambda message: None).load().registry


def arch(registry, name: str, **options):
    return registry.get("architecture", name).create(options)


def check_shapes(generator: nn.Module, discriminator: nn.Module, data_shape, num_logits: int) -> None:
    z = torch.randn(3, LATENT)
    fake = generator(z)
    assert fake.shape == (3, *data_shape)
    scores = discriminator(fake)
    assert scores.shape == (3, num_logits)
    assert scores.dtype == torch.float32


# ---- mlp --------------------------------------------------------------------
MLP_SHAPES = [(2,), (1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)]


@pytest.mark.parametrize("num_logits", LOGITS)
@pytest.mark.parametrize("data_shape", MLP_SHAPES, ids=str)
def test_mlp_builds_every_shape(registry, data_shape, num_logits):
    generator, discriminator = arch(registry, "mlp", hidden_scale=0.125).build(data_shape, LATENT, num_logits)
    check_shapes(generator, discriminator, data_shape, num_logits)


def test_mlp_defaults_are_the_articles_networks(registry):
    made = arch(registry, "mlp")
    assert made.convolutional is False
    generator, discriminator = made.build((1, 28, 28), 100, 1)
    g_linear = [(m.in_features, m.out_features) for m in generator.modules() if isinstance(m, nn.Linear)]
    d_linear = [(m.in_features, m.out_features) for m in discriminator.modules() if isinstance(m, nn.Linear)]
    assert g_linear == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    assert d_linear == [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    g_layers = list(generator.main)
    assert sum(isinstance(m, nn.ReLU) for m in g_layers) == 3 and isinstance(g_layers[-1], nn.Tanh)
    d_layers = list(discriminator.main)
    leaky = [m for m in d_layers if isinstance(m, nn.LeakyReLU)]
    dropouts = [m for m in d_layers if isinstance(m, nn.Dropout)]
    assert len(leaky) == 3 and all(m.negative_slope == 0.2 for m in leaky)
    assert len(dropouts) == 3 and all(m.p == 0.3 for m in dropouts)
    assert isinstance(d_layers[-1], nn.Linear), "D must end in raw scores: the head applies the activation"


def test_mlp_output_is_linear_for_vectors_and_tanh_for_images(registry):
    vector_g, _ = arch(registry, "mlp").build((2,), LATENT, 1)
    image_g, _ = arch(registry, "mlp").build((1, 8, 8), LATENT, 1)
    forced_g, _ = arch(registry, "mlp", output="tanh").build((2,), LATENT, 1)
    assert not isinstance(list(vector_g.main)[-1], nn.Tanh)  # grid25's modes at ±4 must be reachable
    assert isinstance(list(image_g.main)[-1], nn.Tanh)
    assert isinstance(list(forced_g.main)[-1], nn.Tanh)


def test_mlp_accepts_non_contiguous_batches(registry):
    _, discriminator = arch(registry, "mlp", hidden_scale=0.125).build((3, 8, 8), LATENT, 2)
    x = torch.randn(4, 3, 8, 8).to(memory_format=torch.channels_last)
    assert discriminator(x).shape == (4, 2)


# ---- dcgan ------------------------------------------------------------------
def test_dcgan_claims_the_required_sizes():
    assert {8, 16, 28, 32, 64} <= set(SUPPORTED_SIZES)


@pytest.mark.parametrize("num_logits", LOGITS)
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_dcgan_builds_every_supported_size(registry, size, channels, num_logits):
    made = arch(registry, "dcgan", ngf=4, ndf=4)
    assert made.convolutional is True
    generator, discriminator = made.build((channels, size, size), LATENT, num_logits)
    check_shapes(generator, discriminator, (channels, size, size), num_logits)


def test_dcgan_follows_radford(registry):
    generator, discriminator = arch(registry, "dcgan").build((3, 64, 64), 100, 1)
    g_layers, d_layers = list(generator.main), list(discriminator.main)
    # G: project-and-reshape to 4x4x512, transposed convs with BatchNorm + ReLU, Tanh out;
    # the paper's 64x64 widths 512-256-128-64
    assert (generator.project.in_features, generator.project.out_features) == (100, 512 * 4 * 4)
    assert generator.projected_shape == (512, 4, 4)
    deconvs = [m for m in g_layers if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [256, 128, 64, 3]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == 4
    assert sum(isinstance(m, nn.ReLU) for m in g_layers) == 4 and isinstance(g_layers[-1], nn.Tanh)
    # D: strided convs, LeakyReLU 0.2, no BatchNorm after the first conv, no pooling, raw scores out
    convs = [m for m in d_layers if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1]
    assert all(m.stride == (2, 2) for m in convs[:-1])
    assert isinstance(d_layers[1], nn.LeakyReLU) and not isinstance(d_layers[1], nn.BatchNorm2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == 3
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))
    pools = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    assert not any(isinstance(m, pools) for m in [*g_layers, *d_layers])
    assert isinstance(d_layers[-1], nn.Conv2d)
    # weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0
    for net in (generator, discriminator):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.weight.numel() > 10_000:
                assert abs(m.weight.std().item() - 0.02) < 0.002
                assert abs(m.weight.mean().item()) < 0.002
            if isinstance(m, nn.BatchNorm2d):
                assert abs(m.weight.mean().item() - 1.0) < 0.01 and torch.all(m.bias == 0)


def test_dcgan_width_options(registry):
    generator, discriminator = arch(registry, "dcgan", ngf=8, ndf=16).build((1, 32, 32), LATENT, 1)
    assert generator.projected_shape == (32, 4, 4)
    assert [m.out_channels for m in generator.main if isinstance(m, nn.ConvTranspose2d)] == [16, 8, 1]
    assert [m.out_channels for m in discriminator.main if isinstance(m, nn.Conv2d)] == [16, 32, 64, 1]


def test_dcgan_trains_a_step_in_channels_last(registry):
    generator, discriminator = arch(registry, "dcgan", ngf=4, ndf=4).build((3, 32, 32), LATENT, 2)
    generator, discriminator = (net.to(memory_format=torch.channels_last) for net in (generator, discriminator))
    scores = discriminator(generator(torch.randn(4, LATENT)))
    scores.sum().backward()
    assert all(p.grad is not None for p in generator.parameters())


# ---- refusals ---------------------------------------------------------------
def refusal(registry, name: str, data_shape, num_logits: int = 1, latent: int = LATENT) -> str:
    with pytest.raises(ComponentError) as info:
        arch(registry, name, **({"ngf": 4, "ndf": 4} if name == "dcgan" else {})).build(data_shape, latent, num_logits)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_dcgan_refuses_vectors_and_points_to_mlp(registry):
    message = refusal(registry, "dcgan", (2,))
    assert "dcgan" in message and "mlp" in message and "(2,)" in message


@pytest.mark.parametrize("size", (30, 12, 256, 4))
def test_dcgan_refuses_unsupported_sizes_listing_the_supported(registry, size):
    message = refusal(registry, "dcgan", (1, size, size))
    assert f"{size}x{size}" in message and "28, 32" in message and "64" in message


def test_dcgan_refuses_non_square_and_channelless_images(registry):
    assert "square" in refusal(registry, "dcgan", (3, 32, 64))
    assert "channels" in refusal(registry, "dcgan", (28, 28))


@pytest.mark.parametrize("name", ("mlp", "dcgan"))
def test_refuses_zero_logits_or_latent(registry, name):
    assert "num_logits" in refusal(registry, name, (1, 32, 32), num_logits=0)
    assert "latent_dim" in refusal(registry, name, (1, 32, 32), latent=0)


def test_bad_options_are_refused_by_name(registry):
    with pytest.raises(ConfigError, match="arch.ngf"):
        arch(registry, "dcgan", ngf=0)
    with pytest.raises(ConfigError, match="arch.output"):
        arch(registry, "mlp", output="sigmoid")


# ---- registration stays light ------------------------------------------------
def test_plugin_modules_import_nothing_heavy():
    modules = ["architectures", "datasets"]
    code = (
        "import sys\n"
        + "".join(f"import ganlab_plugins.{m}\n" for m in modules)
        + "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn', 'PIL', 'numpy', 'mlflow') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"plugin modules imported {out.stdout.strip()}"


# ---- mlp options: widths, D's activation, Dropout (PacGAN's 2-D networks) --------
PACGAN = {"g_widths": (400, 400, 400, 400), "d_widths": (200, 200, 200), "d_activation": "relu", "dropout": 0.0}


def dense_parameters(widths: list[int]) -> int:
    """Weights and biases of a chain of Linear layers through ``widths`` (input first, output last)."""
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def test_mlp_options_build_pacgans_networks(registry):
    generator, discriminator = arch(registry, "mlp", **PACGAN).build((2,), 2, 1)
    assert sum(p.numel() for p in generator.parameters()) == dense_parameters([2, 400, 400, 400, 400, 2]) == 483_202
    assert sum(p.numel() for p in discriminator.parameters()) == dense_parameters([2, 200, 200, 200, 1]) == 81_201
    d_layers = list(discriminator.main)
    assert sum(type(m) is nn.ReLU for m in d_layers) == 3 and not any(isinstance(m, nn.LeakyReLU) for m in d_layers)
    assert all(m.p == 0.0 for m in d_layers if isinstance(m, nn.Dropout))
    assert isinstance(d_layers[-1], nn.Linear) and isinstance(list(generator.main)[-1], nn.Linear)
    check_shapes(*arch(registry, "mlp", **PACGAN).build((2,), LATENT, 1), (2,), 1)


def test_mlp_g_batchnorm_normalises_each_hidden_layer_of_g_only(registry):
    generator, discriminator = arch(registry, "mlp", g_batchnorm=True, **PACGAN).build((2,), 2, 1)
    g_layers = list(generator.main)
    kinds = [type(m).__name__ for m in g_layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 4 + ["Linear"]
    assert [m.num_features for m in g_layers if isinstance(m, nn.BatchNorm1d)] == [400] * 4
    assert not any(isinstance(m, nn.BatchNorm1d) for m in discriminator.modules())
    plain, _ = arch(registry, "mlp", **PACGAN).build((2,), 2, 1)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    # batch statistics: in training mode a sample's output depends on the rest of its batch
    z = torch.randn(8, 2)
    assert not torch.allclose(generator(z)[:4], generator(z[:4]))


def test_mlp_hidden_scale_multiplies_the_given_widths(registry):
    _, discriminator = arch(registry, "mlp", d_widths=(200, 100), hidden_scale=0.5).build((2,), 2, 1)
    assert [m.out_features for m in discriminator.modules() if isinstance(m, nn.Linear)] == [100, 50, 1]


def test_mlp_default_options_are_the_articles_layers_initialised_in_the_same_order(registry):
    """Bit-identical to the network before the options existed: same layers, drawn from the RNG in the same order."""
    from ganlab_plugins.architectures.mlp import ARTICLE_D_WIDTHS, ARTICLE_G_WIDTHS

    declared = registry.get("architecture", "mlp").options
    assert declared["g_widths"].default == ARTICLE_G_WIDTHS and declared["d_widths"].default == ARTICLE_D_WIDTHS
    assert declared["d_activation"].default == "leaky_relu" and declared["dropout"].default == 0.3
    torch.manual_seed(7)
    generator, discriminator = arch(registry, "mlp").build((1, 8, 8), LATENT, 1)
    torch.manual_seed(7)
    sizes = [(LATENT, 256), (256, 512), (512, 1024), (1024, 64), (64, 1024), (1024, 512), (512, 256), (256, 1)]
    reference = [nn.Linear(a, b) for a, b in sizes]  # G's layers, then D's, input side first
    built = [m for net in (generator, discriminator) for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(built) == len(reference)
    for mine, theirs in zip(built, reference):
        assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)


@pytest.mark.parametrize("given", ["400,400,400", "[400, 400, 400]", " (400,400,400) ", [400, 400, 400]])
def test_mlp_widths_accept_a_toml_array_or_its_text(registry, given):
    resolved = registry.get("architecture", "mlp").resolve({"g_widths": given})
    assert resolved["g_widths"] == (400, 400, 400)


@pytest.mark.parametrize("given, says", [
    ("400,x", "arch.d_widths must be a list of ints"),
    ([200, 2.5], "arch.d_widths must be a list of ints"),
    ([200, True], "arch.d_widths must be a list of ints"),
    (200, "arch.d_widths must be a list of ints"),
    ("200,0", "arch.d_widths must be >= 1, not 0"),
    ("", "arch.d_widths: needs at least one hidden layer"),
])
def test_mlp_bad_widths_are_refused_by_name(registry, given, says):
    with pytest.raises(ConfigError) as info:
        registry.get("architecture", "mlp").resolve({"d_widths": given})
    assert says in str(info.value) and "\n" not in str(info.value)


def test_mlp_bad_activation_is_refused_with_the_choices(registry):
    with pytest.raises(ConfigError, match="arch.d_activation must be one of 'leaky_relu', 'relu'"):
        registry.get("architecture", "mlp").resolve({"d_activation": "gelu"})


def test_mlp_widths_survive_the_recorded_configuration(registry, tmp_path):
    """A run's config.toml (what resume and `ganlab sample` rebuild from) gives back the same widths."""
    from ganlab.config import ConfigBuilder

    config = ConfigBuilder().add_sets(["arch.g_widths=400,400", "arch.d_widths=[200]"]).build(registry)
    (tmp_path / "config.toml").write_text(config.to_toml())
    again = ConfigBuilder().add_file(tmp_path / "config.toml").build(registry)
    assert again.options_of("arch") == config.options_of("arch")
    assert config.options_of("arch")["g_widths"] == (400, 400) and config.flat()["arch.d_widths"] == (200,)
