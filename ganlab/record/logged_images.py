"""Pictures a run logged under an MLflow image key (``samples``, ``field``, a metric's picture), read back.

``MlflowClient.log_image(run_id, image, key=KEY, step=STEP)`` (MLflow 3) writes two files per call
into the run's artifacts::

    images/<KEY, '/' written '~'>+step+<STEP>+timestamp+<ms>+<uuid>.png               the image as logged
    images/<KEY, '/' written '~'>+step+<STEP>+timestamp+<ms>+<uuid>+compressed.webp   a thumbnail for its UI

Earlier MLflow versions separated the fields with '%' and wrote '/' as '#' (MLflow's own comment on
this code says so). A key holds only letters, digits and ``_-./ `` (MLflow refuses others), so no
separator can occur inside it. Only the ``.png`` is read here: the thumbnail is resized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab.record.store import local_artifact_dir

_NAME = re.compile(r"^(?P<key>[^+%/]+)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<timestamp>\d+)"
                   r"[+%](?P<uuid>[0-9A-Za-z-]+)\.png$")
FOLDER = "images"


@dataclass(frozen=True)
class LoggedImage:
    key: str  # as logged ('a/b', not the file name's 'a~b')
    step: int
    timestamp: int
    path: str  # relative to the run's artifact root: images/...


def parse(name: str) -> LoggedImage | None:
    """The logged image a file name under ``images/`` stands for; None for the thumbnails and anything else."""
    found = _NAME.match(name)
    if found is None:
        return None
    return LoggedImage(found["key"].replace("~", "/").replace("#", "/"), int(found["step"]), int(found["timestamp"]),
                       f"{FOLDER}/{name}")


def logged_images(mlflow_client: Any, run: Any) -> list[LoggedImage]:
    """Every image the run logged with a key, in no particular order (none: an empty list)."""
    local = local_artifact_dir(run.info.artifact_uri)
    if local is not None:
        folder = local / FOLDER
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    else:  # a remote artifact store: ask it
        try:
            names = [Path(f.path).name for f in mlflow_client.list_artifacts(run.info.run_id, FOLDER)]
        except Exception:  # noqa: BLE001 - a run without images, or a store that cannot list them: nothing to show
            names = []
    return [image for name in names if (image := parse(name)) is not None]


def last_of_each_key(images: list[LoggedImage]) -> dict[str, LoggedImage]:
    """Key -> its image of the highest step (the newest of that step when it was logged twice: a resumed run)."""
    last: dict[str, LoggedImage] = {}
    for image in images:
        held = last.get(image.key)
        if held is None or (image.step, image.timestamp) > (held.step, held.timestamp):
            last[image.key] = image
    return last


def read_image(mlflow_client: Any, run: Any, image: LoggedImage) -> bytes:
    """The PNG bytes of a logged image (downloaded from a remote artifact store)."""
    local = local_artifact_dir(run.info.artifact_uri)
    if local is not None:
        return (local / image.path).read_bytes()
    return Path(mlflow_client.download_artifacts(run.info.run_id, image.path)).read_bytes()
