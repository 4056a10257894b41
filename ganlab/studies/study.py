"""A study made from a sweep file, its trials enqueued; and what ``ganlab sweep status`` shows of it.

Everything a worker needs is stored in the study itself (the storage is all workers share): the
MLflow tracking URI and parent run, each grid trial's resolved run configuration (TOML) as a
trial attribute, and for a search the sweep file's text, its ``--set`` overrides and the search
space, from which a worker builds each trial's configuration.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ganlab.errors import ConfigError, GanlabError, did_you_mean, one_line
from ganlab.redact import mask_credentials

#: Study user attribute holding the sweep's description (a JSON-able dict).
STUDY_ATTR = "ganlab.sweep"
#: Trial user attributes.
CONFIG_ATTR = "ganlab.config"        # a grid trial's run configuration, TOML
NAME_ATTR = "ganlab.name"            # the child run's name
WORKER_ATTR = "ganlab.worker"        # host:pid of the worker running it
RUN_ATTR = "ganlab.run_id"           # the MLflow child run
REASON_ATTR = "ganlab.reason"        # why a trial failed
REUSED_ATTR = "ganlab.reused"        # a variant that had FINISHED before: its earlier run, not trained again
#: Optuna's retry callback's system attribute: the number of the trial a retry retries.
RETRY_OF = "failed_trial"
#: Why a trial failed when its worker stopped sending heartbeats: Optuna fails it (a finished trial then
#: takes no attribute), and every other failure records its reason.
STALE = "its worker stopped sending heartbeats (killed, or its machine lost)"
DEFAULT_HEARTBEAT = 10.0             # seconds between heartbeats
DEFAULT_GRACE = 60.0                 # a RUNNING trial silent this long has lost its worker


@dataclass
class Created:
    name: str
    parent_id: str
    trials: int
    reused: int


def create_study(spec: Any, found: list[Any], sets: list[str], uri: str, storage_url: str, plugin_specs: list[str],
                 registry: Any, heartbeat: float = DEFAULT_HEARTBEAT, grace: float = DEFAULT_GRACE, jobs: int = 1,
                 rerun: bool = True, say: Callable[[str], None] = lambda text: None) -> Created:
    """Open the sweep's parent run and a study holding one waiting trial per variant (or per search trial).

    A grid variant that already FINISHED in the experiment with the same settings and seed is
    entered COMPLETE with its earlier run (unless ``rerun``), not trained again."""
    import optuna

    from ganlab.record.store import client as mlflow_client
    from ganlab.studies.parent import open_parent
    from ganlab.studies.storage import open_storage

    search = spec.search
    if search is not None and search.objective:
        check_objective(search.objective, found[0].config, registry)
    storage = open_storage(storage_url)
    client = mlflow_client(uri)
    variants = found if search is None else []
    parent_id, experiment_id = open_parent(client, uri, spec, variants, jobs, sets)
    try:
        return _fill(spec, variants, sets, uri, storage, storage_url, plugin_specs, heartbeat, grace, client,
                     parent_id, experiment_id, rerun, say, optuna)
    except BaseException as exc:  # the storage failed after the parent run was opened: close it
        client.set_terminated(parent_id, status="FAILED")
        if isinstance(exc, GanlabError) or not isinstance(exc, Exception):
            raise
        raise GanlabError(f"the study's storage failed while the study was made: {one_line(exc)}") from None


def _fill(spec: Any, variants: list[Any], sets: list[str], uri: str, storage: Any, storage_url: str,
          plugin_specs: list[str], heartbeat: float, grace: float, client: Any, parent_id: str, experiment_id: str,
          rerun: bool, say: Callable[[str], None], optuna: Any) -> Created:
    """The study itself, its description and its trials, under the parent run just opened."""
    from mlflow.entities import RunTag

    from ganlab.studies.parent import finished_runs, mark_reused

    search = spec.search
    if search is not None and spec.population:  # the seeds a --grid seed=... gave, kept for the workers
        sets = [*sets, f"seeds={spec.base['seeds']}"]
    name = f"{spec.name}-{parent_id[:8]}"
    direction = search.direction if search is not None else "maximize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    study.set_user_attr(STUDY_ATTR, {
        "tracking_uri": uri, "parent_run_id": parent_id, "experiment_id": experiment_id,
        "experiment": spec.experiment, "sweep": spec.name, "plugins": plugin_specs, "heartbeat": heartbeat,
        "grace": grace, "search": search.to_json() if search is not None else None,
        "file": spec.path.read_text(encoding="utf-8") if search is not None else None,
        "file_name": spec.path.name, "sets": sets, "created": time.time(), "host": socket.gethostname(),
    })
    reused = {} if rerun or search is not None else finished_runs(client, experiment_id, variants)
    for variant in variants:
        config = variant.config.replace(parent_run_id=parent_id)
        attrs = {CONFIG_ATTR: config.to_toml(), NAME_ATTR: variant.name}
        if variant.index in reused:
            run_id = reused[variant.index]
            mark_reused(client, run_id, parent_id, variant.name)
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.0,
                                                      user_attrs={**attrs, RUN_ATTR: run_id, REUSED_ATTR: True}))
        else:
            study.enqueue_trial({}, user_attrs=attrs)
    for _ in range(search.n_trials if search is not None else 0):
        study.enqueue_trial({})
    if reused:
        left = len(variants) - len(reused)
        say(f"note: {len(reused)} of {len(variants)} variants already finished in experiment '{spec.experiment}'; "
            f"running {f'the other {left}' if left else 'none'} (--rerun trains them all again)")
    client.log_batch(parent_id, tags=[RunTag("ganlab.study", name),
                                      RunTag("ganlab.storage", mask_credentials(storage_url))])
    return Created(name, parent_id, len(variants) or search.n_trials, len(reused))


def check_objective(objective: str, config: Any, registry: Any) -> None:
    """The objective must be a metric the runs log: a selected metric component's (or the losses)."""
    components = ([registry.get("metric", n) for n in config.metric_names] if config.metric_names is not None
                  else registry.of_kind("metric"))
    prefixes = {str(c.metadata.get("logs", c.name)) for c in components} | {"loss"}
    prefix = objective.split(".", 1)[0]
    if "." not in objective or prefix not in prefixes:
        raise ConfigError(f"[search] objective '{objective}': no run of this sweep logs it; the runs log "
                          f"{', '.join(sorted(p + '.*' for p in prefixes))} (metrics = "
                          f"{','.join(config.metric_names) if config.metric_names is not None else 'auto'})")


def load_study(name: str, storage_url: str, on_stale: Callable[[Any, Any], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """An existing study, with the sampler its search asked for, and its sweep description; one line
    when either is missing. With ``on_stale`` (a worker's), its storage writes heartbeats at the
    study's interval and calls ``on_stale`` for each trial ``fail_stale_trials`` failed."""
    import optuna

    from ganlab.studies.storage import open_storage

    storage = open_storage(storage_url)
    try:
        described = optuna.load_study(study_name=name, storage=storage).user_attrs.get(STUDY_ATTR)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise GanlabError(f"no study '{name}' in {mask_credentials(storage_url)}{did_you_mean(name, known)} "
                          f"(studies: {', '.join(known[-8:]) or 'none'})") from None
    if not isinstance(described, dict):
        raise GanlabError(f"study '{name}' was not made by ganlab sweep (it has no {STUDY_ATTR} attribute)")
    if on_stale is not None:
        storage = open_storage(storage_url, described["heartbeat"], described["grace"], on_stale)
    sampler = optuna.samplers.RandomSampler() if (described.get("search") or {}).get("sampler") == "random" else None
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler), described


def retried_numbers(trials: Sequence[Any]) -> set[int]:
    """The numbers of the trials that a later trial retries (or completes from their run)."""
    return {t.system_attrs[RETRY_OF] for t in trials if RETRY_OF in t.system_attrs}


def status_counts(study: Any) -> dict[str, Any]:
    """done / running / failed / pruned / left, with a retried trial counted once (as its retry)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    counts: dict[str, Any] = {"done": 0, "running": 0, "failed": 0, "pruned": 0, "left": 0, "retried": 0,
                              "reused": 0}
    failures = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            counts["done"] += 1
            counts["reused"] += bool(t.user_attrs.get(REUSED_ATTR))
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif t.state == TrialState.WAITING:
            counts["left"] += 1
        elif t.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif t.number in retried:
            counts["retried"] += 1
        else:
            counts["failed"] += 1
            failures.append((t.number, t.user_attrs.get(NAME_ATTR, ""), t.user_attrs.get(REASON_ATTR, STALE),
                             t.user_attrs.get(RUN_ATTR)))
    counts["failures"] = failures
    return counts

