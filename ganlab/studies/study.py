"""A study made from a sweep file, its trials enqueued; and what ``ganlab sweep status`` shows of it.

Everything a worker needs is stored in the study itself (the storage is all workers share): the
MLflow tracking URI and parent run, each grid trial's resolved run configuration (TOML) as a
trial attribute, and for a search the sweep file's text, its ``--set`` overrides and the search
space, from which a worker builds each trial's configuration.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from ganlab.errors import ConfigError, GanlabError, one_line
from ganlab.redact import mask_credentials

#: Study user attribute holding the sweep's description (a JSON-able dict).
STUDY_ATTR = "ganlab.sweep"
#: Trial user attributes.
CONFIG_ATTR = "ganlab.config"        # a grid trial's run configuration, TOML
NAME_ATTR = "ganlab.name"            # the child run's name
HEARTBEAT_ATTR = "ganlab.heartbeat"  # unix time of the worker's last heartbeat
WORKER_ATTR = "ganlab.worker"        # host:pid of the worker running it
RUN_ATTR = "ganlab.run_id"           # the MLflow child run
REASON_ATTR = "ganlab.reason"        # why a trial failed
RETRY_ATTR = "ganlab.retry_of"       # the trial number this trial retries
DEAD_ATTR = "ganlab.worker_died"     # unix time a reaper failed it for a dead worker
DEFAULT_HEARTBEAT = 10.0             # seconds between heartbeats
DEFAULT_GRACE = 60.0                 # a RUNNING trial silent this long has lost its worker


@dataclass
class Created:
    name: str
    parent_id: str
    trials: int


def create_study(spec: Any, found: list[Any], sets: list[str], uri: str, storage_url: str, plugin_specs: list[str],
                 registry: Any, heartbeat: float = DEFAULT_HEARTBEAT, grace: float = DEFAULT_GRACE) -> Created:
    """Open the sweep's parent run and a study holding one waiting trial per variant (or per search trial)."""
    import optuna

    from ganlab.cli.sweep_jobs import SweepRunner
    from ganlab.studies.storage import open_storage

    search = spec.search
    if search is not None and search.objective:
        check_objective(search.objective, found[0].config, registry)
    storage = open_storage(storage_url)
    runner = SweepRunner(spec, found if search is None else [], uri, plugin_specs, sets=sets)
    parent_id = runner.open_parent()
    try:
        return _fill(spec, found, sets, uri, storage, storage_url, plugin_specs, heartbeat, grace, runner, parent_id,
                     optuna)
    except BaseException as exc:  # the storage failed after the parent run was opened: close it
        runner.client.set_terminated(parent_id, status="FAILED")
        if isinstance(exc, GanlabError) or not isinstance(exc, Exception):
            raise
        raise GanlabError(f"the study's storage failed while the study was made: {one_line(exc)}") from None


def _fill(spec: Any, found: list[Any], sets: list[str], uri: str, storage: Any, storage_url: str,
          plugin_specs: list[str], heartbeat: float, grace: float, runner: Any, parent_id: str, optuna: Any) -> Created:
    """The study itself, its description and its trials, under the parent run just opened."""
    search = spec.search
    if search is not None and spec.population:  # the seeds a --grid seed=... gave, kept for the workers
        sets = [*sets, f"seeds={spec.base['seeds']}"]
    name = f"{spec.name}-{parent_id[:8]}"
    direction = search.direction if search is not None else "maximize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    described = {
        "tracking_uri": uri, "parent_run_id": parent_id, "experiment_id": runner.experiment_id,
        "experiment": spec.experiment, "sweep": spec.name, "plugins": plugin_specs, "heartbeat": heartbeat,
        "grace": grace, "search": search.to_json() if search is not None else None,
        "file": spec.path.read_text(encoding="utf-8") if search is not None else None,
        "file_name": spec.path.name, "sets": sets, "created": time.time(), "host": socket.gethostname(),
    }
    study.set_user_attr(STUDY_ATTR, described)
    if search is None:
        for variant in found:
            config = variant.config.replace(parent_run_id=parent_id)
            study.enqueue_trial({}, user_attrs={CONFIG_ATTR: config.to_toml(), NAME_ATTR: variant.name})
        count = len(found)
    else:
        for _ in range(search.n_trials):
            study.enqueue_trial({})
        count = search.n_trials
    from mlflow.entities import RunTag

    runner.client.log_batch(parent_id, tags=[RunTag("ganlab.study", name), RunTag("ganlab.storage", mask_credentials(storage_url))])
    return Created(name, parent_id, count)


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


def load_study(name: str, storage_url: str) -> tuple[Any, dict[str, Any]]:
    """An existing study, with the sampler its search asked for, and its sweep description; one line
    when either is missing."""
    import optuna

    from ganlab.studies.storage import open_storage

    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        search = (study.user_attrs.get(STUDY_ATTR) or {}).get("search") or {}
        if search.get("sampler") == "random":
            study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        from ganlab.errors import did_you_mean

        raise GanlabError(f"no study '{name}' in {mask_credentials(storage_url)}{did_you_mean(name, known)} "
                          f"(studies: {', '.join(known[-8:]) or 'none'})") from None
    described = study.user_attrs.get(STUDY_ATTR)
    if not isinstance(described, dict):
        raise GanlabError(f"study '{name}' was not made by ganlab sweep (it has no {STUDY_ATTR} attribute)")
    return study, described


def unretried_deaths(trials: list[Any]) -> list[Any]:
    """Trials failed for a dead worker whose retry is not enqueued yet (the reaper is between the two)."""
    from optuna.trial import TrialState

    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials if RETRY_ATTR in t.user_attrs}
    # within a minute of the reaper's verdict: a reaper that died between the two must not hold everyone
    return [t for t in trials if t.state == TrialState.FAIL and DEAD_ATTR in t.user_attrs
            and RETRY_ATTR not in t.user_attrs and t.number not in retried
            and time.time() - float(t.user_attrs[DEAD_ATTR]) < 60]


def status_counts(study: Any) -> dict[str, Any]:
    """done / running / failed / pruned / left, with a retried trial counted once (as its retry)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials if RETRY_ATTR in t.user_attrs}
    counts = {"done": 0, "running": 0, "failed": 0, "pruned": 0, "left": 0, "retried": 0,
              "awaiting_retry": len(unretried_deaths(trials))}
    failures = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            counts["done"] += 1
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
            failures.append((t.number, t.user_attrs.get(NAME_ATTR, ""), t.user_attrs.get(REASON_ATTR, "no reason recorded")))
    counts["failures"] = failures
    return counts


def described_json(described: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in described.items() if k != "file"}, default=str)
