"""The plugin manager: discovery, error isolation and the component registry.

Plugins come from four places, in this order: the built-ins listed in
``DEFAULT_PLUGINS`` (ganlab's own subpackages of ``ganlab_plugins``, imported by
module name, so they work from a plain source checkout), the ``ganlab``
entry-point group (third-party distributions), ``GANLAB_PLUGINS``
(comma-separated modules or files) and ``--plugin``. Nothing else is imported.
``GANLAB_DISABLE_PLUGINS`` (comma-separated plugin names) leaves any of them out,
built-ins included.

A plugin the user *named* (``--plugin``, ``GANLAB_PLUGINS``) that cannot be
loaded is an error: they asked for it, so running without it would not be what
they asked for. An installed entry-point plugin that cannot be loaded is
reported in one line and left out; ``GANLAB_STRICT_PLUGINS=1`` makes that
fatal too. Once loaded, a third-party lifecycle hook that raises is reported
once and skipped from then on (fatal in strict mode); a built-in's propagates.

Lifecycle hooks are called through pluggy's own call loop (``pm.hook.NAME``),
so ``wrapper=True``/``hookwrapper=True`` implementations, ``tryfirst``/
``trylast`` and hook-call monitoring work as pluggy documents them;
``GANLAB_TRACE_HOOKS=1`` prints every lifecycle call on stderr.

Over 400 lines on purpose: the plugin manager is one object; loading, the isolation of third-party
failures and the registry's build share its state.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from ganlab import PROJECT_NAME, __version__, hookspecs
from ganlab.errors import GanlabError, PluginError, did_you_mean, one_line
from ganlab.options import as_option
from ganlab.registry import Provenance, Registry

ENTRY_POINT_GROUP = "ganlab"
BUILTIN_DISTRIBUTION = "ganlab"

#: The built-in plugins, by module; each is shown by ``ganlab plugins`` under its last name part
#: ("heads"), as built-in. A list in the core rather than entry points of ganlab's own distribution:
#: they then load from a source checkout with no installed metadata, and "go to definition" finds them.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "ganlab_plugins.heads",
    "ganlab_plugins.objectives",
    "ganlab_plugins.architectures",
    "ganlab_plugins.datasets",
    "ganlab_plugins.metrics",
    "ganlab_plugins.regularizers",
    "ganlab_plugins.augmentations",
    "ganlab_plugins.latents",
    "ganlab_plugins.optimizers",
)


@dataclass
class PluginInfo:
    """What ``ganlab plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    source: str = "entry point"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: bool = False
    #: "--plugin" or "GANLAB_PLUGINS" when the user named this plugin; None for entry points and objects
    named_by: str | None = None

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.name, self.distribution, self.version, self.builtin)


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}


def _strict() -> bool:
    return _flag("GANLAB_STRICT_PLUGINS")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]



def _is_users_interrupt(exc: BaseException) -> bool:
    """Whether an exception out of a plugin's code must go on up instead of being reported as the plugin's fault.

    Everything a plugin raises is its fault, BaseExceptions included: a
    ``sys.exit()`` at import or in a hook must not end ganlab silently with
    exit 0. The one exception is KeyboardInterrupt, always taken as the user's
    Ctrl-C. Python raises a real Ctrl-C inside whatever code runs at that
    moment, often a plugin's, so the traceback cannot tell the two apart;
    telling them apart for sure would mean a SIGINT handler around every hook
    call, fighting ganlab.train.signals.GracefulStop for the signal. Getting it wrong
    the other way would be worse: a Ctrl-C turned into a warning, and the run
    carrying on as if the user had not pressed it. A plugin that raises
    KeyboardInterrupt itself stops the command as Ctrl-C does, visibly (exit 130).
    """
    return isinstance(exc, KeyboardInterrupt)


def packages_without_entry_point() -> list[str]:
    """Installed packages that require ganlab but declare no ``ganlab`` entry point: a plugin package
    whose ``[project.entry-points.ganlab]`` table was forgotten, which ganlab therefore never loads."""
    import re

    found = []
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") or ""
        if not name or name.lower() == PROJECT_NAME:
            continue
        needs = [re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower() for req in (dist.requires or [])]
        if PROJECT_NAME in needs and not any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points):
            found.append(name)
    return sorted(set(found))


def _same_file(a: str, b: str) -> bool:
    try:
        return a == b or Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _where(named_by: str) -> str:
    if named_by == "GANLAB_PLUGINS":
        return "it is named in GANLAB_PLUGINS: fix it, or remove it from GANLAB_PLUGINS"
    return f"it was named with {named_by}: fix it, or leave it out of the command line"


class PluginManager:
    """pluggy's manager plus ganlab's bookkeeping of where everything came from."""

    def __init__(self, warn: Callable[[str], None] | None = None, strict_named: bool = True) -> None:
        """``strict_named``: a plugin named with --plugin or GANLAB_PLUGINS that cannot be loaded raises
        PluginError (False: it is warned about and left out like an entry-point plugin, for
        ``ganlab plugins``, whose job is to show such errors)."""
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        self._warn = warn or (lambda message: print(f"ganlab: warning: {message}", file=sys.stderr))
        self._disabled = set(_split(os.environ.get("GANLAB_DISABLE_PLUGINS")))
        self._strict_named = strict_named
        #: (plugin name, hook name) of third-party lifecycle implementations that raised: skipped since
        self._silenced: set[tuple[str, str]] = set()
        self._objects: dict[str, object] = {}  # name -> the plugin object itself (pluggy may hold a stand-in)
        #: opt-in plugins the current run does not enable: their lifecycle hooks are not called
        self._off: frozenset[str] = frozenset()
        #: hook name -> the caller without the plugins off in this run (made once per run, not per call:
        #: notify runs several times a training step)
        self._subset_callers: dict[str, Any] = {}
        if _flag("GANLAB_TRACE_HOOKS"):
            self.pm.add_hookcall_monitoring(self._trace, lambda *args: None)

    # ---- discovery -------------------------------------------------------
    def load(self, extra: Iterable[str] = (), entry_points: bool = True) -> PluginManager:
        """Load the built-ins and entry-point plugins (unless ``entry_points`` is False), then
        GANLAB_PLUGINS, then ``extra`` (``--plugin``)."""
        if entry_points:
            self.load_builtins()
            self.load_entry_points()
        for spec in _split(os.environ.get("GANLAB_PLUGINS")):
            self.load_local(spec, named_by="GANLAB_PLUGINS")
        for spec in extra:
            self.load_local(spec, named_by="--plugin")
        return self

    def load_builtins(self, names: Iterable[str] | None = None) -> list[str]:
        """Load the plugins of ``DEFAULT_PLUGINS`` (optionally only those named in ``names``).

        Returns the names that were found.
        """
        wanted = set(names) if names is not None else None
        found: list[str] = []
        for module in DEFAULT_PLUGINS:
            name = module.rpartition(".")[2]
            if wanted is not None and name not in wanted:
                continue
            found.append(name)
            info = PluginInfo(name=name, module=module, distribution=BUILTIN_DISTRIBUTION, version=__version__,
                              builtin=True, source="built-in")
            self._load(info, functools.partial(importlib.import_module, module))
        return found

    def load_entry_points(self, names: Iterable[str] | None = None, distribution: str | None = None) -> list[str]:
        """Load the ``ganlab`` entry points (optionally only some names, or one distribution's).

        Returns the names that were found. The built-ins are not entry points: see ``load_builtins``.
        """
        wanted = set(names) if names is not None else None
        seen: set[tuple[str, str]] = set()
        found: list[str] = []
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            key = (ep.name, ep.value)
            if key in seen:  # the same distribution seen twice on sys.path
                continue
            if wanted is not None and ep.name not in wanted:
                continue
            if distribution is not None and (dist_name or "").lower() != distribution.lower():
                continue
            seen.add(key)
            found.append(ep.name)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
            )
            self._load(info, ep.load)
        return found

    def load_local(self, spec: str, named_by: str | None = None) -> None:
        """Load ``path/to/file.py`` or ``some.module``.

        ``named_by`` ("--plugin", "GANLAB_PLUGINS") says the user named it: then a failure to load
        it is an error (see ``strict_named``) rather than a warning.
        """
        path = Path(spec)
        origin = named_by or "--plugin"
        if spec.endswith(".py") or path.exists():
            name = path.stem
            info = PluginInfo(name=name, module=str(path), source=f"{origin} file", named_by=named_by)

            def importer() -> ModuleType:
                if not path.is_file():
                    raise FileNotFoundError(f"no plugin file at {path}")
                module_name = f"ganlab_local_plugin_{name}"
                loaded = sys.modules.get(module_name)
                # the CLI loads plugins twice (its commands, then the run): import a file once, so
                # its import-time code runs once and its module state is the one the run uses
                if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path.resolve():
                    return loaded
                module_spec = importlib.util.spec_from_file_location(module_name, path)
                if module_spec is None or module_spec.loader is None:
                    raise ImportError(f"cannot import {path}")
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_name] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]  # a file that failed fails again at the next load
                    raise
                return module

        else:
            info = PluginInfo(name=spec, module=spec, source=f"{origin} module", named_by=named_by)

            def importer() -> ModuleType:
                return importlib.import_module(spec)

        self._load(info, importer)

    def register_object(self, plugin: object, name: str, builtin: bool = True) -> None:
        """Register an already-imported plugin object (core infrastructure, tests)."""
        info = PluginInfo(name=name, module=type(plugin).__module__, builtin=builtin, source="object",
                          distribution=BUILTIN_DISTRIBUTION if builtin else None)
        self._load(info, lambda: plugin)

    def unregister_object(self, name: str) -> None:
        """Take back an object registered for one run (its tracker, its progress display), so that
        the next run in this process can register its own under the same name."""
        if name in self._objects:
            self.pm.unregister(name=name)
            del self._objects[name]
        self.infos.pop(name, None)

    def _load(self, info: PluginInfo, importer: Callable[[], Any]) -> None:
        existing = self.infos.get(info.name)
        if existing is not None and not existing.error:
            if info.named_by and existing.named_by and _same_file(existing.module, info.module):
                return  # named twice (say in GANLAB_PLUGINS and with --plugin): it is loaded, as asked
            self._fail(info, f"a plugin named '{info.name}' is already loaded from {existing.module}")
            return
        self.infos[info.name] = info
        if info.name in self._disabled:
            info.disabled = True
            return
        try:
            plugin = importer()
        except BaseException as exc:  # sys.exit() at import included: see _is_users_interrupt
            if _is_users_interrupt(exc):
                raise
            self._fail(info, f"failed to import: {one_line(exc)}")
            return
        other = next((name for name, known in self._objects.items() if known is plugin), None)
        if other is not None:  # pluggy would refuse it; a stand-in would hide that it is the same object
            self._fail(info, f"is the plugin already loaded as '{other}'")
            return
        # a third-party plugin is registered through a stand-in whose lifecycle hooks isolate its failures
        registered = plugin if info.builtin else self._isolating_stand_in(info, plugin)
        try:
            self.pm.register(registered, name=info.name)
        except Exception as exc:
            self._fail(info, f"invalid hook implementation: {one_line(exc)}")
            return
        unknown = [n for n in self._hookimpl_names(plugin) if n not in self._spec_names()]
        if unknown:
            self.pm.unregister(registered)
            names = ", ".join(f"'{n}'{did_you_mean(n, self._spec_names())}" for n in unknown)
            self._fail(info, f"implements unknown hook {names}")
            return
        info.hooks = sorted(set(self._hookimpl_names(plugin)))
        self._objects[info.name] = plugin
        self._registry = None
        if not info.hooks and not info.builtin:
            undecorated = [n for n in self._spec_names() if callable(getattr(plugin, n, None))]
            hint = (f"its {', '.join(undecorated)} lack @hookimpl (from ganlab import hookimpl)" if undecorated
                    else "no function of it is decorated with @hookimpl (from ganlab import hookimpl)")
            self._warn(f"plugin '{info.name}' ({info.module}) implements no ganlab hook, so it adds nothing: {hint}")

    @staticmethod
    def _spec_names() -> list[str]:
        marker = f"{PROJECT_NAME}_spec"
        return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), marker)]

    def _hookimpl_names(self, plugin: object) -> list[str]:
        """The hooks a plugin implements (an implementation's ``specname`` when it gives one)."""
        marker = f"{PROJECT_NAME}_impl"
        names = []
        for attr in dir(plugin):
            try:
                value = getattr(plugin, attr)
            except Exception:
                continue
            if callable(value) and hasattr(value, marker):
                opts = getattr(value, marker)
                names.append((opts.get("specname") if isinstance(opts, dict) else None) or attr)
        return names

    def _fail(self, info: PluginInfo, reason: str, loading: bool = True) -> None:
        """Report a plugin's failure: an error for a named plugin that cannot be loaded, or in strict
        mode; otherwise a warning, and the plugin (or the failing hook) is left out.

        ``loading`` is False for a lifecycle hook raising during a run: the plugin did load, and a
        third-party lifecycle hook's failure is isolated whoever named the plugin.
        """
        info.error = reason
        message = f"plugin '{info.name}' ({info.module}) {reason}"
        if loading and info.named_by and self._strict_named:
            raise PluginError(f"{message}; {_where(info.named_by)}")
        if _strict():
            raise PluginError(message)
        self._warn(f"{message}; continuing without it (GANLAB_STRICT_PLUGINS=1 makes this fatal)")

    # ---- components ------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """All components, built by calling each plugin's register hooks one by one."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for hook_name, kind in hookspecs.COMPONENT_HOOKS.items():
            # get_hookimpls() lists implementations in load order: the first registrant keeps a name
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.infos.get(impl.plugin_name)
                if info is None or info.error:
                    continue
                pending: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

                def register(name: str, factory: Any, summary: str = "", options: Any = None,
                             _pending: list = pending, **metadata: Any) -> None:
                    _pending.append(((name, factory), {"summary": summary, "options": options, **metadata}))

                try:
                    impl.function(register=register)
                except BaseException as exc:
                    if _is_users_interrupt(exc):
                        raise
                    self._fail(info, f"raised in {hook_name}: {one_line(exc)}")
                    continue
                for (name, factory), kwargs in pending:
                    try:
                        registry.add(kind, name, factory, info.provenance, **kwargs)
                    except PluginError:
                        raise
                    except GanlabError as exc:
                        if "registered twice" in str(exc):
                            raise  # a clash cannot be resolved by dropping one silently
                        self._fail(info, str(exc))
        for impl in self.pm.hook.plugin_options.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            if info is None or info.error:
                continue
            try:
                declared = impl.function() or {}
                if not isinstance(declared, dict):
                    raise TypeError(f"returned a {type(declared).__name__}, not a dict of options")
                registry.plugin_options[impl.plugin_name] = {str(k): as_option(v) for k, v in declared.items()}
            except BaseException as exc:
                if _is_users_interrupt(exc):
                    raise
                self._fail(info, f"raised in plugin_options: {one_line(exc)}")
        return registry

    def configure_run(self, config: Any) -> None:
        """Switch off, for the run about to start, the opt-in plugins it does not enable
        (an option ``enabled`` declared False by default and not set true: see ``plugin_options``)."""
        self._subset_callers = {}
        self._off = frozenset(name for name, options in getattr(config, "plugin_options", {}).items()
                              if options.get("enabled") is False)

    # ---- lifecycle ---------------------------------------------------------
    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every plugin, through pluggy's own call loop.

        pluggy's order: last registered first, honouring tryfirst/trylast, with
        wrappers around the rest; so the infrastructure registered for a run
        (tracking) has opened the run before plugins look. A built-in plugin's
        exception propagates (a ganlab bug or a real fault such as an
        unreachable tracking store); a third-party plugin's is reported once and
        that implementation is skipped from then on (see ``_isolating_stand_in``).
        """
        if self._off:
            caller = self._subset_callers.get(hook_name)
            if caller is None:
                off = [self.pm.get_plugin(name) for name in self._off if self.pm.get_plugin(name) is not None]
                caller = self._subset_callers[hook_name] = self.pm.subset_hook_caller(hook_name, remove_plugins=off)
            caller(**kwargs)
            return
        getattr(self.pm.hook, hook_name)(**kwargs)

    def collect_state(self, ctx: Any) -> dict[str, Any]:
        """Every plugin's ``plugin_state``, by plugin name, for a checkpoint. A plugin that fails, or
        gives what a checkpoint cannot hold safely, stops the run in one line: a checkpoint without its
        state would resume differently from the run that wrote it."""
        states: dict[str, Any] = {}
        for impl in self.pm.hook.plugin_state.get_hookimpls():
            if impl.plugin_name in self._off:
                continue
            try:
                value = impl.function(**{name: {"ctx": ctx}[name] for name in impl.argnames})
            except Exception as exc:
                raise PluginError(f"plugin '{impl.plugin_name}' failed to give its state for the checkpoint: "
                                  f"{one_line(exc)}") from None
            if value is None:
                continue
            refused = _not_loadable(value)
            if refused is not None:
                raise PluginError(f"plugin '{impl.plugin_name}' gave a state a checkpoint cannot hold ({refused}); "
                                  "give tensors, dicts, lists, strings, numbers and None")
            states[impl.plugin_name] = value
        return states

    def restore_state(self, ctx: Any, states: dict[str, Any]) -> None:
        """Hand each plugin the state it saved (``restore_plugin_state``)."""
        for impl in self.pm.hook.restore_plugin_state.get_hookimpls():
            if impl.plugin_name not in states or impl.plugin_name in self._off:
                continue
            given = {"ctx": ctx, "state": states[impl.plugin_name]}
            try:
                impl.function(**{name: given[name] for name in impl.argnames})
            except Exception as exc:
                raise PluginError(f"plugin '{impl.plugin_name}' failed to restore its state from the checkpoint: "
                                  f"{one_line(exc)}") from None

    def _isolating_stand_in(self, info: PluginInfo, plugin: object) -> object:
        """What pluggy registers for a third-party plugin: its hook implementations, the lifecycle
        ones wrapped so that an exception is reported once and the implementation skipped after.

        The wrappers keep the marker options (tryfirst, wrapper...) and, through ``__wrapped__``,
        the signature pluggy reads the argument names from.
        """
        stand_in = _StandIn(info.name, plugin)
        for attr in dir(plugin):
            try:
                opts = self.pm.parse_hookimpl_opts(plugin, attr)
                function = getattr(plugin, attr) if opts is not None else None
            except Exception:  # an attribute that cannot be read is no hook: as pluggy would skip it
                continue
            if opts is None or function is None:
                continue
            hook_name = opts.get("specname") or attr
            if hook_name in hookspecs.LIFECYCLE_HOOKS:
                function = self._isolated(info, hook_name, function, opts)
            setattr(stand_in, attr, function)
        return stand_in

    def _isolated(self, info: PluginInfo, hook_name: str, function: Callable[..., Any],
                  opts: dict[str, Any]) -> Callable[..., Any]:
        key = (info.name, hook_name)

        def skipped() -> bool:
            return key in self._silenced

        def failed(exc: BaseException) -> None:
            self._silenced.add(key)
            self._fail(info, f"raised in {hook_name}: {one_line(exc)}", loading=False)

        is_wrapper = bool(opts.get("wrapper") or opts.get("hookwrapper"))
        if is_wrapper and not inspect.isgeneratorfunction(function):
            return function  # not a generator: let pluggy refuse it, with its own message
        isolate = _isolated_wrapper if is_wrapper else _isolated_call
        isolated = isolate(function, skipped, failed)
        setattr(isolated, f"{PROJECT_NAME}_impl", dict(opts))
        return isolated

    def _trace(self, hook_name: str, hook_impls: Any, kwargs: Any) -> None:
        """GANLAB_TRACE_HOOKS=1: one line per lifecycle hook call, with the implementations in call order."""
        if hook_name not in hookspecs.LIFECYCLE_HOOKS:
            return
        called = []
        for impl in reversed(hook_impls):  # pluggy calls the last registered first
            options = [o for o in ("wrapper", "hookwrapper", "tryfirst", "trylast") if getattr(impl, o)]
            if (impl.plugin_name, hook_name) in self._silenced:
                options.append("skipped: it raised before")
            called.append(impl.plugin_name + "".join(f" ({o})" for o in options))
        args = ", ".join(f"{k}={kwargs[k]}" for k in ("step", "status") if k in kwargs)
        print(f"ganlab: hook {hook_name}({args}): {', '.join(called) or 'no implementations'}",
              file=sys.stderr, flush=True)

    def add_commands(self, app: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            try:
                impl.function(app=app)
            except BaseException as exc:
                if _is_users_interrupt(exc) or info is None:
                    raise
                self._fail(info, f"raised in register_commands: {one_line(exc)}")


class _StandIn:
    """The object pluggy holds for a third-party plugin (see PluginManager._isolating_stand_in)."""

    def __init__(self, name: str, plugin: object) -> None:
        self._ganlab_name = name
        self._ganlab_plugin = plugin

    def __repr__(self) -> str:
        return f"<ganlab plugin {self._ganlab_name!r}: {self._ganlab_plugin!r}>"


def _not_loadable(value: Any) -> str | None:
    """Why torch.load(weights_only=True), which reads checkpoints, would refuse ``value``; None if it would not.

    Found by a round trip through memory, not by a list of types: subclasses of the
    plain containers (a namedtuple, a defaultdict) are refused by the loader too."""
    import io

    import torch

    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception as exc:
        return one_line(exc)[:200]
    return None


def _isolated_call(function: Callable[..., Any], skipped: Callable[[], bool],
                   failed: Callable[[BaseException], None]) -> Callable[..., Any]:
    """A plain hook implementation whose exception is reported (``failed``) instead of raised."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if skipped():
            return None
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            if _is_users_interrupt(exc):
                raise
            failed(exc)
            return None

    return call


def _isolated_wrapper(function: Callable[..., Any], skipped: Callable[[], bool],
                      failed: Callable[[BaseException], None]) -> Callable[..., Any]:
    """A hook wrapper (``wrapper=True`` or old-style ``hookwrapper=True``) whose own failures are reported.

    It passes on exactly what pluggy sends or throws in, so both kinds behave as
    pluggy documents; only an exception the plugin's wrapper raises itself
    (before its yield, or after it: not the inner call's, which it may re-raise)
    is reported, and the call then goes on as if the wrapper were not there.
    """

    @functools.wraps(function)
    def wrap(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        if skipped():
            return (yield)
        teardown = function(*args, **kwargs)
        try:
            next(teardown)
        except BaseException as exc:  # StopIteration too: a wrapper that never yields
            if _is_users_interrupt(exc):
                raise
            failed(exc)
            return (yield)
        try:
            outcome = yield
        except BaseException as inner:  # the implementations inside raised: the plugin's wrapper sees it
            return _finish(teardown, failed, None, inner)
        return _finish(teardown, failed, outcome, None)

    return wrap


def _finish(teardown: Generator[None, Any, Any], failed: Callable[[BaseException], None], outcome: Any,
            inner: BaseException | None) -> Any:
    """Run a wrapper's part after its yield; keep the inner call's outcome if that part fails."""
    try:
        if inner is not None:
            teardown.throw(inner)
        else:
            teardown.send(outcome)
    except StopIteration as stop:
        return stop.value
    except BaseException as exc:
        if exc is inner or _is_users_interrupt(exc):
            raise  # handing the inner exception on is not the plugin's failure
        failed(exc)
    else:
        teardown.close()
        failed(RuntimeError("the hook wrapper yielded a second time"))
    if inner is not None:
        raise inner
    return outcome


def load_plugins(extra: list[str] | None, strict_named: bool = True) -> Any:
    """The plugins a command uses. A plugin named with --plugin or GANLAB_PLUGINS that cannot be
    loaded (import, hooks, or its register hooks raising) is an error here, before anything runs;
    ``strict_named=False`` warns and leaves it out instead (``ganlab plugins``)."""
    manager = PluginManager(strict_named=strict_named).load(extra or [])
    if strict_named:
        manager.registry  # noqa: B018 - calls the register hooks now: a named plugin's failure stops us here
    return manager


def hook_signature(name: str) -> inspect.Signature:
    """The documented signature of a hook specification (used by docs tests)."""
    return inspect.signature(getattr(hookspecs, name))
