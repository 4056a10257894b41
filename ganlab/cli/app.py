"""The ``ganlab`` command line.

Start-up stays light: this module imports neither torch nor mlflow; commands
import what they need when they run. Every user-facing error ends as one line
on stderr with exit code 2 (see ganlab.errors).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab import HOOKSPEC_VERSION, __version__
from ganlab.errors import GanlabError
from ganlab.redact import mask_credentials
from ganlab.cli.flags import with_setting_flags
from ganlab.plugins import load_plugins

APP_SETTINGS: dict[str, Any] = dict(
    name="ganlab",
    help="Plugin-based GAN experiments: compose architectures, discriminator heads, losses and datasets; "
    "every run is recorded in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app = typer.Typer(**APP_SETTINGS)

#: the command line main() is running: ``--nproc N`` starts the same one under torchrun
_invocation: list[str] = []

NprocOpt = Annotated[
    Optional[int],
    typer.Option("--nproc", help="Train in N processes on this machine (torchrun + DistributedDataParallel; "
                 "one per GPU). See docs/distributed.md."),
]

PluginOpt = Annotated[
    Optional[list[str]],
    typer.Option("--plugin", "-p", help="Extra plugin: a path/to/file.py or an importable module (repeatable)."),
]


#: commands taking --verbose (``ganlab sweep`` too, once it declares VerboseOpt)
VERBOSE_COMMANDS = ("run", "resume", "sweep")


def set_verbose(value: bool) -> bool:
    """``--verbose``: set GANLAB_VERBOSE=1 for this process and every process it starts (the record
    writer, torchrun's ranks, a sweep's jobs), which then let MLflow's own messages through."""
    if value:
        os.environ["GANLAB_VERBOSE"] = "1"
    return value


VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", is_eager=True, callback=set_verbose,
                 help="Let MLflow's own log messages through (sets GANLAB_VERBOSE=1)."),
]


def error(message: str, code: int = 2) -> typer.Exit:
    print(f"ganlab: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _run_options(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML configuration file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override KEY=VALUE, e.g. head.alpha=1.25 (repeatable).")] = None,
    plugin: PluginOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and exit.")] = False,
    nproc: NprocOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """The options of ``ganlab run`` that are not settings (those come from ganlab.config.SETTINGS)."""


@app.command()
@partial(with_setting_flags, own=_run_options)
def run(**arguments: Any) -> None:
    """Train one GAN and record it in MLflow."""
    config, set_, plugin = arguments.pop("config"), arguments.pop("set_"), arguments.pop("plugin")
    dry_run, nproc = arguments.pop("dry_run"), arguments.pop("nproc")
    arguments.pop("verbose")  # acted on by its callback, before the command runs
    flags = arguments  # the component names and the settings given as flags (None: not given)
    plugins = load_plugins(plugin)
    resolved = resolve_config(plugins, config, flags, set_ or [])
    if dry_run:
        typer.echo(resolved.to_toml(), nl=False)
        return
    if nproc is not None and resolved.seeds:
        raise GanlabError("a population (--seeds) runs in one process; drop --nproc (or --seeds)")
    if nproc is not None:  # checked here, once, then the same command line minus --nproc in every rank
        from ganlab.dist import launch, preflight, without_nproc

        preflight(resolved, nproc)  # refuses --nproc < 1 too
        raise typer.Exit(launch(nproc, without_nproc(_invocation)))
    if resolved.seeds:
        from ganlab.train.population.launch import run_population

        run_population(resolved, plugins)
        return
    from ganlab.train.runner import run as run_training

    run_training(resolved, plugins)


def resolve_config(plugins: Any, config_file: Path | None, flags: dict[str, Any], sets: list[str]) -> Any:
    from ganlab.config import ConfigBuilder

    builder = ConfigBuilder()
    if config_file is not None:
        builder.add_file(config_file)
    builder.add_flags(flags)
    builder.add_sets(sets)
    return builder.build(plugins.registry)


@app.command("plugins")
def plugins_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    plugin: PluginOpt = None,
) -> None:
    """List plugins: name, version, hooks, built-in or not, load errors."""
    manager = load_plugins(plugin, strict_named=False)  # showing load errors is this command's job
    manager.registry  # noqa: B018 - registering components surfaces hook errors
    rows = [
        {"name": i.name, "module": i.module, "distribution": i.distribution, "version": i.version,
         "builtin": i.builtin, "source": i.source, "hooks": i.hooks, "error": i.error, "disabled": i.disabled}
        for i in manager.infos.values()
        if not i.name.startswith("ganlab.")
    ]
    if as_json:
        typer.echo(json.dumps({"ganlab": __version__, "hookspec_version": HOOKSPEC_VERSION, "plugins": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ganlab {__version__} plugins (hook specification {HOOKSPEC_VERSION})")
    for column in ("plugin", "version", "built-in", "hooks", "status"):
        table.add_column(column)
    for r in rows:
        status = "disabled" if r["disabled"] else (f"[red]error: {r['error']}[/red]" if r["error"] else "ok")
        table.add_row(r["name"], r["version"] or "-", "yes" if r["builtin"] else "no", ", ".join(r["hooks"]), status)
    Console().print(table)
    from ganlab.plugins import packages_without_entry_point

    for package in packages_without_entry_point():
        typer.echo(f"ganlab: warning: package '{package}' requires ganlab but declares no 'ganlab' entry point, so "
                   "ganlab does not load it: add [project.entry-points.ganlab] NAME = \"your_module\" to its "
                   "pyproject.toml and reinstall it", err=True)


@app.command()
def components(
    kind: Annotated[Optional[str], typer.Argument(help="architecture, head, loss, dataset or metric.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    plugin: PluginOpt = None,
) -> None:
    """List components: kind, name, providing plugin, summary, options with defaults."""
    from ganlab.errors import did_you_mean
    from ganlab.registry import KINDS

    aliases = {"arch": "architecture", "architectures": "architecture", "heads": "head", "losses": "loss",
               "datasets": "dataset", "metrics": "metric"}
    if kind is not None:
        kind = aliases.get(kind, kind)
        if kind not in KINDS:
            raise GanlabError(f"unknown component kind '{kind}'{did_you_mean(kind, KINDS)} (valid: {', '.join(KINDS)})")
    registry = load_plugins(plugin).registry
    rows = [c for c in registry if kind is None or c.kind == kind]
    if as_json:
        typer.echo(json.dumps([
            {"kind": c.kind, "name": c.name, "plugin": c.provenance.plugin, "summary": c.summary,
             "options": {k: {"type": o.type_name, "default": o.default, "help": o.help} for k, o in c.options.items()}}
            for c in rows
        ], indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ganlab components")
    for column in ("kind", "name", "plugin", "summary", "options"):
        table.add_column(column, overflow="fold")
    for c in rows:
        options = ", ".join(f"{k}={o.default!r}" for k, o in c.options.items())
        table.add_row(c.kind, c.name, c.provenance.plugin, c.summary, options or "-")
    Console(width=max(120, Console().width)).print(table)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The MLflow run to continue, or an untracked run's --run-dir.")],
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Train to this many steps instead of the original total.")] = None,
    plugin: PluginOpt = None,
    nproc: NprocOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Continue a run from its last checkpoint, in the same MLflow run."""
    if nproc is not None:  # a distributed run resumes with as many processes as it had
        from ganlab.dist import check_resume_processes, launch, without_nproc

        check_resume_processes(run_id, tracking_uri, nproc)
        raise typer.Exit(launch(nproc, without_nproc(_invocation)))
    from ganlab.train.population.resume import resume_run_or_population

    resume_run_or_population(run_id, load_plugins(plugin), tracking_uri, steps)


def _argv_plugins(argv: list[str]) -> list[str]:
    """--plugin values, read before the app exists so a plugin can add commands."""
    found = []
    for i, arg in enumerate(argv):
        if arg in ("--plugin", "-p") and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            found.append(arg.split("=", 1)[1])
    return found


def _command_word(argv: list[str]) -> str | None:
    """The command argv runs (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_app(argv: list[str]) -> typer.Typer:
    """A fresh app per call (the CLI can run several times in one process, e.g. in tests).

    Warnings about entry-point plugins are left to the command that uses the
    plugins, so each is said once. A plugin named with --plugin or
    GANLAB_PLUGINS that cannot be imported is an error here already, before
    any command runs (it may be the one that adds the command); except for
    ``ganlab plugins``, whose job is to show such errors.
    """
    from ganlab.cli import commands
    from ganlab.plugins import PluginManager

    fresh = typer.Typer(**APP_SETTINGS)
    fresh.registered_commands = list(app.registered_commands)
    commands.register_core_commands(fresh)
    strict_named = _command_word(argv) != "plugins"
    PluginManager(warn=lambda message: None, strict_named=strict_named).load(_argv_plugins(argv)).add_commands(fresh)
    return fresh


def _click_exception_class() -> type[Exception]:
    """The ClickException typer really raises (typer >= 0.29 vendors its own click)."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # older typer: plain click
        from click.exceptions import ClickException
    return ClickException


def _strip_plugin_args(app_: typer.Typer, argv: list[str]) -> list[str]:
    """Drop ``--plugin X`` for commands that do not declare it (commands added by a plugin).

    The plugins were already loaded from argv to build the app; such a command
    would otherwise refuse the option it needed to exist at all.
    """
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app_.registered_commands]
    command = _command_word(argv)
    index = names.index(command) if command in names else -1
    if index < 0:
        return argv
    callback = app_.registered_commands[index].callback
    if callback is not None and "plugin" in inspect.signature(callback).parameters:
        return argv
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--plugin", "-p"):
            skip = True
        elif not arg.startswith("--plugin="):
            out.append(arg)
    return out


def _end_of_options(argv: list[str]) -> int:
    return argv.index("--") if "--" in argv else len(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and ``python -m ganlab`` (``argv`` None: this process's own
    command line, which then ends with the command: see ``_leave_lingering_threads``)."""
    from ganlab.record.store_process import reusable_writers

    with reusable_writers():  # one record writer for the runs this command makes one after another
        code = _main(argv)
    if argv is None:
        _leave_lingering_threads(code)
    return code


def _leave_lingering_threads(code: int) -> None:
    """Exit now if a thread that is not a daemon would keep the process alive after the command ended.

    The command has closed its record by now; Python would wait for every non-daemon thread, and a
    plugin's thread that never ends (a printer, a poller) would hold the process forever.
    """
    import threading

    lingering = [t for t in threading.enumerate()
                 if t is not threading.main_thread() and not t.daemon and t.is_alive()
                 and _thread_module(t) != "concurrent.futures.thread"]  # pool workers end at exit on their own
    if not lingering:
        return
    named = ", ".join(f"'{t.name}'" + (f" (from {_thread_module(t)})" if _thread_module(t) else "") for t in lingering)
    print(f"ganlab: warning: thread {named} was still running when the command ended; exiting without "
          f"waiting for it (a plugin's thread should be a daemon, or end in on_run_end)", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _thread_module(thread: Any) -> str:
    """Where a thread's code comes from: its target's module, or its subclass's."""
    target = getattr(thread, "_target", None)
    if target is not None:
        return getattr(target, "__module__", "") or ""
    return "" if type(thread).__module__ == "threading" else type(thread).__module__


def _main(argv: list[str] | None) -> int:
    click_exception = _click_exception_class()
    argv = list(sys.argv[1:] if argv is None else argv)
    _invocation[:] = argv
    # before anything else, plugins imported to build the app included (the option's callback sets it too)
    set_verbose(_command_word(argv) in VERBOSE_COMMANDS and "--verbose" in argv[: _end_of_options(argv)])
    try:
        built = build_app(argv)
        result = built(args=_strip_plugin_args(built, argv), prog_name="ganlab", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except GanlabError as exc:
        print(f"ganlab: error: {mask_credentials(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("ganlab: aborted", file=sys.stderr)
        return 130
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0  # help was printed
        message = mask_credentials(" ".join(exc.format_message().split()))  # it quotes what was typed
        command = getattr(getattr(exc, "ctx", None), "command_path", "ganlab")
        print(f"ganlab: error: {message} (see `{command} --help`)", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ganlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an interrupted run carries its exit code
        code = getattr(exc, "exit_code", None)
        if any(c.__name__ == "Interrupted" for c in type(exc).__mro__) and isinstance(code, int):
            print(f"ganlab: {mask_credentials(str(exc))}", file=sys.stderr)
            return code
        raise

