"""``ganlab run``'s setting flags are generated from ganlab.config.SETTINGS, the one definition of the settings."""

from __future__ import annotations

from typing import Any

import typer.main

from ganlab.cli.app import app
from ganlab.config import DEFAULT_COMPONENTS, FLAG_SETTINGS, MULTI, SECTIONS, SETTINGS


def annotated_type(option: Any) -> type:
    """The Python type a flag parses to (newer typer keeps it on the option; older ones, click's type)."""
    descriptor = getattr(option, "type_descriptor", None)
    if descriptor is not None:
        return descriptor.annotation
    base = {"integer": int, "float": float, "text": str, "boolean": bool}[option.type.name]
    return list[base] if getattr(option, "multiple", False) else base  # type: ignore[valid-type]


def run_command() -> Any:
    group = typer.main.get_command(app)
    return group.commands["run"]  # type: ignore[attr-defined]


def options_by_name() -> dict[str, Any]:
    return {p.name: p for p in run_command().params if hasattr(p, "secondary_opts")}


def test_every_flag_setting_has_a_flag_with_its_declared_type_help_and_default() -> None:
    options = options_by_name()
    for name in FLAG_SETTINGS:
        declared, option = SETTINGS[name], options[name]
        flag = "--" + name.replace("_", "-")
        assert flag in option.opts, (name, option.opts)
        if declared.type is bool:
            assert option.secondary_opts == ["--no-" + flag[2:]], name
        expected = list[str] if name in MULTI else declared.type  # --reg gp --reg r1
        assert annotated_type(option) == expected, name
        assert declared.help in option.help, (name, option.help)
        if declared.default != "":
            shown = str(declared.default).lower() if declared.type is bool else str(declared.default)
            assert f"(default {shown})" in option.help, (name, option.help)
        assert option.default is None, "an unset flag must not override the TOML file"


def test_component_flags_name_their_default_component() -> None:
    options = options_by_name()
    for section, kind in SECTIONS.items():
        help_text = options[section].help
        assert f"ganlab components {kind}" in help_text and f"(default {DEFAULT_COMPONENTS[section]})" in help_text


def test_run_has_no_flag_that_is_not_generated_or_its_own() -> None:
    own = {"config", "set_", "plugin", "dry_run", "nproc", "verbose", "help"}
    generated = set(FLAG_SETTINGS) | set(SECTIONS)
    assert {p.name for p in run_command().params} - own == generated


def test_flags_reach_the_resolved_configuration(cli_inproc, capsys) -> None:
    code = cli_inproc(["run", "--steps", "7", "--no-tracking", "--deterministic", "--lr-d", "0.001",
                       "--head", "entmax", "--run-name", "flagged", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    for line in ("steps = 7", "tracking = false", "deterministic = true", "lr_d = 0.001", 'run_name = "flagged"',
                 'name = "entmax"'):
        assert line in out, (line, out)
    assert "batch_size = 64" in out  # a flag not given leaves the default alone



def test_repeated_and_comma_separated_component_lists_are_the_same(cli_inproc, capsys) -> None:
    outs = []
    for args in (["--reg", "gp", "--reg", "r1"], ["--reg", "gp,r1"]):
        assert cli_inproc(["run", "--no-tracking", "--dataset", "ring8", *args, "--dry-run"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and 'reg = "gp,r1"' in outs[0]
