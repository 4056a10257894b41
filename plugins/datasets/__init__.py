"""scikit-learn's bundled 8×8 handwritten digits (``digits``): the offline default."""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl


def _make(size: int, exclude_class: int) -> Any:
    from ganlab_plugins.data_digits_impl import Digits

    return Digits(size=size, exclude_class=exclude_class)


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "digits",
        _make,
        summary="scikit-learn's 1,797 8x8 handwritten digits, resized; 10 classes; offline (the default)",
        options={
            "size": Option(int, 32, "image side in pixels after bilinear resizing", min=4, max=256),
            "exclude_class": Option(int, -1, "drop this digit from the training split (-1: none); "
                                    "the test split keeps every class", min=-1, max=9),
        },
    )
