"""Credentials out of everything ganlab says or records: one function, used wherever text leaves the process.

A tracking URI or a study's storage often carries a password (``postgresql://alice:PW@db/ganlab``,
``http://user:PW@mlflow:5000``), and so does the text of the exceptions that MLflow, SQLAlchemy,
psycopg, requests or Optuna raise about it. ``mask_credentials`` rewrites every such password in
free text to ``***``; ganlab applies it where its text goes out: GanlabError's message, one_line,
the CLI's last line, the record writer's stderr, the tags and params it stores.

Mask before cutting: a message cut inside a password would no longer look like a URL with one.
What is cut there anyway (``scheme://user:PART`` with no ``@`` after it) is masked as well.
"""

from __future__ import annotations

import io
import re
from typing import Any

#: ``scheme://user:`` (an IPv6 host's ``[`` is no user name)
_SCHEME_AND_USER = r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>:/?#@\[\]]*:)"
#: ``scheme://user:password@``: the password runs to the last ``@`` of the word (RFC 3986 wants
#: ``@`` in a password percent-encoded, but URL parsers take the last one, and so must this)
_USERINFO = re.compile(_SCHEME_AND_USER + r"(?P<password>[^\s'\"<>]*)@")
#: ``scheme://user:what-is-left`` with no ``@`` after it: a URL cut inside its password
_DANGLING = re.compile(_SCHEME_AND_USER + r"(?P<rest>[^\s'\"<>@]+)(?=[\s'\"<>]|$)")
#: what may follow ``host:`` in a URL that has no password: a port, then a path, query or fragment,
#: then the punctuation of the sentence around it ("(e.g. http://127.0.0.1:5000)")
_PORT = re.compile(r"\d*(?:[/?#].*?)?[).,;:!\]}]*\Z")
#: query-string parameters that carry a secret (libpq's ``?password=``, tokens in URLs)
_SECRET_PARAMETER = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|pass|sslpassword|secret|token|access_token|api_key|apikey)=)"
    r"(?P<value>[^&;\s'\"<>#]+)", re.IGNORECASE)

MASK = "***"


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (the user name is kept)."""
    if "://" not in text and "=" not in text:  # the usual case, at no cost
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _DANGLING.sub(_mask_dangling, text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['head']}{MASK}", text)


def _mask_dangling(match: re.Match[str]) -> str:
    rest = match["rest"]
    if rest == MASK or _PORT.match(rest):  # masked already, or host:port/path
        return match[0]
    return f"{match['head']}{MASK}"


class MaskingStream(io.TextIOBase):
    """A text stream that masks credentials in what is written through it, line by line.

    For a process whose stderr is text ganlab does not write itself (the record writer's:
    MLflow's log records, a crash's traceback): masking by line means a URL is never split
    between two masks.
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            self._inner.write(mask_credentials(complete) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._inner.write(mask_credentials(self._pending))
            self._pending = ""
        self._inner.flush()

    def fileno(self) -> int:
        return self._inner.fileno()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")
