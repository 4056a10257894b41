"""``ganlab sweep FILE.toml``: train every variant of a grid (or the trials of a search) as an Optuna
study, recorded as one parent run with nested children.

The file format is documented in :mod:`ganlab.config.sweep`; the executor (study, workers, parent
run) is :mod:`ganlab.studies`. Exit codes: 0 every variant finished, 1 at least one variant failed
(the others still ran), 2 the sweep was refused before anything was created (a bad file, key or
value in any variant, or a grid of more than ``MAX_VARIANTS`` variants without ``--force``),
128 + the signal when interrupted (130 for Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.redact import mask_credentials

#: The most variants a sweep expands without ``--force``: each is validated (and, without
#: --dry-run, trained and recorded as a run) one by one, so a grid far past this is a mistake.
MAX_VARIANTS = 10_000


def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep file: [base] run configuration + [grid] of values or [search] (see experiments/); or 'status' and a study name.")],
    study: Annotated[Optional[str], typer.Argument(help="With 'status': the study to show.", show_default=False)] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Workers to start here: 1 trains the variants one after another in this process, N starts N worker processes, 0 only creates the study and prints its name (workers elsewhere run `ganlab sweep-worker`).")] = 1,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override KEY=VALUE in the base of every variant, e.g. steps=200 (repeatable).")] = None,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", "-g", help="Replace or add a grid axis, KEY=V1,V2,... e.g. seed=0,1 (repeatable).")] = None,
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment (default: the file's `experiment`, else its name).")] = None,
    plugin: Annotated[Optional[list[str]], typer.Option("--plugin", "-p", help="Extra plugin: a path/to/file.py or an importable module (repeatable).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the variants (all validated) and exit.")] = False,
    force: Annotated[bool, typer.Option("--force", help=f"Expand a grid of more than {MAX_VARIANTS} variants.")] = False,
    rerun: Annotated[bool, typer.Option("--rerun", help="Train every variant again. By default a variant that already FINISHED in the experiment with the same settings and seed (e.g. before a Ctrl-C) is not trained again: its run is reused, so compare never counts one seed twice.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Let MLflow log what it does (also in every variant's process).")] = False,
    storage: Annotated[Optional[str], typer.Option(help="The study's storage, which workers anywhere pull trials from (postgresql://..., journal:PATH, sqlite:///...). [default: journal:mlruns/optuna.journal]")] = None,
    gpus: Annotated[Optional[str], typer.Option("--gpus", help="GPUs handed out to the workers in turn, e.g. 0,1,2,3 ('all': every visible one; 'none': no assignment).")] = None,
    heartbeat: Annotated[float, typer.Option("--heartbeat", min=0.1, help="Seconds between a running trial's heartbeats.")] = 10.0,
    grace: Annotated[float, typer.Option("--grace", min=0.5, help="A trial silent this many seconds has lost its worker (failed, retried once).")] = 60.0,
) -> None:
    """Train a grid of variants (e.g. heads x seeds) as one parent MLflow run with a child run each.

    A variant that already FINISHED in the experiment with the same settings and seed (a sweep started
    again after Ctrl-C) is reused, not trained again; --rerun trains every variant.

    Exit code 0 when every variant finished, 1 when any failed, 2 when the sweep is refused before it starts.
    """
    if verbose:
        # read by the record writer; variants' processes inherit it with the environment
        os.environ["GANLAB_VERBOSE"] = "1"
    if str(file) == "status" and not file.exists():
        from ganlab.cli.study import show_status

        show_status(study, storage)
        return
    if study is not None:
        raise typer.BadParameter(f"unexpected argument '{study}' (only `ganlab sweep status STUDY` takes two)")
    if gpus is not None:
        from ganlab.studies.gpus import GPUS_ENV

        if gpus == "all":  # every visible GPU: CUDA_VISIBLE_DEVICES, else nvidia-smi's list
            os.environ.pop(GPUS_ENV, None)
        else:
            os.environ[GPUS_ENV] = _gpu_list(gpus)
    from ganlab.plugins import load_plugins
    from ganlab.config.sweep import (
        check_axis,
        check_size,
        load_sweep,
        parse_grid_override,
        variants,
        vectorise_seed_axis,
        check_search_axes,
    )

    spec = load_sweep(file, experiment)
    for text in grid or []:
        key, values = parse_grid_override(text)
        spec.grid[key] = check_axis("--grid", key, values)
    if spec.population:  # a --grid seed=... of a population sweep gives each population its seeds
        vectorise_seed_axis(spec)
    check_search_axes(spec)
    check_size(spec, MAX_VARIANTS, force)  # counted from the axes before a single variant is expanded
    plugins = load_plugins(plugin)
    if spec.search is not None:  # validate the base and every distribution's key before anything is created
        from ganlab.config.sweep import build_variant

        found = [_search_probe(spec, set_ or [], plugins.registry, tracking_uri or "", build_variant)]
    else:
        found = variants(spec, set_ or [], plugins.registry, tracking_uri or "")
    if dry_run:
        if spec.search is not None:
            typer.echo(f"sweep '{spec.name}' -> experiment '{spec.experiment}': a search of {spec.search.n_trials} "
                       f"trial(s) over {', '.join(d.key for d in spec.search.distributions)}; all valid, nothing "
                       "trained (--dry-run)")
            return
        _print_plan(spec, found)
        return
    from ganlab.cli.study import run_study
    from ganlab.record.store import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    for variant in found:
        variant.config = variant.config.replace(tracking_uri=uri)
    code = run_study(spec, found, set_ or [], uri, storage, jobs, plugin or [], plugins.registry, heartbeat, grace,
                     explicit_uri=tracking_uri is not None, rerun=rerun)
    if code:
        raise typer.Exit(code)


def _search_probe(spec: Any, sets: list[str], registry: Any, uri: str, build_variant: Any) -> Any:
    """The search's base with every distribution at an inside value, validated as a trial would be."""
    from ganlab.config.sweep import Variant

    values = {d.key: d.middle() for d in spec.search.distributions}
    for distribution in spec.search.distributions:  # every choice, not only the first, must make a valid run
        for choice in distribution.choices[1:]:
            build_variant(spec, {**values, distribution.key: choice}, sets, registry, uri)
    return Variant(1, values, "search", build_variant(spec, values, sets, registry, uri))


def _gpu_list(text: str) -> str:
    """--gpus 0,1 | none, as the GANLAB_GPUS value the job and worker assignment reads."""
    if text != "none" and not all(part.strip() for part in text.split(",")):
        raise typer.BadParameter(f"--gpus {text!r}: a comma-separated list of GPU ids (e.g. 0,1,2,3), 'all' or 'none'")
    return text


def _print_plan(spec: Any, found: list[Any]) -> None:
    axes = " x ".join(f"{len(v)} {k}" for k, v in spec.grid.items()) or "no grid"
    if spec.exclude:
        axes += f", {spec.size - len(found)} excluded"
    typer.echo(f"sweep '{spec.name}' -> experiment '{spec.experiment}': {len(found)} variant(s) ({axes}); "
               f"all valid, nothing trained (--dry-run)")
    for variant in found:
        c = variant.config
        seeds = f"seeds={c.seeds} (one population)" if c.seeds else f"seed={c.seed}"
        typer.echo(f"{variant.index:4d}  {variant.name:<40}  {c.default_run_name()}  steps={c.steps} {seeds}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
