"""ganlab's built-in plugins, one subpackage per kind of component.

Each subpackage's ``__init__`` is its registration (names, summaries, options and
``"module:attr"`` factories, no torch); the rest of the subpackage is the torch
code, imported when a run builds a component. ganlab loads these subpackages
from the list ``ganlab.plugins.DEFAULT_PLUGINS``, not through entry points.
"""
