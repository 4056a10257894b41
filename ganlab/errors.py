"""Errors meant for people.

Anything raised as :class:`GanlabError` is shown by the CLI as one line on
stderr and ends the process with exit code 2; everything else is a bug.
A GanlabError's message never shows a password (see ganlab.redact).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from ganlab.redact import mask_credentials


class GanlabError(Exception):
    """A problem with the user's input, data or plugins, described in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # masked here, once: the message is printed, stored as a run's tag and sent between processes
        super().__init__(mask_credentials(" ".join(str(message).split())))


class PluginError(GanlabError):
    """A plugin failed to import or to run one of its hooks."""


class ConfigError(GanlabError):
    """The run configuration is invalid."""


class ComponentError(GanlabError):
    """A component refused its inputs (a shape it cannot serve, a bad combination)."""


def one_line(exc: BaseException, plain_ganlab_errors: bool = False) -> str:
    """An exception as one line: its type and its words, whitespace folded, passwords masked, at most 1000 characters.

    ``plain_ganlab_errors``: a GanlabError's words alone (they are already written for people).
    A SystemExit says what the code did, since its words are only an exit code.
    """
    if isinstance(exc, SystemExit):
        return f"SystemExit: it called sys.exit({exc.code!r})"
    text = mask_credentials(" ".join(str(exc).split()))  # before the cut, which could fall inside a password
    if plain_ganlab_errors and isinstance(exc, GanlabError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean X?' when a candidate is close, else an empty string."""
    match = closest(name, candidates)
    return f"; did you mean '{match}'?" if match else ""


def last_error_line(log_path: Path, code: int) -> str:
    """Why a ganlab child process (a sweep's job, a study's trial) failed: its own error line from
    its log, else its last line of output, else its exit code."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("ganlab: error:"):
            return line[len("ganlab: error:"):].strip()
    return f"exit code {code}: {lines[-1][:300]}" if lines else f"exit code {code}"
