"""The MLflow server that ``ganlab ui`` runs: MLflow's own app, with artifact locations kept in the store.

Why: an MLflow client may create an experiment with any ``artifact_location`` (``/etc``, a home
directory), and the server then writes there itself: its ``upload-artifact`` endpoint stores
a run's uploaded file under the run's artifact location, with the server's permissions, and
reads from there too. Serving artifacts through MLflow's proxy (``--artifacts-destination``)
does not change what an experiment's location may be. So every request that creates an
experiment passes through :class:`ArtifactLocationGuard`, which refuses any location outside
the store's artifact root (``GANLAB_UI_ARTIFACT_ROOT``): an absolute path or ``file:`` URI
inside it, or MLflow's own proxied ``mlflow-artifacts:`` locations (which resolve inside it).

Started as ``python -m ganlab.cli.ui_guard SERVER-OPTIONS...``: MLflow's ``mlflow server``
command, which sets the server up as usual, with its uvicorn workers serving
``ganlab.cli.ui_guard:app`` (the guard around ``mlflow.server.fastapi_app:app``) in place of
MLflow's app. ``ganlab ui`` checks :data:`GUARD_PATH` before it prints the URL: if an MLflow
version started its workers some other way, the guard would be missing, and ganlab refuses
to serve rather than serve without it.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: the directory (a ``file:`` URI) every experiment's artifacts must stay in
ROOT_ENV = "GANLAB_UI_ARTIFACT_ROOT"
#: Host headers to accept besides MLflow's defaults (comma-separated): the addresses ``ganlab ui`` prints
HOSTS_ENV = "GANLAB_UI_EXTRA_HOSTS"
#: answers 200 once the guard is in front of MLflow (``ganlab ui`` asks before printing the URL)
GUARD_PATH = "/ganlab/artifact-guard"
MLFLOW_APP = "mlflow.server.fastapi_app:app"
GUARDED_APP = "ganlab.cli.ui_guard:app"
#: the largest request body that may create an experiment (a name, a location, a few tags)
MAX_CREATE_BODY = 1 << 20

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def location_refusal(location: Any, root: Path) -> str | None:
    """Why an experiment may not have this artifact location; None when it may."""
    if location is None or location == "":
        return None  # the server's default: the store's artifact root
    if not isinstance(location, str):
        return "artifact_location must be a string"
    parts = urlsplit(location)
    if parts.scheme == "mlflow-artifacts":  # MLflow's proxy: resolved inside --artifacts-destination
        if parts.netloc or ".." in unquote(parts.path).split("/"):
            return f"artifact location {location!r} leaves the store's artifacts"
        return None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return f"artifact location {location!r} is on another host"
        from urllib.request import url2pathname

        path = url2pathname(parts.path)  # as MLflow reads it: '%2E%2E' is '..'
    elif parts.scheme == "" or len(parts.scheme) == 1:  # a plain path (a one-letter "scheme" is a drive)
        path = location
    else:
        return (f"artifact location {location!r} is not in this store: `ganlab ui` keeps every artifact "
                f"under {root}")
    if not os.path.isabs(path):
        return (f"artifact location {location!r} is a relative path: the server would resolve it against "
                "its own directory")
    real = os.path.realpath(path)  # '..' and symbolic links resolved: where a write would really go
    if os.path.commonpath([real, str(root)]) != str(root):
        return f"artifact location {location!r} is outside the store's artifacts ({root})"
    return None


def requested_locations(body: bytes, query: bytes) -> list[Any]:
    """Every artifact location a create-experiment request names, however MLflow would read it.

    MLflow reads the JSON body (decoding it twice when it is a JSON string, for old clients), by
    the field's proto name or its JSON name; a GET's query string too.
    """
    found: list[Any] = []
    for key, values in parse_qs(query.decode("latin-1")).items():
        if key in ("artifact_location", "artifactLocation"):
            found.extend(values)
    if body.strip():
        message = json.loads(body)  # raises ValueError for what MLflow could not read either
        if isinstance(message, str):
            message = json.loads(message)
        if isinstance(message, dict):
            found.extend(message[key] for key in ("artifact_location", "artifactLocation") if key in message)
    return found


def creates_experiment(path: str) -> bool:
    """Whether a request path is MLflow's create-experiment endpoint (any API version, any spelling of slashes)."""
    normal = posixpath.normpath("/" + path.strip("/")) if path else "/"
    return normal.endswith("/mlflow/experiments/create")


class ArtifactLocationGuard:
    """ASGI middleware: a create-experiment request naming a location outside ``root`` gets 403."""

    def __init__(self, inner: Any, root: Path) -> None:
        self.inner = inner
        self.root = root

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if scope["path"] == GUARD_PATH:
            await _answer(send, 200, {"artifact_root": str(self.root)})
            return
        if not creates_experiment(scope["path"]):
            await self.inner(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, _error("INVALID_PARAMETER_VALUE", "request body too large"))
            return
        try:
            locations = requested_locations(body, scope.get("query_string", b""))
        except ValueError:
            await _answer(send, 400, _error("INVALID_PARAMETER_VALUE", "the request body is not JSON"))
            return
        for location in locations:
            why = location_refusal(location, self.root)
            if why is not None:
                await _answer(send, 403, _error("PERMISSION_DENIED", f"ganlab ui: {why}"))
                return
        await self.inner(scope, _replay(body), send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CREATE_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the inner app the body already read, then waits like the real one."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}  # MLflow's own error shape: its client shows the message


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def artifact_root_from_env() -> Path:
    from urllib.request import url2pathname

    value = os.environ.get(ROOT_ENV, "")
    if not value:
        raise RuntimeError(f"{ROOT_ENV} is not set: the guard does not know the store's artifact root")
    parts = urlsplit(value)
    return Path(os.path.realpath(url2pathname(parts.path) if parts.scheme == "file" else value))


def __getattr__(name: str) -> Any:
    """``app``, built when uvicorn asks for it (not when ``ganlab ui`` imports this module's names)."""
    if name != "app":
        raise AttributeError(name)
    from mlflow.server.fastapi_app import app as mlflow_app

    guarded = ArtifactLocationGuard(mlflow_app, artifact_root_from_env())
    globals()["app"] = guarded
    return guarded


def allowed_hosts(extra: list[str]) -> str:
    """MLflow's default Host headers (this machine, private networks) and the addresses ``ganlab ui`` prints."""
    try:
        from mlflow.server.security_utils import get_default_allowed_hosts

        defaults = list(get_default_allowed_hosts())
    except ImportError:  # another MLflow version: this machine's own names at least
        defaults = ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "[::1]", "[::1]:*"]
    named = [form for host in extra for form in (host, f"{host}:*")]
    return ",".join(dict.fromkeys([*defaults, *named]))


def main(argv: list[str]) -> int:
    """``mlflow server ARGV``, its workers serving the guarded app."""
    import mlflow.server as server
    from mlflow.cli import cli

    build = getattr(server, "_build_uvicorn_command", None)
    if build is None:
        print(f"ganlab ui: this MLflow ({_mlflow_version()}) starts its server in a way ganlab does not know; "
              "refusing to serve without the guard on artifact locations", file=sys.stderr)
        return 3

    def guarded(uvicorn_opts: Any, host: Any, port: Any, workers: Any, app_name: str, *rest: Any, **named: Any) -> Any:
        if app_name != MLFLOW_APP:
            raise SystemExit(f"ganlab ui: MLflow would serve {app_name}, which the guard cannot wrap")
        return build(uvicorn_opts, host, port, workers, GUARDED_APP, *rest, **named)

    server._build_uvicorn_command = guarded
    extra = [h for h in os.environ.get(HOSTS_ENV, "").split(",") if h]
    if extra:
        argv = [*argv, "--allowed-hosts", allowed_hosts(extra)]
    try:
        cli.main(args=["server", *argv], prog_name="mlflow", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _mlflow_version() -> str:
    try:
        import mlflow

        return f"mlflow {mlflow.__version__}"
    except Exception:  # noqa: BLE001 - only for a message
        return "mlflow"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
