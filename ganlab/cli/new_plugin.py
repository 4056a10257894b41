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
        article = "an" if kind[0] in "aeiou" else "a"
        raise GanlabError(f"{article} {kind} named '{name}' already exists (plugin '{owner}'); choose another NAME")


def register(app: Any) -> None:
    @app.command("new-plugin")
    def new_plugin(
        name: Annotated[str, typer.Argument(
            metavar="NAME", help="Component name, e.g. tempered-softmax (package: ganlab-NAME).")],
        kind: Annotated[list[str], typer.Option(
            "--kind", "-k", help="head, loss, architecture, dataset, metric, regularizer, augmentation, optimizer or "
                                 "lifecycle (hooks only); "
                                 "repeat for a package with several components (--kind head --kind loss).")] = ["head"],  # noqa: B006
        directory: Annotated[Path, typer.Option("--dir", help="Where to create the package directory.")] = Path("."),
    ) -> None:
        """Create a plugin package (pyproject entry point, hookimpl, README, test) for one component."""
        from ganlab.scaffold import names_for, normalise_kind, render_many, write_package

        names = names_for(name)
        kinds = list(dict.fromkeys(normalise_kind(k) for k in kind))
        if "lifecycle" in kinds and len(kinds) > 1:
            raise GanlabError("--kind lifecycle makes a package of its own: it registers no component "
                              "(leave it out of a multi-kind package, or scaffold it separately)")
        for each in kinds:
            if each != "lifecycle":
                _refuse_taken_name(each, names.component)
        target = write_package(names, kinds, directory)
        typer.echo(f"created {target}/ with {', '.join(kinds)} '{names.component}':")
        for relative in sorted(render_many(names, kinds)):
            typer.echo(f"  {relative}")
        typer.echo("next:")
        typer.echo(f"  pip install -e '{target}[test]'")
        typer.echo(f"  pytest {target}")
        for each in kinds:
            typer.echo("  ganlab plugins" if each == "lifecycle" else f"  ganlab components {each}")
