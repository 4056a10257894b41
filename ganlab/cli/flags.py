"""The ``ganlab run`` flags, generated from the one definition of the settings.

``ganlab.config.SETTINGS`` declares every run setting once (type, default,
help, range); TOML files and ``--set`` are validated against it. The flags
that ``run`` offers for the common settings (``FLAG_SETTINGS``) and for the
four component names are made from the same declarations here, so a default
or a help text is never restated by hand.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Optional

import typer

from ganlab.config import DEFAULT_COMPONENTS, FLAG_SETTINGS, MULTI, SECTIONS, SETTINGS

#: what each component flag picks, for its help text
_COMPONENT_HELP = {
    "arch": "Architecture", "head": "Discriminator output head", "loss": "GAN objective", "dataset": "Dataset",
    "latent": "G's input: noise, or noise and latent codes (InfoGAN)",
}


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(text: str, default: Any) -> str:
    # not "[default: X]": Typer's rich help reads square brackets as markup and drops them
    if default == "":
        return f"{text}."
    shown = str(default).lower() if isinstance(default, bool) else default
    return f"{text} (default {shown})."


def component_parameters() -> list[inspect.Parameter]:
    """``--arch``, ``--head``, ``--loss``, ``--dataset``, ``--latent``: a component's name (its options go
    through --set)."""
    return [
        inspect.Parameter(
            section, inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[Optional[str], typer.Option(
                _flag_name(section),
                help=_help(f"{_COMPONENT_HELP[section]} (see `ganlab components {kind}`)", DEFAULT_COMPONENTS[section]),
            )],
        )
        for section, kind in SECTIONS.items()
    ]


def setting_parameters() -> list[inspect.Parameter]:
    """One flag per setting in FLAG_SETTINGS: ``--name VALUE``, or ``--name/--no-name`` for a bool."""
    parameters = []
    for name in FLAG_SETTINGS:
        option = SETTINGS[name]
        flag = _flag_name(name)
        declaration = f"{flag}/--no-{flag[2:]}" if option.type is bool else flag
        # components a run uses several of: the flag repeats (--reg gp --reg r1), or takes gp,r1
        kind = list[str] if name in MULTI else option.type
        text = f"{option.help}; repeatable" if name in MULTI else option.help
        parameters.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[Optional[kind], typer.Option(declaration, help=_help(text, option.default))],
        ))
    return parameters


def with_setting_flags(command: Any, own: Any) -> Any:
    """Give ``command`` (taking ``**arguments``) the signature Typer reads: the component and setting
    flags, then the parameters of ``own`` (a function declaring the command's other options)."""
    own_parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                      for p in inspect.signature(own, eval_str=True).parameters.values()]
    command.__signature__ = inspect.Signature([*component_parameters(), *setting_parameters(), *own_parameters])
    return command
