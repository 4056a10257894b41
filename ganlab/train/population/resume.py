"""``ganlab resume PARENT``: continue a population from its children's checkpoints.

A child that diverged stays FAILED (its trajectory ended there); a finished
child is trained further only with ``--steps``; every other child (KILLED,
FAILED for another reason, left RUNNING by a dead process) resumes from its
newest checkpoint. A vectorised population resumes as one: its children's
checkpoints must be at one step. A sequential one resumes its children one
after another and then trains the seeds it had not reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ganlab.config import parse_seeds
from ganlab.errors import GanlabError
from ganlab.train.population.record import MODE_TAG, SEEDS_TAG


@dataclass
class PopulationResume:
    parent_id: str
    seeds: list[int]
    run_ids: dict[int, str] = field(default_factory=dict)
    #: the checkpoint each resumed child continues from; None for a seed that starts afresh
    states: dict[int, dict[str, Any] | None] = field(default_factory=dict)


def is_population(run: Any) -> bool:
    return SEEDS_TAG in run.data.tags


def children_of(client: Any, run: Any) -> dict[int, Any]:
    from ganlab.record.store import search_all

    found = search_all(client, [run.info.experiment_id],
                       f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    children: dict[int, Any] = {}
    for child in found:
        if child.info.lifecycle_stage == "deleted":
            continue
        seed = int(child.data.params.get("seed", -1))
        if seed in children:  # a seed started twice (an earlier resume): the newest holds the trajectory
            if child.info.start_time <= children[seed].info.start_time:
                continue
        children[seed] = child
    return children


def diverged(child: Any) -> bool:
    return child.info.status == "FAILED" and child.data.tags.get("ganlab.failure_reason", "").startswith("non-finite")


def resume_population(run: Any, plugins: Any, uri: str, steps: int | None) -> Any:
    """Resume the population whose parent is ``run``, owning it and every child it resumes."""
    import contextlib

    from ganlab.train.resume import owning

    with contextlib.ExitStack() as owned:
        owned.enter_context(owning(run, "population"))
        return _resume_population_owned(run, plugins, uri, steps, owned)


def _resume_population_owned(run: Any, plugins: Any, uri: str, steps: int | None, owned: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.record.store import client
    from ganlab.train.population.launch import run_population
    from ganlab.train.resume import check_not_running, latest_checkpoint, owning

    parent_id = run.info.run_id
    seeds = parse_seeds(run.data.tags[SEEDS_TAG])
    mode = run.data.tags.get(MODE_TAG, "vectorised")
    if run.info.status == "FINISHED" and steps is None:
        raise GanlabError(f"population '{parent_id}' already FINISHED; pass --steps N to train it further")
    children = children_of(client(uri), run)
    plan = PopulationResume(parent_id, [])
    config_source = None
    ended = None  # a child that finished or diverged
    for seed in seeds:
        child = children.get(seed)
        if child is None:
            if mode == "vectorised":
                raise GanlabError(f"population '{parent_id}' has no child run for seed {seed}; it cannot resume "
                                  "as one vectorised model")
            plan.seeds.append(seed)
            plan.states[seed] = None
            continue
        if diverged(child) or (child.info.status == "FINISHED" and steps is None):
            ended = ended or child  # its checkpoint still holds the population's configuration
            continue
        owned.enter_context(owning(child))
        check_not_running(child)
        path, state = latest_checkpoint(child)
        plan.seeds.append(seed)
        plan.run_ids[seed] = child.info.run_id
        plan.states[seed] = state
        config_source = config_source or (path, state)
    if not plan.seeds:
        raise GanlabError(f"population '{parent_id}' has no child left to train: each one finished or diverged "
                          "(pass --steps N to train the finished ones further)")
    if config_source is None and ended is not None:  # stopped between two seeds: the next ones start afresh
        config_source = latest_checkpoint(ended)
    if config_source is None:
        raise GanlabError(f"population '{parent_id}' has no child with a checkpoint to take its configuration from"
                          f"{'; it was stopped before its first seed trained: start it again with ganlab run' if not children else ''}")
    path, state = config_source
    sets: dict[str, Any] = {"tracking_uri": uri, "tracking": True, "seeds": ",".join(map(str, plan.seeds)),
                            "parent_run_id": run.data.params.get("parent_run_id", "")}
    if steps is not None:
        sets["steps"] = steps
    config = ConfigBuilder().add_mapping(state["config"], f"checkpoint {path.name}").add_mapping(
        sets, "resume").build(plugins.registry)
    at = {int(s["step"]) for s in plan.states.values() if s is not None}
    if at and max(at) >= config.steps:
        raise GanlabError(f"population '{parent_id}' is at step {max(at)} of {config.steps}; "
                          f"pass --steps N with N > {max(at)}")
    if mode == "vectorised" and len(at) > 1:
        raise GanlabError(f"the children of population '{parent_id}' have checkpoints at different steps "
                          f"({', '.join(map(str, sorted(at)))}); resume them one by one with `ganlab resume CHILD`")
    return run_population(config, plugins, resume=plan)


def resume_run_or_population(run_id: str, plugins: Any, tracking_uri: str | None = None,
                             steps: int | None = None) -> Any:
    """``ganlab resume``: a population's parent resumes the population; any other run resumes alone;
    a directory is an untracked run's ``run_dir``."""
    from pathlib import Path

    from ganlab.record.store import find_run, tracking_uri as resolve_uri
    from ganlab.train.resume import resume_directory, resume_run

    if Path(run_id).is_dir():  # an untracked run's run_dir
        return resume_directory(Path(run_id), plugins, steps)
    uri = resolve_uri(tracking_uri)
    run = find_run(run_id, uri)
    if is_population(run) and run.info.lifecycle_stage != "deleted":
        return resume_population(run, plugins, uri, steps)
    return resume_run(run.info.run_id, plugins, tracking_uri, steps)
