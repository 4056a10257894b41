"""Configuration layering and validation: file < flags < --set, declared options only."""

from __future__ import annotations

import tomllib

import pytest

from ganlab.config import ConfigBuilder
from ganlab.errors import ConfigError, GanlabError
from ganlab.plugins import PluginManager


@pytest.fixture(scope="module")
def registry():
    return PluginManager(warn=lambda m: None).load().registry


def test_defaults_are_the_articles_settings(registry):
    config = ConfigBuilder().build(registry)
    assert (config.batch_size, config.latent_dim, config.lr_g, config.lr_d) == (64, 100, 2e-4, 2e-4)
    assert (config.beta1, config.beta2, config.d_steps) == (0.5, 0.999, 1)
    assert config.name_of("dataset") == "digits"


def test_precedence_file_then_flags_then_set(tmp_path, registry):
    path = tmp_path / "run.toml"
    path.write_text('steps = 10\nseed = 3\n[head]\nname = "entmax"\nalpha = 1.25\n[arch]\nname = "dcgan"\nngf = 16\n')
    config = (ConfigBuilder().add_file(path).add_flags({"steps": 20, "seed": None, "head": None})
              .add_sets(["head.alpha=1.75", "arch.ndf=8"]).build(registry))
    assert config.steps == 20 and config.seed == 3
    assert config.components["head"] == {"name": "entmax", "alpha": 1.75, "scores": 2}
    assert config.options_of("arch")["ngf"] == 16 and config.options_of("arch")["ndf"] == 8
    flat = config.flat()
    assert flat["head.alpha"] == 1.75 and flat["arch.name"] == "dcgan" and flat["steps"] == 20


def test_flag_changing_component_keeps_file_options_for_the_new_name(tmp_path, registry):
    path = tmp_path / "run.toml"
    path.write_text('[head]\nname = "sigmoid"\n')
    config = ConfigBuilder().add_file(path).add_flags({"head": "entmax"}).build(registry)
    assert config.name_of("head") == "entmax" and config.options_of("head") == {"alpha": 1.5, "scores": 2}


@pytest.mark.parametrize(
    "sets, message",
    [
        (["head.name=entmax", "head.alpah=1.2"], "unknown option 'head.alpah'; did you mean 'alpha'?"),
        (["steps=ten"], "steps must be an int, not 'ten'"),
        (["batch_size=0"], "batch_size must be >= 1"),
        (["lr_g=-0.1"], "lr_g: must be > 0"),
        (["stepz=3"], "unknown setting 'stepz'; did you mean 'steps'?"),
        (["precision=fp8"], "precision must be one of"),
        (["device=gpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
        (["head"], "--set expects KEY=VALUE"),
    ],
)
def test_bad_values_are_refused_by_name(registry, sets, message):
    with pytest.raises(ConfigError) as info:
        ConfigBuilder().add_sets(sets).build(registry)
    assert message in str(info.value)


def test_wrong_type_in_toml_is_refused(tmp_path, registry):
    path = tmp_path / "run.toml"
    path.write_text('steps = "many"\n')
    with pytest.raises(ConfigError, match="steps must be an int"):
        ConfigBuilder().add_file(path).build(registry)


def test_malformed_toml_is_one_line(tmp_path, registry):
    path = tmp_path / "run.toml"
    path.write_text("steps = = 3\n")
    with pytest.raises(ConfigError) as info:
        ConfigBuilder().add_file(path).build(registry)
    assert "is not valid TOML" in str(info.value) and "\n" not in str(info.value)


def test_unknown_component_in_file(tmp_path, registry):
    path = tmp_path / "run.toml"
    path.write_text('[arch]\nname = "dcgam"\n')
    with pytest.raises(GanlabError, match="unknown architecture 'dcgam'; did you mean 'dcgan'"):
        ConfigBuilder().add_file(path).build(registry)


def test_dry_run_prints_the_resolved_configuration(cli_inproc, capsys):
    assert cli_inproc(["run", "--head", "entmax", "--set", "head.alpha=1.25", "--steps", "7", "--dry-run"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["steps"] == 7 and printed["head"] == {"name": "entmax", "alpha": 1.25, "scores": 2}
    assert printed["arch"]["name"] == "mlp" and printed["loss"]["name"] == "nonsaturating"
