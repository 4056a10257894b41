"""Shared fixtures: one migrated MLflow store copied per test, CLI runners, tiny settings.

Migrating a fresh SQLite store takes seconds, so the session migrates one
template and each test gets a byte copy of it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite runs many tiny models, often several processes at once, on 2 cores: one
# thread per process avoids oversubscription (subprocesses inherit the variable).
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Settings that make a real run take a second or two on a 2-core CPU.
TINY = ["--steps", "4", "--batch-size", "16", "--latent-dim", "8", "--log-every", "2",
        "--eval-every", "0", "--sample-every", "0", "--set", "eval_samples=200"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep dataset caches and plugin environment variables out of the user's home."""
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cache = tmp_path_factory.mktemp("ganlab-cache")
    old = {k: os.environ.get(k) for k in ("GANLAB_CACHE", "GANLAB_PLUGINS", "GANLAB_DISABLE_PLUGINS",
                                          "GANLAB_STRICT_PLUGINS", "MLFLOW_TRACKING_URI")}
    os.environ["GANLAB_CACHE"] = str(cache)
    for key in ("GANLAB_PLUGINS", "GANLAB_DISABLE_PLUGINS", "GANLAB_STRICT_PLUGINS", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
    """Run the CLI in this process (faster: torch and mlflow are already imported)."""
    from ganlab.cli import main

    return main(list(args))


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def cli_inproc():
    return cli_in_process
