"""``ganlab new-plugin NAME --kind KIND``: start a plugin package from a working template."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ganlab.errors import GanlabError


def _refuse_taken_name(kind: str, name: str) -> None:
    """A component with this name already exists: the new plugin would clash with it."""
    from ganlab.plugins import PluginManager

    registry = PluginManager(warn=lambda message: None).load().registry
    if name in registry.names(kind):
        owner = registry.get(kind, name).provenance.plugin
        raise GanlabError(f"a {kind} named '{name}' already exists (plugin '{owner}'); choose another NAME")


def register(app: Any) -> None:
    @app.command("new-plugin")
    def new_plugin(
        name: Annotated[str, typer.Argument(
            metavar="NAME", help="Component name, e.g. tempered-softmax (package: ganlab-NAME).")],
        kind: Annotated[str, typer.Option("--kind", "-k", help="head, loss, architecture, dataset or metric.")] = "head",
        directory: Annotated[Path, typer.Option("--dir", help="Where to create the package directory.")] = Path("."),
    ) -> None:
        """Create a plugin package (pyproject entry point, hookimpl, README, test) for one component."""
        from ganlab.scaffold import names_for, normalise_kind, render, write_package

        names = names_for(name)
        kind = normalise_kind(kind)
        _refuse_taken_name(kind, names.component)
        target = write_package(names, kind, directory)
        typer.echo(f"created {target}/ with {kind} '{names.component}':")
        for relative in sorted(render(names, kind)):
            typer.echo(f"  {relative}")
        typer.echo("next:")
        typer.echo(f"  pip install -e '{target}[test]'")
        typer.echo(f"  pytest {target}")
        typer.echo(f"  ganlab components {kind}")
