"""ganlab: a plugin-based experiment framework for generative adversarial networks.

The public surface a plugin needs lives here and stays light to import: the
``hookimpl`` marker, :class:`Option` for declaring component options, and the
error type whose message ganlab shows a user as one line.
"""

from __future__ import annotations

import pluggy

from ganlab.errors import GanlabError
from ganlab.options import Option

__version__ = "0.1.0"

#: Version of the hook specification surface. Bumped when a hook is added or gains an
#: argument (compatible) or a hook is deprecated; see docs/plugins.md.
#: 1.2: on_after_d_step, on_after_g_step, plugin_state, restore_plugin_state; RunContext.log_metrics,
#: log_artifact and generator_average.
#: 1.3: register_regularizers, register_augmentations, register_optimizers, plugin_options; objectives
#: may be written on the step object (``discriminator_loss(step)``/``generator_loss(step)``,
#: ganlab.train.step.Step), take ``real_logits`` in ``g_loss``, and return named terms.
#: 2.0 (incompatible): one objective contract, ``discriminator_loss(step)``/``generator_loss(step)``; an
#: objective with only 1.x's ``d_loss``/``g_loss`` is refused in one line saying what to rename (a
#: population trains the same step, with the replicas' rows one after another).
HOOKSPEC_VERSION = "2.0"

PROJECT_NAME = "ganlab"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["GanlabError", "HOOKSPEC_VERSION", "Option", "__version__", "hookimpl", "hookspec"]
