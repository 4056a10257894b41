"""Is anything answering at a tracking server's address? Asked once, in seconds, before a run is built.

MLflow's client retries a server that does not answer for about four minutes (seven attempts,
exponential back-off) before it raises, and a run would spend them inside ``on_run_start``:
silent, then "failed at step 0" for a run that never existed. A probe with a short timeout,
before anything is built, turns that into one line naming the address and the reason.

No MLflow here (it costs seconds to import): a plain HTTP GET of the server's ``/health`` for
``http(s)://`` (any HTTP answer, even 401 or 404, means a server is there: MLflow then says
what it thinks of it), a TCP connection for a database server. Proxies are honoured as
MLflow's own requests honour them (``HTTP(S)_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import socket
from urllib.parse import SplitResult, urlsplit

from ganlab.errors import GanlabError
from ganlab.redact import mask_credentials

#: how long the probe waits for a connection, and then for an answer
PROBE_SECONDS = 5.0
#: the port a database URL without one means
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}

#: addresses that answered, in this process: a command may resolve its tracking URI more than once
_answered: set[str] = set()


def check_reachable(uri: str, timeout: float = PROBE_SECONDS) -> None:
    """Raise a GanlabError in one line when nothing answers at the server ``uri`` names.

    Stores without a server of their own (SQLite, files, Databricks profiles) are not probed.
    """
    if uri in _answered:
        return
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme in ("http", "https"):
        what, reason = "the MLflow tracking server", _http_failure(parts, timeout)
    elif scheme in DATABASE_PORTS:
        try:
            host, port = parts.hostname, parts.port or DATABASE_PORTS[scheme]
        except ValueError:  # a port that is not a number: the driver says so in its own words
            return
        if host is None:  # a Unix socket (``?host=/run/postgresql``): nothing to connect to here
            return
        what, reason = "the database server of the tracking store", _tcp_failure(host, port, timeout)
    else:
        return
    if reason is not None:
        raise GanlabError(f"cannot reach {what} at {mask_credentials(uri)}: {reason}")
    _answered.add(uri)


def _http_failure(parts: SplitResult, timeout: float) -> str | None:
    """Why a GET of ``/health`` got no HTTP answer at all; None when it got one."""
    import http.client  # here: a run on a local store never pays for these imports
    import ssl
    import urllib.error
    import urllib.request

    try:
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if not host:
        return "the URL names no host"
    netloc = parts.netloc.rpartition("@")[2]  # no credentials in the probe: it needs none
    url = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/health"
    # Reachability only: the probe sends nothing secret and reads nothing, so the certificate is
    # left to MLflow's own checks (which honour MLFLOW_TRACKING_INSECURE_TLS and a CA bundle).
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=insecure))
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout):
            return None
    except urllib.error.HTTPError:  # an answer: a server is there
        return None
    except urllib.error.URLError as exc:
        return _socket_failure(exc.reason, host, timeout)
    except http.client.HTTPException as exc:  # something answered, not in HTTP
        return f"what answers there does not speak HTTP ({type(exc).__name__})"
    except OSError as exc:  # a timeout or reset while reading the answer
        return _socket_failure(exc, host, timeout)


def _tcp_failure(host: str, port: int, timeout: float) -> str | None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return _socket_failure(exc, host, timeout)
    return None


def _socket_failure(reason: object, host: str, timeout: float) -> str:
    """A connection's failure in a few words: refused, timed out, unknown host, TLS."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name '{host}' ({reason.strerror or reason})"
    import ssl

    if isinstance(reason, ssl.SSLError):
        return f"the TLS handshake failed ({reason.reason or reason})"
    if isinstance(reason, OSError):
        return reason.strerror or type(reason).__name__
    return str(reason) or type(reason).__name__
