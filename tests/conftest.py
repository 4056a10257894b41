"""Shared fixtures: one migrated MLflow store copied per test, CLI runners, tiny settings.

Migrating a fresh SQLite store takes seconds, so the session migrates one
template and each test gets a byte copy of it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The suite runs many tiny models, often several processes at once, on 2 cores: one
# thread per process avoids oversubscription (subprocesses inherit the variable).
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or "1"  # (set but empty: one too)

#: Settings that make a real run take a second or two on a 2-core CPU.
#: the [base] table of a tiny sweep file: TINY's settings in TOML
TINY_SWEEP_BASE = """
[base]
steps = 4
batch_size = 16
latent_dim = 8
log_every = 2
eval_every = 0
sample_every = 0
eval_samples = 200
"""
#: The architecture and data of a tiny 2-D run, for sweep files: the article's mlp at 1/8 width on ring8.
TINY_RING8 = """
[base.arch]
name = "mlp"
hidden_scale = 0.125
[base.dataset]
name = "ring8"
"""

TINY = ["--steps", "4", "--batch-size", "16", "--latent-dim", "8", "--log-every", "2",
        "--eval-every", "0", "--sample-every", "0", "--set", "eval_samples=200"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep dataset caches, torch's hub cache (where Inception weights would be found) and plugin
    environment variables out of the user's home."""
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cache = tmp_path_factory.mktemp("ganlab-cache")
    cleared = ("GANLAB_PLUGINS", "GANLAB_DISABLE_PLUGINS", "GANLAB_STRICT_PLUGINS", "GANLAB_TRACE_HOOKS",
               "GANLAB_VERBOSE", "GANLAB_GPUS", "GANLAB_INCEPTION_WEIGHTS", "MLFLOW_TRACKING_URI")
    old = {k: os.environ.get(k) for k in ("GANLAB_CACHE", "TORCH_HOME", *cleared)}
    os.environ["GANLAB_CACHE"] = str(cache)
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch-home"))
    for key in cleared:
        os.environ.pop(key, None)
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ---- pytest-xdist: one worker per core, each with its own stores and ports ----
#: Many tests start ganlab processes of their own and each worker holds torch and MLflow (about
#: 1 GB): more workers than this crowd a larger machine's memory for little gain.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml's addopts): the cores this process may use, at most MAX_WORKERS.

    Each worker is a process of its own with its own ``tmp_path_factory`` root, so every
    store, cache and template below is per worker; servers pick free ports (tests/servers.py).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


# ---- test-suite hygiene: opt-in shuffled order, and no test leaves global state behind ----
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``GANLAB_TEST_SHUFFLE=SEED`` runs the tests in an order shuffled with that seed.

    A test that passes only after (or only before) another one leaks state; a shuffled run
    finds it, and the seed (printed before and after the run) reproduces the order.
    """
    seed = os.environ.get("GANLAB_TEST_SHUFFLE")
    if seed:
        random.Random(seed).shuffle(items)
        _say_shuffled(config, seed)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    seed = os.environ.get("GANLAB_TEST_SHUFFLE")
    if seed:  # again at the end, where a failure is read: the order to reproduce it
        _say_shuffled(config, seed)


def _say_shuffled(config: pytest.Config, seed: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # also under -q
        reporter.write_line(f"ganlab: test order shuffled with GANLAB_TEST_SHUFFLE={seed}")


#: Environment variables that pytest itself changes around each test.
_PYTEST_ENV = frozenset({"PYTEST_CURRENT_TEST"})
#: Set by libraries for themselves, once per process, when first imported or used
#: (scikit-learn's OpenMP switches; Inductor's default cache directory and a pointer it
#: hands its compiled code): bookkeeping, not a test's change, so only their appearance
#: is allowed: a test that changes or removes one is still caught.
_LIBRARY_ENV = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK", "TORCHINDUCTOR_CACHE_DIR",
                          "_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"})

#: torch's config modules whose options a test may patch (only checked once imported:
#: importing torch._inductor to look at it would cost every run of the suite seconds).
_TORCH_CONFIGS = ("torch._dynamo.config", "torch._inductor.config")


def _config_state(module: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """Option values, and the options a ``delattr`` hid (reading them then raises
    "does not exist", which is how an undone ``monkeypatch.setattr`` breaks later tests)."""
    entries = getattr(module, "_config", {})
    return module.get_config_copy(), frozenset(k for k, e in entries.items() if getattr(e, "hide", False))


def _global_state() -> dict[str, Any]:
    """The process-wide state a test must leave as it found it; cheap (it runs per test)."""
    state: dict[str, Any] = {
        "os.environ": {k: v for k, v in os.environ.items() if k not in _PYTEST_ENV},
        "cwd": os.getcwd(),
    }
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_default_dtype"):
        state["torch.get_default_dtype()"] = torch.get_default_dtype()
        state["torch.are_deterministic_algorithms_enabled()"] = torch.are_deterministic_algorithms_enabled()
        state["torch.get_num_threads()"] = torch.get_num_threads()
        state["torch.is_grad_enabled()"] = torch.is_grad_enabled()
    for name in _TORCH_CONFIGS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "get_config_copy"):
            state[name] = _config_state(module)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and hasattr(mlflow, "active_run"):
        run = mlflow.active_run()
        state["mlflow.active_run()"] = run.info.run_id if run else None
    return state


def _dict_changes(what: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    keys = sorted(before.keys() | after.keys())
    return [f"{what}[{k!r}]: {before.get(k, '<unset>')!r} -> {after.get(k, '<unset>')!r}"
            for k in keys if before.get(k, "<unset>") != after.get(k, "<unset>")]


def _state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per change; a config module first imported by the test is judged only by
    its hidden options (there is no earlier value to compare the others with)."""
    changes: list[str] = []
    for what, now in after.items():
        if what == "os.environ":
            appeared = {k for k in _LIBRARY_ENV if k in now and k not in before[what]}
            changes += _dict_changes(what, before[what], {k: v for k, v in now.items() if k not in appeared})
        elif what in _TORCH_CONFIGS:
            values, hidden = now
            old_values, old_hidden = before.get(what, (values, frozenset()))
            changes += _dict_changes(what, old_values, values)
            changes += [f"{what}.{k} was deleted (use {what}.patch(...), not monkeypatch.setattr)"
                        for k in sorted(hidden - old_hidden)]
        elif what in before and before[what] != now:
            changes.append(f"{what}: {before[what]!r} -> {now!r}")
    return changes


def _restore(before: dict[str, Any]) -> None:
    """Put back what can be put back, so that one leaky test is not blamed on the next."""
    env = before["os.environ"]
    for key in [k for k in os.environ if k not in env and k not in _PYTEST_ENV | _LIBRARY_ENV]:
        del os.environ[key]
    os.environ.update(env)
    os.chdir(before["cwd"])
    torch = sys.modules.get("torch")
    if "torch.get_default_dtype()" in before:
        torch.set_default_dtype(before["torch.get_default_dtype()"])
        torch.use_deterministic_algorithms(before["torch.are_deterministic_algorithms_enabled()"])
        torch.set_num_threads(before["torch.get_num_threads()"])
        torch.set_grad_enabled(before["torch.is_grad_enabled()"])
    for name in _TORCH_CONFIGS:
        module = sys.modules.get(name)
        if module is not None and name in before:
            values, hidden = before[name]
            now, now_hidden = _config_state(module)
            # Setting an option un-hides it; only changed ones (setting a deprecated one warns).
            for key in [k for k in values if k in now_hidden - hidden or now.get(k) != values[k]]:
                setattr(module, key, values[key])


@contextlib.contextmanager
def process_state_restored() -> Iterator[None]:
    """Put back the process-wide state after a command run in this process that sets what a real
    ``ganlab`` process keeps until it exits (``--deterministic``: torch's deterministic algorithms and
    CUBLAS_WORKSPACE_CONFIG), so that a test may run it in process."""
    before = _global_state()
    try:
        yield
    finally:
        _restore(before)


@pytest.fixture(autouse=True)
def _no_leaked_global_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that changes process-wide state: environment, cwd, torch's global
    switches and compiler configuration, MLflow's active run (mlflow.set_tracking_uri and
    set_experiment show up as MLFLOW_* variables). Such a change passes the test itself and
    breaks whichever test happens to run after it."""
    before = _global_state()
    yield
    changes = _state_changes(before, _global_state())
    if changes:
        _restore(before)
        pytest.fail(f"{request.node.nodeid} left global state changed:\n  " + "\n  ".join(changes),
                    pytrace=False)


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite MLflow store."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("template-store")
    MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
    return root / "mlflow.db"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template_store: Path) -> Path:
    """A fresh project directory holding ``mlruns/mlflow.db`` (a copy of the template) as cwd."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(template_store, tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store_uri(workdir: Path) -> str:
    return "sqlite:///mlruns/mlflow.db"


@pytest.fixture
def mlflow_client(workdir: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")


@functools.lru_cache(maxsize=None)
def _registry():
    from ganlab.plugins import PluginManager

    return PluginManager(warn=lambda message: None).load().registry


def make(kind: str, name: str, **options):
    """A component built through the real registry, as a run would build it."""
    return _registry().get(kind, name).create(options)


def run_cli(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ganlab ARGS`` in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def cli_in_process(args: list[str]) -> int:
    """Run the CLI in this process (faster: torch and mlflow are already imported).

    Its runs' record writer serves from a thread here, not a process of its own (which would import
    MLflow again, seconds each), unless the test set GANLAB_RECORD_WRITER=process: a test of the
    writer process itself asks for it, or runs ganlab in a subprocess.
    """
    from ganlab.cli.app import main
    from ganlab.record.store_process import WRITER_ENV

    if WRITER_ENV in os.environ:
        return main(list(args))
    os.environ[WRITER_ENV] = "thread"
    try:
        return main(list(args))
    finally:
        os.environ.pop(WRITER_ENV, None)


def run_in_process(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ganlab ARGS`` in this process from ``cwd``, its output captured like ``run_cli``'s: for
    commands whose behaviour does not depend on the process (each real one costs seconds of imports).

    ``env`` is set for the command and put back after it. What a subprocess would print to its
    stderr is captured here too: ``print(..., file=sys.stderr)``, warnings, and the lines of every
    logging handler that writes to the terminal (MLflow's own, bound to the stream of their time).
    """
    import contextlib
    import io
    import logging

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    saved = {key: os.environ.get(key) for key in (env or {})}
    handlers = [h for h in _logging_handlers() if type(h) is logging.StreamHandler
                and not isinstance(h, logging.FileHandler)]
    streams = [h.stream for h in handlers]
    os.chdir(cwd)
    os.environ.update(env or {})
    try:
        for handler in handlers:  # (not setStream: it flushes the old stream, which an earlier test may have closed)
            handler.stream = err
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_in_process(args)
    finally:
        for handler, stream in zip(handlers, streams):
            handler.stream = stream
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.chdir(before)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _logging_handlers() -> list[Any]:
    import logging

    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    return list({id(h): h for logger in loggers for h in logger.handlers}.values())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def cli_inproc():
    return cli_in_process


def random_inception_state(seed: int = 0) -> dict[str, Any]:
    """torch-fidelity's FeatureExtractorInceptionV3, every tensor present, random weights (He-initialised
    convolutions, so features still vary from image to image: PyTorch's default initialisation shrinks the
    signal at every layer, and 50 layers down every image has the same features). Nothing downloads."""
    import io

    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class KeepsItsInit(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # no weights to load: keep the init
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = KeepsItsInit("test-inception", ["2048"], feature_extractor_weights_path=empty)
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        # pool features are all positive: rows of zero sum keep their common part out of the logits,
        # so that predictions differ from image to image and the Inception Score is more than 1
        weight = torch.randn(net.fc.weight.shape) * 2.0
        net.fc.weight.copy_(weight - weight.mean(dim=1, keepdim=True))
    return net.state_dict()


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("inception-weights") / "random-inception.pth"
    torch.save(random_inception_state(), path)
    return path
