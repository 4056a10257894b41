"""Test plugin: heads whose ``"module:attr"`` factories do not resolve.

Listing them must work (strings are not imported then); building one must fail
in one line naming the plugin, the component and the string.
"""

from typing import Any

from ganlab import hookimpl


@hookimpl
def register_heads(register: Any) -> None:
    register("unresolvable", "ganlab_plugins.heads.torch_heads:NoSuchHead", summary="its attribute does not exist")
    register("missing-module", "ganlab_no_such_module:Head", summary="its module does not exist")
