"""Any folder of images (``image-folder``), labelled by class subfolders when it has them."""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl
from ganlab.errors import ConfigError

IN_MEMORY_VALUES = ("auto", "true", "false", "yes", "no", "on", "off", "1", "0")


def _in_memory_check(value: str) -> str | None:
    if value.strip().lower() in IN_MEMORY_VALUES:
        return None
    return "must be auto, true or false"


def _make(path: str, size: int, channels: int, in_memory: str, memory_limit_mb: int, num_workers: int) -> Any:
    if not path.strip():
        raise ConfigError("dataset 'image-folder' needs a folder: set dataset.path (e.g. --set dataset.path=DIR)")
    from ganlab_plugins.data_image_folder_impl import ImageFolder

    return ImageFolder(path=path, size=size, channels=channels, in_memory=in_memory.strip().lower(),
                       memory_limit_mb=memory_limit_mb, num_workers=num_workers)


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "image-folder",
        _make,
        summary="A folder of images, resized and centre-cropped; class subfolders give labels",
        options={
            "path": Option(str, "", "the folder (required); images directly in it, or in one subfolder per class"),
            "size": Option(int, 64, "image side in pixels: shorter side resized to it, then centre-cropped",
                           min=4, max=1024),
            "channels": Option(int, 3, "3 for RGB, 1 for greyscale", choices=(1, 3)),
            "in_memory": Option(str, "auto", "hold the converted folder in memory (true), stream it from disk "
                                "(false), or decide by memory_limit_mb (auto)", check=_in_memory_check),
            "memory_limit_mb": Option(int, 2048, "auto: the largest converted tensor held in memory, in MiB",
                                      min=0),
            "num_workers": Option(int, 2, "DataLoader workers when streaming", min=0),
        },
    )
