"""ganlab: a plugin-based experiment framework for generative adversarial networks.

The public surface a plugin needs lives here and stays light to import: the
``hookimpl`` marker, :class:`Option` for declaring component options, the
error type whose message ganlab shows a user as one line,
:class:`FenchelYoungHead`, the base class of a head defined by its mapping, and :class:`Picture`,
what a metric returns to log a picture.
"""

from __future__ import annotations

import pluggy

from ganlab.errors import GanlabError
from ganlab.heads import FenchelYoungHead
from ganlab.options import Option
from ganlab.record.pictures import Picture

__version__ = "0.1.0"

#: Version of the hook specification surface: the minor number grows when a hook, an argument or an
#: optional method is added, the major one when something is removed. Each version's changes are listed
#: once, in docs/compatibility.md (a test keeps that list ending at this version).
HOOKSPEC_VERSION = "2.1"

PROJECT_NAME = "ganlab"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["FenchelYoungHead", "GanlabError", "HOOKSPEC_VERSION", "Option", "Picture", "__version__", "hookimpl", "hookspec"]
