"""Pruning from inside a trial's run: report each evaluation's objective to the trial, stop when pruned.

The worker loads this module as a plugin (``ganlab.studies.pruning``) into the runs of
a study whose ``[search]`` sets ``pruner = "median"``, and names the trial in the environment
(``GANLAB_STUDY_TRIAL = storage|study|trial id``). When Optuna's median pruner says the trial
trails the others at this step, the run stops the way a SIGTERM stops it (a checkpoint, the
MLflow run KILLED) after marking the trial, which the worker then tells the study is PRUNED.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from ganlab import hookimpl

#: GANLAB_STUDY_TRIAL's value -> (the trial, the study's objective); a worker that trains its trials in
#: process runs several here, one after another
_trial: dict[str, tuple[Any, str | None]] = {}


def _the_trial() -> tuple[Any, str | None]:
    named = os.environ["GANLAB_STUDY_TRIAL"]
    if named not in _trial:
        import optuna

        from ganlab.studies.storage import open_storage

        storage_url, study_name, trial_id = named.rsplit("|", 2)
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
        objective = (study.user_attrs["ganlab.sweep"].get("search") or {}).get("objective")
        _trial[named] = (optuna.trial.Trial(study, int(trial_id)), objective)
    return _trial[named]


@hookimpl
def on_evaluate(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    if "GANLAB_STUDY_TRIAL" not in os.environ:
        return
    trial, objective = _the_trial()
    if objective not in metrics:
        return
    trial.report(float(metrics[objective]), step)
    if trial.should_prune():
        from ganlab.studies.worker import PRUNED_ATTR

        trial.study._storage.set_trial_user_attr(trial._trial_id, PRUNED_ATTR, step)
        os.kill(os.getpid(), signal.SIGTERM)  # the engine finishes this step, checkpoints and stops
