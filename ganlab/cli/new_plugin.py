"""``ganlab new-plugin NAME --kind KIND``: start a plugin package from a working template.

Several ``--kind``: one plugin, NAME, whose first component is named NAME and each other one
NAME-KIND; ``--kind lifecycle`` adds opt-in hooks to it (ganlab.scaffold.component_names).
"""

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
            metavar="NAME", help="Plugin and component name, e.g. tempered-softmax (package: ganlab-NAME).")],
        kind: Annotated[list[str], typer.Option(
            "--kind", "-k", help="head, loss, architecture, dataset, metric, regularizer, augmentation, optimizer or "
                                 "lifecycle (hooks only); repeat for one plugin with several components "
                                 "(--kind head --kind loss): the first is named NAME, each other one "
                                 "NAME-KIND (NAME-loss); lifecycle adds opt-in hooks to the same "
                                 "plugin.")] = ["head"],  # noqa: B006
        directory: Annotated[Path, typer.Option("--dir", help="Where to create the package directory.")] = Path("."),
    ) -> None:
        """Create a plugin package (pyproject entry point, hookimpl, README, test) for one component, or for
        several: `--kind head --kind loss` registers head NAME and loss NAME-loss from one plugin, NAME."""
        from ganlab.scaffold import component_names, describe, names_for, normalise_kind, render_many, write_package

        names = names_for(name)
        kinds = list(dict.fromkeys(normalise_kind(k) for k in kind))
        components = component_names(names, kinds)
        for each in kinds:
            if each != "lifecycle":
                _refuse_taken_name(each, components[each])
        target = write_package(names, kinds, directory)
        typer.echo(f"created {target}/ with {describe(kinds, components)}:")
        for relative in sorted(render_many(names, kinds)):
            typer.echo(f"  {relative}")
        typer.echo("next:")
        typer.echo(f"  pip install -e '{target}[test]'")
        typer.echo(f"  pytest {target}")
        for each in kinds:
            typer.echo("  ganlab plugins" if each == "lifecycle" else f"  ganlab components {each}")
