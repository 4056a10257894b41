"""Test plugin that cannot be imported."""

import ganlab_no_such_module  # noqa: F401
