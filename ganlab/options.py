"""Typed, declared options of a component.

A component declares its options when it registers; values from a TOML file or
``--set kind.key=value`` are checked against the declaration before anything
trains, so a typo or a wrong type is refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ganlab.errors import ConfigError, did_you_mean


class IntTuple(tuple):  # type: ignore[type-arg]
    """The type of an option holding a sequence of ints (e.g. layer widths), resolved to a tuple.

    A TOML file gives an array (``widths = [400, 400]``); ``--set`` gives text, ``400,400`` or
    ``[400, 400]``. ``min``/``max`` apply to each element. Only the marker: values are plain tuples.
    """


_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", IntTuple: "list of ints"}
#: a refused value is quoted up to this many characters (a 5000-character name must not fill the screen)
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class Option:
    """One option: its type, default and, optionally, allowed values or a range.

    ``check`` returns an error message (without the option's name) for a bad
    value, or None when the value is fine.
    """

    type: type
    default: Any
    help: str = ""
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, getattr(self.type, "__name__", str(self.type)))

    def coerce(self, where: str, value: Any) -> Any:
        """Convert ``value`` (a TOML value or a CLI string) to the declared type."""
        value = _coerce(where, self.type, self.type_name, value)
        if value is None:
            return None
        if self.type is float and not math.isfinite(value):
            # inf passes "> 0" and nan passes every comparison; neither trains anything
            raise ConfigError(f"{where} must be a finite number, not {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(
                f"{where} must be one of {allowed}, not {shown(value)}{did_you_mean(str(value), map(str, self.choices))}"
            )
        for item in value if self.type is IntTuple else (value,):
            self._check_range(where, item)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ConfigError(f"{where}: {problem} (got {shown(value)})")
        return value

    def _check_range(self, where: str, value: Any) -> None:
        if self.min is not None and (value < self.min or (self.min_exclusive and value == self.min)):
            bound = f"> {self.min}" if self.min_exclusive else f">= {self.min}"
            raise ConfigError(f"{where} must be {bound}, not {value!r}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"{where} must be <= {self.max}, not {value!r}")


def shown(value: Any) -> str:
    """``repr(value)``, cut short with its length when long: an error line stays readable."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
    return f"{text[:_SHOWN_CHARS]}... ({size})"


def _coerce(where: str, kind: type, type_name: str, value: Any) -> Any:
    if kind is IntTuple:
        return _int_tuple(where, value)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if text.lower() in {"none", "null"}:
            return None
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered in {"true", "1", "yes", "on"}:
                    return True
                if lowered in {"false", "0", "no", "off"}:
                    return False
                raise ValueError(text)
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"{where} must be {_article(type_name)}, not {shown(value)}") from None
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where} must be {_article(type_name)}, not {value!r}")
    if kind in _TYPE_NAMES and not isinstance(value, kind):
        raise ConfigError(f"{where} must be {_article(type_name)}, not {shown(value)}")
    return value


def _int_tuple(where: str, value: Any) -> tuple[int, ...] | None:
    """A TOML array or a list's text (``400,400``, ``[400, 400]``) -> a tuple of ints."""
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in {"none", "null"}:
            return None
        if text[:1] + text[-1:] in {"[]", "()"}:
            text = text[1:-1]
        items = [part.strip() for part in text.split(",")] if text.strip() else []
        try:
            items = [int(part) for part in items]
        except ValueError:
            items = None
    if value is None:
        return None
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ConfigError(f"{where} must be a list of ints (e.g. [400, 400] in TOML, 400,400 with --set), "
                          f"not {shown(value)}")
    return tuple(items)


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def as_option(spec: Option | Any) -> Option:
    """Accept a bare default as shorthand: ``{"ngf": 64}`` declares an int option."""
    if isinstance(spec, Option):
        return spec
    return Option(type=type(spec) if spec is not None else str, default=spec)


def resolve_options(
    owner: str, declared: Mapping[str, Option], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``given`` over the declared defaults; refuse unknown names and bad values."""
    for key in given:
        if key not in declared:
            valid = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"unknown option '{owner}.{key}'{did_you_mean(key, declared)} (valid options: {valid})"
            )
    resolved = {}
    for key, option in declared.items():
        if key in given:
            resolved[key] = option.coerce(f"{owner}.{key}", given[key])
        else:
            resolved[key] = option.default
    return resolved
