"""A sweep's MLflow parent run, its children, and the earlier runs a sweep reuses.

Children carry MLflow's ``mlflow.parentRunId`` tag (through the ``parent_run_id`` setting the
tracker reads), so the MLflow UI shows them under the parent and ``ganlab compare --sweep`` finds
them. A variant that failed before its run existed (e.g. a dataset that would not load) gets a
FAILED placeholder child, so every variant of a sweep has a run to look at.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

# the tag on an earlier run that a sweep reuses for a variant (see finished_runs): compare reads it
from ganlab.compare.stats import GRID_TAG, PARENT_TAG, REUSED_TAG_PREFIX, ROLE_TAG
from ganlab.errors import one_line

#: Tags on a child run: the worker slot that ran it, and the CUDA_VISIBLE_DEVICES it was given.
SLOT_TAG = "ganlab.sweep.slot"
GPU_TAG = "ganlab.sweep.gpu"


def open_parent(client: Any, uri: str, spec: Any, variants: Sequence[Any], jobs: int,
                sets: Sequence[str]) -> tuple[str, str]:
    """The parent run of a sweep about to run (RUNNING): (its run id, its experiment id)."""
    from mlflow.entities import Param

    from ganlab.record.store import ensure_experiment
    from ganlab.record.tracker import git_commit

    experiment_id = ensure_experiment(client, spec.experiment, uri)
    tags = {ROLE_TAG: "parent", GRID_TAG: spec.grid_json()[:5000], "ganlab.sweep.file": str(spec.path)}
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    commit = git_commit()
    if commit:
        tags["ganlab.git_commit"] = commit
    parent_id = client.create_run(experiment_id, run_name=spec.name, tags=tags).info.run_id
    params = {"sweep.grid": spec.grid_json(), "sweep.variants": len(variants), "sweep.jobs": jobs,
              "sweep.file": str(spec.path), "sweep.set": ",".join(sets) or "-"}
    client.log_batch(parent_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    if spec.path.is_file():
        client.log_artifact(parent_id, str(spec.path), artifact_path="sweep")
    client.log_dict(parent_id, [{"index": v.index, "name": v.name, "values": v.values} for v in variants],
                    "sweep/variants.json")
    return parent_id, experiment_id


def close_parent(client: Any, parent_id: str, done: int, failed: Sequence[str], pruned: int, status: str) -> None:
    """The sweep's counts on its parent run, and its end (FINISHED, FAILED or KILLED); once only."""
    from mlflow.entities import Metric, RunTag

    if client.get_run(parent_id).info.status != "RUNNING":
        return
    now = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric("sweep.finished", done, now, 0),
                                         Metric("sweep.failed", len(failed), now, 0),
                                         Metric("sweep.pruned", pruned, now, 0)],
                     tags=[RunTag("ganlab.sweep.failed_variants", ", ".join(failed)[:5000] or "-")])
    client.set_terminated(parent_id, status=status)


def child_run_id(client: Any, experiment_id: str, parent_id: str, name: str) -> str | None:
    quoted = name.replace("'", "\\'")
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.run_name = '{quoted}'",
        max_results=1)
    return found[0].info.run_id if found else None


def placeholder(client: Any, experiment_id: str, parent_id: str, name: str, config: Any, error: Any) -> str:
    """A FAILED child for a variant that failed before its run existed."""
    from mlflow.entities import Param, RunTag

    from ganlab.record.outputs import param_value

    message = error if isinstance(error, str) else one_line(error, plain_ganlab_errors=True)
    run_id = client.create_run(experiment_id, run_name=name, tags={PARENT_TAG: parent_id}).info.run_id
    client.log_batch(run_id, params=[Param(k, param_value(v)) for k, v in config.flat().items()],
                     tags=[RunTag("ganlab.error", message[:4000] or "failed"),
                           RunTag("ganlab.failure_reason", "failed before training started")])
    client.set_terminated(run_id, status="FAILED")
    return run_id


def finished_runs(client: Any, experiment_id: str, variants: Sequence[Any]) -> dict[int, str]:
    """Variant index -> the newest FINISHED run of the experiment with the same settings and seed.

    A sweep started again (after Ctrl-C, a crash, a failed variant) would otherwise train those
    variants a second time, and ``ganlab compare`` would count the same seed twice. The same
    settings: every param of the variant's fully resolved configuration, as the tracker records it,
    except those that only name, place or nest a run (``ganlab.compare.replicas.PLACEMENT``);
    ``seeds`` counts, so a population is never taken for one of its replicas. Deleted runs are not
    searched.
    """
    from ganlab.compare.replicas import identity, matches
    from ganlab.record.outputs import param_value
    from ganlab.record.store import search_all

    runs = search_all(client, [experiment_id], "attributes.status = 'FINISHED'")
    runs = [r for r in runs if r.data.tags.get(ROLE_TAG) != "parent"]  # a sweep's parent trained nothing
    found: dict[int, str] = {}
    for variant in variants:
        wanted = identity({k: param_value(v) for k, v in variant.config.flat().items()})
        same = [r for r in runs if matches(wanted, r)]
        if same:  # search_all is oldest first
            found[variant.index] = same[-1].info.run_id
    return found


def mark_reused(client: Any, run_id: str, parent_id: str, name: str) -> None:
    """Tag an earlier run as the sweep ``parent_id``'s own, so ``compare --sweep`` finds every variant."""
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(REUSED_TAG_PREFIX + parent_id, name)])
