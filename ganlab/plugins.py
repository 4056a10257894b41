"""The plugin manager: discovery, error isolation and the component registry.

Plugins come from three places, in this order: the ``ganlab`` entry-point
group (built-ins included: they are entry points of the ganlab distribution),
``GANLAB_PLUGINS`` (comma-separated modules or files) and ``--plugin``.
Nothing else is imported. A broken plugin is reported in one line and left
out; ``GANLAB_STRICT_PLUGINS=1`` turns that into a fatal error.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from ganlab import PROJECT_NAME, hookspecs
from ganlab.errors import GanlabError, PluginError, did_you_mean
from ganlab.registry import Provenance, Registry

ENTRY_POINT_GROUP = "ganlab"
BUILTIN_DISTRIBUTION = "ganlab"


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

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.name, self.distribution, self.version, self.builtin)


def _strict() -> bool:
    return os.environ.get("GANLAB_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginManager:
    """pluggy's manager plus ganlab's bookkeeping of where everything came from."""

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        self._warn = warn or (lambda message: print(f"ganlab: warning: {message}", file=sys.stderr))
        self._disabled = set(_split(os.environ.get("GANLAB_DISABLE_PLUGINS")))
        self._silenced: set[int] = set()

    # ---- discovery -------------------------------------------------------
    def load(self, extra: Iterable[str] = (), entry_points: bool = True) -> PluginManager:
        """Load entry-point plugins, then GANLAB_PLUGINS, then ``extra`` (``--plugin``)."""
        if entry_points:
            self.load_entry_points()
        for spec in [*_split(os.environ.get("GANLAB_PLUGINS")), *extra]:
            self.load_local(spec)
        return self

    def load_entry_points(self, names: Iterable[str] | None = None, distribution: str | None = None) -> list[str]:
        """Load the ``ganlab`` entry points (optionally only some names, or one distribution's).

        Returns the names that were found.
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
                builtin=(dist_name or "").lower() == BUILTIN_DISTRIBUTION,
            )
            self._load(info, ep.load)
        return found

    def load_local(self, spec: str) -> None:
        """Load ``path/to/file.py`` or ``some.module`` given with --plugin."""
        path = Path(spec)
        if spec.endswith(".py") or path.exists():
            name = path.stem
            info = PluginInfo(name=name, module=str(path), source="--plugin file")

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
            info = PluginInfo(name=spec, module=spec, source="--plugin module")

            def importer() -> ModuleType:
                return importlib.import_module(spec)

        self._load(info, importer)

    def register_object(self, plugin: object, name: str, builtin: bool = True) -> None:
        """Register an already-imported plugin object (core infrastructure, tests)."""
        info = PluginInfo(name=name, module=type(plugin).__module__, builtin=builtin, source="object",
                          distribution=BUILTIN_DISTRIBUTION if builtin else None)
        self._load(info, lambda: plugin)

    def _load(self, info: PluginInfo, importer: Callable[[], Any]) -> None:
        if info.name in self.infos and not self.infos[info.name].error:
            self._fail(info, f"a plugin named '{info.name}' is already loaded from {self.infos[info.name].module}")
            return
        self.infos[info.name] = info
        if info.name in self._disabled:
            info.disabled = True
            return
        try:
            plugin = importer()
        except Exception as exc:
            self._fail(info, f"failed to import: {_one_line(exc)}")
            return
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._fail(info, f"invalid hook implementation: {_one_line(exc)}")
            return
        unknown = [n for n in self._hookimpl_names(plugin) if n not in self._spec_names()]
        if unknown:
            self.pm.unregister(plugin)
            names = ", ".join(f"'{n}'{did_you_mean(n, self._spec_names())}" for n in unknown)
            self._fail(info, f"implements unknown hook {names}")
            return
        info.hooks = sorted(self._hookimpl_names(plugin))
        self._registry = None

    @staticmethod
    def _spec_names() -> list[str]:
        marker = f"{PROJECT_NAME}_spec"
        return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), marker)]

    def _hookimpl_names(self, plugin: object) -> list[str]:
        marker = f"{PROJECT_NAME}_impl"
        names = []
        for attr in dir(plugin):
            try:
                value = getattr(plugin, attr)
            except Exception:
                continue
            if callable(value) and hasattr(value, marker):
                names.append(attr)
        return names

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.error = reason
        message = f"plugin '{info.name}' ({info.module}) {reason}"
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
                except Exception as exc:
                    self._fail(info, f"raised in {hook_name}: {_one_line(exc)}")
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
        return registry

    # ---- lifecycle ---------------------------------------------------------
    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every plugin, isolating third-party failures.

        A built-in plugin's exception propagates (it is a ganlab bug or a real
        fault such as an unreachable tracking store); a third-party plugin's is
        reported once and that implementation is skipped from then on.
        """
        # pluggy's own call order: last registered first, honouring tryfirst/trylast; so the
        # infrastructure registered for a run (tracking) has opened the run before plugins look
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            if id(impl) in self._silenced:
                continue
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            info = self.infos.get(impl.plugin_name)
            if info is None or info.builtin:
                impl.function(**args)
                continue
            try:
                impl.function(**args)
            except Exception as exc:
                self._silenced.add(id(impl))
                self._fail(info, f"raised in {hook_name}: {_one_line(exc)}")

    def add_commands(self, app: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            try:
                impl.function(app=app)
            except Exception as exc:
                if info is not None:
                    self._fail(info, f"raised in register_commands: {_one_line(exc)}")


def hook_signature(name: str) -> inspect.Signature:
    """The documented signature of a hook specification (used by docs tests)."""
    return inspect.signature(getattr(hookspecs, name))
