"""Test plugin: its register_heads hook raises after registering 'fragile'."""

from typing import Any

from ganlab import hookimpl


@hookimpl
def register_heads(register: Any) -> None:
    register("fragile", lambda: None, summary="lost: the hook raises (tests only)")
    raise RuntimeError("registry on fire")
