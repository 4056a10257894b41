"""Named components by kind, each remembering which plugin gave it.

A factory is a callable or a ``"module:attr"`` string (``attr`` may be dotted, as in
an entry point). A string is imported only when a run builds the component
(:meth:`Component.create`), never when components are listed, so a registration
module can be a short table of names, summaries and options that imports no torch.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ganlab.contracts import check_contract
from ganlab.errors import ComponentError, GanlabError, did_you_mean
from ganlab.options import Option, as_option, resolve_options

KINDS = ("architecture", "head", "loss", "dataset", "latent", "metric", "regularizer", "augmentation", "optimizer")

#: Options every component of a kind has, applied by the engine rather than the component: a plugin
#: may declare them itself to change their defaults (gp: weight 10); its factory never receives them.
ENGINE_OPTIONS: dict[str, dict[str, Option]] = {
    "regularizer": {
        "weight": Option(float, 1.0, "multiplies the penalty in D's loss", min=0.0),
        "every": Option(int, 1, "apply every N steps, weighted by N (lazy regularisation; 1: every step)", min=1),
    },
}

#: a callable, or where to import one from: "package.module:attr" (attr may be dotted)
Factory = Callable[..., Any] | str

_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_reference(factory: object) -> bool:
    """Whether ``factory`` is a well-formed ``"module:attr"`` string."""
    return isinstance(factory, str) and _REFERENCE.match(factory) is not None


@dataclass(frozen=True)
class Provenance:
    """Where a component came from."""

    plugin: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False


@dataclass(frozen=True)
class Component:
    """A registered component: a factory plus what a user needs to know to pick it."""

    kind: str
    name: str
    factory: Factory
    summary: str
    options: Mapping[str, Option]
    provenance: Provenance
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: the options the factory takes (None: all of them); the rest are the engine's (ENGINE_OPTIONS)
    factory_options: frozenset[str] | None = None

    def create(self, given: Mapping[str, Any] | None = None) -> Any:
        """Validate ``given`` options and call the factory with the resolved values it takes."""
        resolved = self.resolve(given or {})
        if self.factory_options is not None:
            resolved = {k: v for k, v in resolved.items() if k in self.factory_options}
        factory = self.load_factory()
        try:
            made = factory(**resolved)
        except GanlabError:
            raise
        except Exception as exc:  # a plugin's factory crashed: say whose
            raise ComponentError(
                f"{self._whose()} failed to build: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return check_contract(self.kind, self.name, self.provenance.plugin, made)

    def load_factory(self) -> Callable[..., Any]:
        """The factory itself: a ``"module:attr"`` string is imported now, and one that does not
        resolve to a callable is the plugin's fault, said in one line."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except GanlabError:
            raise
        except Exception as exc:  # ImportError, AttributeError, or the module's own code failing at import
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ComponentError(f"{self._whose()} has a factory '{self.factory}' that cannot be loaded: {reason}") from exc
        if not callable(found):
            raise ComponentError(f"{self._whose()} has a factory '{self.factory}' that is a "
                                 f"{type(found).__name__}, not a callable")
        return found

    def _whose(self) -> str:
        return f"{self.kind} '{self.name}' (plugin '{self.provenance.plugin}')"

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        owner = {"architecture": "arch", "head": "head", "loss": "loss", "dataset": "dataset"}.get(self.kind)
        return resolve_options(owner or f"{self.kind}.{self.name}", self.options, given)


class Registry:
    """All components, by kind then name."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        #: options that (lifecycle) plugins declare with the ``plugin_options`` hook, by plugin name
        self.plugin_options: dict[str, dict[str, Option]] = {}

    def add(
        self,
        kind: str,
        name: str,
        factory: Factory,
        provenance: Provenance,
        summary: str = "",
        options: Mapping[str, Any] | None = None,
        **metadata: Any,
    ) -> Component:
        if kind not in self._by_kind:
            raise GanlabError(f"unknown component kind '{kind}' (valid kinds: {', '.join(KINDS)})")
        if not isinstance(name, str) or not name:
            raise GanlabError(f"plugin '{provenance.plugin}' registered a {kind} without a name")
        if not (callable(factory) or is_reference(factory)):
            raise GanlabError(f"plugin '{provenance.plugin}' registered {kind} '{name}' with a factory that is "
                              f"neither callable nor a 'module:attr' string: {factory!r}")
        existing = self._by_kind[kind].get(name)
        if existing is not None:
            raise GanlabError(
                f"{kind} '{name}' is registered twice: by plugin '{existing.provenance.plugin}' "
                f"and by plugin '{provenance.plugin}'; disable one with GANLAB_DISABLE_PLUGINS"
            )
        declared = {key: as_option(spec) for key, spec in (options or {}).items()}
        # a regulariser registered with penalty=False acts on D's weights only: weight and every mean nothing
        engine = ENGINE_OPTIONS.get(kind) if metadata.get("penalty", True) else None
        component = Component(
            kind=kind,
            name=name,
            factory=factory,
            summary=summary.strip().splitlines()[0] if summary.strip() else "",
            options={**(engine or {}), **declared},
            provenance=provenance,
            metadata=dict(metadata),
            factory_options=frozenset(set(declared) - set(ENGINE_OPTIONS[kind])) if kind in ENGINE_OPTIONS else None,
        )
        self._by_kind[kind][name] = component
        return component

    def get(self, kind: str, name: str) -> Component:
        found = self._by_kind[kind].get(name)
        if found is None:
            valid = sorted(self._by_kind[kind])
            label = "architecture" if kind == "architecture" else kind
            hint = self._metric_logging(name) if kind == "metric" else ""
            raise GanlabError(
                f"unknown {label} '{name}'{hint or did_you_mean(name, valid)} "
                f"(valid: {', '.join(valid) if valid else 'none registered'})"
            )
        return found

    def _metric_logging(self, number: str) -> str:
        """'; did you mean X (it logs X.fid)?' when ``number`` names one of a metric's headline numbers
        (``fid`` is the inception metric's ``inception.fid``), else an empty string."""
        for component in self.of_kind("metric"):
            for key in component.metadata.get("headline", ()):
                if key.rsplit(".", 1)[-1].lower() == number.lower():
                    return f"; did you mean '{component.name}' (it logs {key})?"
        return ""

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def of_kind(self, kind: str) -> list[Component]:
        return [self._by_kind[kind][name] for name in self.names(kind)]

    def headline(self) -> list[str]:
        """The numbers metric components name as their headline when they register (``headline=``: the
        columns of the field's tables, e.g. FID and IS), in the order declared."""
        return [key for component in self.of_kind("metric") for key in component.metadata.get("headline", ())]

    def headline_first(self, metrics: Sequence[str]) -> list[str]:
        """``metrics`` with the headline ones first."""
        return headline_first(self.headline(), metrics)

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            yield from self.of_kind(kind)


def headline_first(headline: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """``metrics`` with those in ``headline`` first, in its order; the others after, in theirs."""
    first = [key for key in headline if key in metrics]
    return first + [metric for metric in metrics if metric not in first]
