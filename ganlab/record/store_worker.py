"""The process that writes a run's MLflow record (see ganlab.record.store_process for why).

Started as ``python -m ganlab.record.store_worker READ_FD WRITE_FD``. It reads requests
``(operation, args)`` from one pipe, carries each out with an MlflowClient and
answers every one, in order, on the other: ``("ok", result)`` or
``("error", one-line message)``. It ends when the pipe closes, after the
requests already sent: the training process closing it (or dying) is the only
way to stop it, so no record is cut short by a signal meant for training.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError
from ganlab.record.logged_images import parse as logged_image
from ganlab.record.outputs import shown_path
from ganlab.record.pictures import Picture, render
from ganlab.record.store import client, ensure_experiment, sqlite_path, store_error
from ganlab.redact import MaskingStream, mask_credentials

#: tags describing how an attempt ended; removed when the run resumes
END_TAGS = {"ganlab.error", "ganlab.error_type", "ganlab.failed_step", "ganlab.failure_reason",
            "ganlab.killed_at_step", "ganlab.killed_by"}


class Session:
    """One run's record: the operations the tracker asks for, on one store."""

    def __init__(self) -> None:
        self.client: Any = None
        self.uri = ""
        self.inode: int | None = None  # of the SQLite file opened: a different one later was put in its place

    def open(self, uri: str) -> None:
        self.uri = uri
        self.client = client(uri)
        database = sqlite_path(uri)
        if database is not None:
            self.inode = database.stat().st_ino
        self.warm_up()

    def warm_up(self) -> None:
        """Pay first-use costs now, while the training process is still starting up.

        Otherwise they fall on the run's first params and first image, that is on
        the training process's wait for its run id or on a core the training
        threads are using: importing Pillow and configuring SQLAlchemy's mappers
        (at the first database object). Their cost: docs/benchmarks.md.
        """
        import PIL.Image
        import PIL.PngImagePlugin  # noqa: F401
        from sqlalchemy.orm import configure_mappers

        configure_mappers()  # the store's models are imported by now; a no-op for other stores

    def start_run(self, experiment: str, run_name: str, tags: dict[str, str],
                  params: dict[str, str]) -> tuple[str, str]:
        from mlflow.entities import Param

        experiment_id = ensure_experiment(self.client, experiment, self.uri)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=masked(tags))
        params_list = [Param(k, v) for k, v in masked(params).items()]
        for start in range(0, len(params_list), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run.info.run_id, params=params_list[start:start + 100])
        return run.info.run_id, run.info.artifact_uri

    def resume_run(self, run_id: str, tags: dict[str, str]) -> tuple[str, dict[str, int]]:
        """Reopen a run; returns its artifact URI and the last step of everything already stored."""
        from mlflow.entities import RunTag

        run = self.client.get_run(run_id)
        stored = self.stored_steps(run)
        self.client.update_run(run_id, status="RUNNING")
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in masked(tags).items()])
        for stale in END_TAGS & set(run.data.tags):  # they describe the attempt that ended
            self.client.delete_tag(run_id, stale)
        return run.info.artifact_uri, stored

    def stored_steps(self, run: Any) -> dict[str, int]:
        run_id = run.info.run_id
        steps = {key: max((m.step for m in self.client.get_metric_history(run_id, key)), default=-1)
                 for key in run.data.metrics}
        steps["samples"] = -1
        for found in self.client.list_artifacts(run_id, "images"):
            image = logged_image(Path(found.path).name)
            if image is not None:  # the sample grids under "samples", a metric's pictures under "images/KEY"
                name = "samples" if image.key == "samples" else f"images/{image.key}"
                steps[name] = max(steps.get(name, -1), image.step)
        return steps

    def log_batch(self, run_id: str, metrics: list[tuple[str, float, int, int]] = (),  # type: ignore[assignment]
                  params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        metric_list = [Metric(*m) for m in metrics]
        tag_list = [RunTag(k, v) for k, v in masked(tags or {}).items()]
        param_list = [Param(k, v) for k, v in masked(params or {}).items()]
        while True:  # MLflow takes at most 1000 metrics and 100 params per batch
            self.client.log_batch(run_id, metrics=metric_list[:1000], params=param_list[:100], tags=tag_list)
            metric_list, param_list, tag_list = metric_list[1000:], param_list[100:], []
            if not metric_list and not param_list:
                return

    def log_image(self, run_id: str, picture: Picture, key: str | None = None, step: int | None = None,
                  artifact_file: str | None = None) -> None:
        image = render(picture)
        if artifact_file is not None:
            self.client.log_image(run_id, image, artifact_file=artifact_file)
        else:
            self.client.log_image(run_id, image, key=key, step=step)

    def log_animation(self, run_id: str, key: str) -> int:
        """The pictures logged under image ``key``, one per step in step order, as one animated GIF: the
        artifact ``KEY/animation.gif``. Returns its frames (0: no picture, nothing logged)."""
        import tempfile

        from PIL import Image

        from ganlab.record.logged_images import logged_images, read_image
        from ganlab.record.pictures import animate, one_per_step

        run = self.client.get_run(run_id)
        images = one_per_step(logged_images(self.client, run), key)
        if not images:
            return 0
        with tempfile.TemporaryDirectory(prefix="ganlab-animation-") as folder:
            path = Path(folder) / "animation.gif"
            frames = animate([Image.open(io.BytesIO(read_image(self.client, run, image))) for image in images], path)
            self.client.log_artifact(run_id, str(path), artifact_path=key)
        return frames

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, masked(data), artifact_file)  # a data card names its source

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, path, artifact_path=artifact_path)

    def end_run(self, run_id: str, status: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        try:
            if tags:
                self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in masked(tags).items()])
        finally:
            self.client.set_terminated(run_id, status=status)

    def operation(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in OPERATIONS:
            raise GanlabError(f"unknown tracking operation '{name}'")
        return getattr(self, name)


def masked(value: Any) -> Any:
    """Params, tags or a JSON document with the password of every URL in their strings masked.

    Everything a run records passes here: the configuration's own ``tracking_uri``, a dataset's
    source, a failure's message (``ganlab.error``) may each carry one, and a store is read by more
    people than the password is meant for.
    """
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(item) for item in value]
    return value


OPERATIONS = {"open", "start_run", "resume_run", "log_batch", "log_image", "log_animation", "log_text", "log_dict",
              "log_artifact", "end_run"}


def describe(exc: BaseException, session: Session) -> tuple[str, str]:
    """The failure in one line, naming the store, and its kind (see ganlab.record.store_process.TrackingError)."""
    if isinstance(exc, GanlabError):
        return str(exc), "refused"
    found = store_trouble(session.uri, session.inode)
    if found is not None:
        return found
    return mask_credentials(f"MLflow store {session.uri}: {type(exc).__name__}: {store_error(exc)}"), "refused"


def store_trouble(uri: str, inode: int | None) -> tuple[str, str] | None:
    """What happened to a local SQLite store whose write failed, when the file system tells.

    SQLite's own word is misleading here: a database file deleted or replaced
    under an open connection fails every write with "attempt to write a
    readonly database".
    """
    path = sqlite_path(uri)
    if path is None:
        return None
    store = shown_path(path)
    try:
        found = path.stat()
    except FileNotFoundError:
        return f"the tracking store {store} was deleted", "deleted"
    except OSError as exc:
        return f"the tracking store {store} cannot be reached: {exc.strerror}", "refused"
    if path.is_dir():
        return f"the tracking store {store} was replaced by a directory", "replaced"
    if inode is not None and found.st_ino != inode:
        return f"the tracking store {store} was replaced by another file", "replaced"
    if not os.access(path, os.W_OK):
        return f"the tracking store {store} is read-only", "readonly"
    if not os.access(path.parent, os.W_OK):  # SQLite writes its journal beside the database
        return f"the directory of the tracking store {store} is read-only", "readonly"
    return None


def serve(requests: Connection, replies: Connection) -> None:
    session = Session()
    broken: tuple[str, str] | None = None  # after a failed open every request gets the same answer
    while True:
        try:
            name, args, kwargs = requests.recv()
        except (EOFError, OSError):
            return
        if name == "open":  # the next record of the training process (ganlab.record.store_process.reusable_writers)
            session, broken = Session(), None
        if broken is not None:
            replies.send(("error", broken))
            continue
        try:
            result = session.operation(name)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the training process
            failure = describe(exc, session)
            if name == "open":
                broken = failure
            replies.send(("error", failure))
        else:
            replies.send(("ok", result))


def main(argv: list[str]) -> int:
    # A Ctrl-C in the terminal reaches the whole process group; the training process
    # handles it and closes the run through this process, which must still be there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal: the trainer ends the record
    # Before MLflow is imported (its log handler keeps the stream it finds): whatever this process
    # says on stderr (MLflow's messages with --verbose, a traceback) is said without passwords.
    sys.stderr = MaskingStream(sys.stderr)
    read_fd, write_fd = int(argv[0]), int(argv[1])
    serve(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    # Every answer is sent and every write committed; skipping the interpreter's tear-down of
    # MLflow and SQLAlchemy saves the training process most of a second of waiting for this exit.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
