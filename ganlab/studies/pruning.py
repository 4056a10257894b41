"""Pruning from inside a trial's run: report each evaluation's objective to the trial, stop when pruned.

The worker loads this module as a plugin (``--plugin ganlab.studies.pruning``) into the runs of
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

_trial: dict[str, Any] = {}


def _the_trial() -> Any:
    if "trial" not in _trial:
        import optuna

        from ganlab.studies.storage import open_storage

        storage_url, study_name, trial_id = os.environ["GANLAB_STUDY_TRIAL"].rsplit("|", 2)
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
        _trial["trial"] = optuna.trial.Trial(study, int(trial_id))
        _trial["objective"] = (study.user_attrs["ganlab.sweep"].get("search") or {}).get("objective")
    return _trial["trial"]


@hookimpl
def on_evaluate(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    if "GANLAB_STUDY_TRIAL" not in os.environ:
        return
    trial = _the_trial()
    objective = _trial["objective"]
    if objective not in metrics:
        return
    trial.report(float(metrics[objective]), step)
    if trial.should_prune():
        from ganlab.studies.worker import PRUNED_ATTR

        trial.study._storage.set_trial_user_attr(trial._trial_id, PRUNED_ATTR, step)
        os.kill(os.getpid(), signal.SIGTERM)  # the engine finishes this step, checkpoints and stops
