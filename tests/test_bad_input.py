"""The bad-input catalogue: every refusal through the real CLI.

Each case runs ``ganlab ...`` in its own directory holding a copy of
one SQLite store that already contains a FINISHED run (with checkpoints), and
checks the contract of docs/reliability.md:

* the documented exit code (2 for bad input);
* stderr ends with exactly one line ``ganlab: error: ...`` naming the problem;
  the only other lines allowed are ganlab's own ``ganlab: ...`` notes (warnings
  about a broken plugin that was left out, "dataset loaded from cache");
  never a traceback;
* no run left RUNNING, and the run that was already in the store unchanged
  (status, times, params, tags, every metric point, artifact files);
* no new run unless the case says so (a fault after training started leaves a
  FAILED run, never a RUNNING one).

The cases are independent; they run once per session, and each parametrized test then
checks its own. Most run through ganlab's ``main`` in the test process (seconds of imports
saved each); a sample runs ``python -m ganlab`` in a real process (``SUBPROCESS_SAMPLE``:
entry points, plugins that exit the interpreter, the writer process, files that block, sweeps,
and plain refusals of each kind), concurrently on a thread pool.
A plugin the user named (``--plugin``, ``GANLAB_PLUGINS``) that cannot be
loaded is bad input like any other. Tolerated faults (a broken installed
entry-point plugin nobody asked for, a third-party lifecycle hook raising
during a run) exit 0 with a warning; they are listed at the end, next to the
strict mode that makes them fatal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_RING8, cli_in_process
from test_plugins import on_path, write_distribution

PLUGINS = Path(__file__).parent / "plugins_for_tests"
ERROR = "ganlab: error:"

#: A run that trains in about a second on a CPU (used where training must start).
ANY_ARCH = ["--steps", "2", "--batch-size", "16", "--latent-dim", "8", "--log-every", "1", "--eval-every", "0",
            "--sample-every", "0", "--set", "metrics=none", "--set", "dataset.size=8", "--device", "cpu"]
TINY_RUN = [*ANY_ARCH, "--set", "arch.hidden_scale=0.05"]  # the default mlp, shrunk
#: A text run of the same size: a 20-token oracle, an LSTM pair (arch options per case)
TEXT_RUN = [*ANY_ARCH[:-4], "--device", "cpu", "--dataset", "oracle", "--arch", "lstm", "--set", "dataset.vocab_size=20",
            "--set", "dataset.samples=64", "--set", "dataset.test_samples=0"]


def plugin(name: str) -> str:
    return str(PLUGINS / f"{name}.py")



# ---- the store every case starts from ------------------------------------------
@pytest.fixture(scope="session")
def populated(tmp_path_factory: pytest.TempPathFactory, template_store: Path) -> dict[str, Any]:
    """A store holding one FINISHED run with checkpoints, made once per session."""
    root = tmp_path_factory.mktemp("populated")
    (root / "mlruns").mkdir()
    shutil.copy(template_store, root / "mlruns" / "mlflow.db")
    old = os.getcwd()
    os.chdir(root)
    try:
        code = cli_in_process(["run", *TINY_RUN, "--steps", "4", "--checkpoint-every", "2", "--set", "metrics=diagnostics",
                               "--set", "eval_samples=64", "--run-name", "precious"])
    finally:
        os.chdir(old)
    assert code == 0
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ganlab").experiment_id])
    return {"db": root / "mlruns" / "mlflow.db", "run_id": run.info.run_id}


def snapshot(db: Path) -> dict[str, Any]:
    """Every row the store holds about each run (runs, params, tags, metric points...) and its artifact files.

    Read straight from the SQLite file (read-only): thorough, and fast enough
    to take twice per case.
    """
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        state: dict[str, Any] = {}
        for (uuid, status, artifact_uri) in con.execute("SELECT run_uuid, status, artifact_uri FROM runs"):
            state[uuid] = {"status": status, "rows": {}, "artifacts": artifact_files(Path(artifact_uri[len("file://"):]))}
        tables = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [c[1] for c in con.execute(f"PRAGMA table_info('{table}')")]
            key = next((c for c in ("run_uuid", "run_id") if c in columns), None)
            if key is None:
                continue
            index = columns.index(key)
            for row in con.execute(f"SELECT * FROM '{table}'"):
                if row[index] in state:
                    state[row[index]]["rows"].setdefault(table, []).append(repr(row))
        for run in state.values():
            run["rows"] = {table: sorted(rows) for table, rows in run["rows"].items()}
        tag_rows = con.execute("SELECT run_uuid, key, value FROM tags").fetchall()
    finally:
        con.close()
    for uuid, key, value in tag_rows:
        state[uuid].setdefault("tags", {})[key] = value
    return state


def artifact_files(root: Path) -> dict[str, tuple[int, int]]:
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


# ---- the catalogue ---------------------------------------------------------------
@dataclass
class Case:
    id: str
    args: list[str]
    expect: list[str]  # fragments the error line must contain (what was wrong, what would be right)
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    warnings: int = 0  # "ganlab: warning:" lines expected before the error
    new_runs: int = 0  # runs the case leaves behind (FAILED or FINISHED, never RUNNING)
    known_bug: str | None = None  # a defect reported to the component's owner: strict xfail until fixed


def write(name: str, text: str) -> Callable[[Path], None]:
    def setup(cwd: Path) -> None:
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    return setup


def inception_weights_of_another_network(cwd: Path) -> None:
    """A state dict whose one tensor is not Inception-v3's: its other 565 are missing."""
    import torch

    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 1, 3, 3)}, cwd / "small.pth")


def garbage_mnist(cwd: Path, header: bytes = b"\x00\x00\x08\x03") -> None:
    """The four MNIST files, each a 4-byte header (by default a valid IDX magic number) and noise."""
    raw = cwd / "garbage" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(header + os.urandom(60))


def flat_images(cwd: Path) -> None:
    """A folder of images with no class subfolders: unlabelled."""
    from PIL import Image

    (cwd / "flat").mkdir()
    for i in range(4):
        Image.new("L", (8, 8), color=40 * i).save(cwd / "flat" / f"{i}.png")


def one_subfolder(cwd: Path) -> None:
    """CelebA's images one level below the folder named: its parent, not a dataset of one class."""
    from PIL import Image

    (cwd / "celeba" / "img_align_celeba").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), color=(40 * i, 0, 0)).save(cwd / "celeba" / "img_align_celeba" / f"{i:06d}.jpg")


def not_a_database(cwd: Path) -> None:
    (cwd / "other.db").write_bytes(b"this is not an SQLite database" * 10)


def file_in_the_way(cwd: Path) -> None:
    (cwd / "afile").write_text("a file where the store's directory should be")


def empty_experiment(cwd: Path) -> None:
    """An experiment 'empty' with no run in the case's copy of the store."""
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}").create_experiment("empty")


def entry_point(*names: str) -> Callable[[Path], None]:
    """Install test plugins as the entry points of a distribution in ./site (put on the path by SITE)."""

    def setup(cwd: Path) -> None:
        write_distribution(cwd / "site", "broken-gan", {n: (PLUGINS / f"{n}.py").read_text() for n in names})

    return setup


# -- bounded reads and dataset contracts (issue 30): the files the cases read
def truncated_gzip(cwd: Path) -> None:
    import gzip

    (cwd / "runs.json.gz").write_bytes(gzip.compress(b'{"format": "ganlab-runs/1"' + b" " * 4096)[:40])


def idx_file(path: Path, dims: tuple[int, ...], payload: bytes) -> None:
    """An IDX file of unsigned bytes: magic 0x0000 08 NDIM, the dimensions as big-endian uint32, ``payload``."""
    import struct

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload)


def idx_mnist(images: int = 20, labels: int = 20, first_label: int = 0,
              claims: tuple[int, int, int] | None = None) -> Callable[[Path], None]:
    """MNIST's four IDX files under ./idx, 28x28 black images; the training split as told: ``images`` images
    and ``labels`` labels counting up from ``first_label`` (10 or more: past MNIST's classes), or, with
    ``claims``, an image file that is a header claiming that many images and one byte."""

    def setup(cwd: Path) -> None:
        raw = cwd / "idx" / "MNIST" / "raw"
        for split, n_images, n_labels, first in (("train", images, labels, first_label), ("t10k", 10, 10, 0)):
            if split == "train" and claims is not None:
                idx_file(raw / f"{split}-images-idx3-ubyte", claims, b"\0")
            else:
                idx_file(raw / f"{split}-images-idx3-ubyte", (n_images, 28, 28), bytes(n_images * 28 * 28))
            idx_file(raw / f"{split}-labels-idx1-ubyte", (n_labels,), bytes(first + i % 10 for i in range(n_labels)))

    return setup


def deep_toml(name: str, text: str) -> Callable[[Path], None]:
    """A TOML file nested 100,000 deep (``text``: "[" for arrays, "{" for inline tables)."""
    body = "a = " + ("[" * 100_000 + "]" * 100_000 if text == "[" else "{b = " * 100_000 + "1" + "}" * 100_000)
    return write(name, body + "\n")


# -- held-out variants (issue 30): a run's own files replaced by what no reader may wait on or read to the end
def replaced_artifact(name: str, kind: str) -> Callable[[Path], None]:
    """The case's store points the populated run at a copy of its artifacts (./artifacts), in which the
    artifact ``name`` is replaced: ``kind`` "fifo" (a named pipe: reading it waits for a writer) or "zero"
    (a link to /dev/zero: it never ends)."""

    def setup(cwd: Path) -> None:
        con = sqlite3.connect(cwd / "mlruns" / "mlflow.db")
        try:
            (uuid, uri), = con.execute("SELECT run_uuid, artifact_uri FROM runs").fetchall()
            target = cwd / "artifacts" / uuid / "artifacts"
            shutil.copytree(Path(uri[len("file://"):]), target)
            con.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (target.as_uri(), uuid))
            con.commit()
        finally:
            con.close()
        (target / name).unlink()
        if kind == "fifo":
            os.mkfifo(target / name)
        else:
            (target / name).symlink_to("/dev/zero")

    return setup


def deleted_run(cwd: Path) -> None:
    """The case's copy of the store holds the populated run as deleted (`mlflow runs delete`)."""
    con = sqlite3.connect(cwd / "mlruns" / "mlflow.db")
    try:
        con.execute("UPDATE runs SET lifecycle_stage = 'deleted'")
        con.commit()
    finally:
        con.close()


#: a third-party dataset whose labels run past its class count: the engine's contract check refuses it
OFF_BY_ONE_DATASET = """
import torch

from ganlab import Option, hookimpl
from ganlab.data import TensorData


class OffByOne:
    def __init__(self, size):
        self.size = size

    def load(self, request):
        return TensorData(x=torch.zeros(32, 1, self.size, self.size), y=torch.arange(32) % 4 + 1, num_classes=4,
                          source="labels 1..4 of 4 classes")


@hookimpl
def register_datasets(register):
    register("off-by-one", lambda size: OffByOne(size), summary="labels 1..4 of 4 classes (tests only)",
             options={"size": Option(int, 8)})
"""


STRICT = {"GANLAB_STRICT_PLUGINS": "1"}
SITE = on_path("site")  # relative: each case's own ./site
RUN_ID = "{run_id}"  # replaced with the populated run's id

STUDY_GRID = """
[base]
steps = 2
[base.dataset]
name = "ring8"
[grid]
seed = [0, 1]
"""
STUDY_SEARCH = """
[base]
steps = 2
batch_size = 16
latent_dim = 8
eval_every = 2
sample_every = 0
""" + TINY_RING8 + """[search]
n_trials = 3
objective = "{objective}"
sampler = "random"
lr_g = {{ log_uniform = {lr} }}
"""

CASES = [
    # -- unknown or misspelled component names: the message lists valid names and suggests the closest
    Case("head-misspelled", ["run", "--head", "sigmod"], ["unknown head 'sigmod'", "did you mean 'sigmoid'", "softmax"]),
    Case("arch-misspelled", ["run", "--arch", "dcgn"], ["unknown architecture 'dcgn'", "did you mean 'dcgan'", "mlp"]),
    Case("loss-misspelled", ["run", "--loss", "nonsaturatng"], ["unknown loss", "did you mean 'nonsaturating'"]),
    Case("dataset-misspelled", ["run", "--dataset", "mnsit"], ["unknown dataset 'mnsit'", "did you mean 'mnist'"]),
    Case("metric-unknown", ["run", "--set", "metrics=diagnostic"], ["unknown metric 'diagnostic'",
                                                                    "did you mean 'diagnostics'"]),
    Case("component-kind", ["components", "heds"], ["unknown component kind 'heds'", "did you mean 'head'"]),
    Case("toml-component-name", ["run", "--config", "c.toml"], ["unknown head 'entmacs'", "did you mean 'entmax'"],
         setup=write("c.toml", '[head]\nname = "entmacs"\n')),
    # -- option names, types and ranges
    Case("lr-negative", ["run", "--lr-g", "-0.001"], ["lr_g", "must be > 0", "-0.001"]),
    Case("batch-size-zero", ["run", "--batch-size", "0"], ["batch_size must be >= 1", "0"]),
    Case("alpha-one", ["run", "--head", "entmax", "--set", "head.alpha=1.0"], ["head.alpha", "1 < alpha <= 2"]),
    Case("alpha-below-one", ["run", "--head", "entmax", "--set", "head.alpha=0.5"], ["head.alpha", "0.5"]),
    Case("option-misspelled", ["run", "--head", "entmax", "--set", "head.alpah=1.5"],
         ["unknown option 'head.alpah'", "did you mean 'alpha'"]),
    Case("setting-misspelled", ["run", "--set", "batch_sise=8"], ["unknown setting 'batch_sise'",
                                                                  "did you mean 'batch_size'"]),
    Case("option-type", ["run", "--set", "arch.hidden_scale=big"], ["arch.hidden_scale must be a float", "big"]),
    Case("choice", ["run", "--precision", "fp64"], ["precision must be one of", "fp64"]),
    Case("device", ["run", "--device", "gpu"], ["device must be auto, cpu, cuda, cuda:N or mps", "gpu"]),
    Case("set-without-value", ["run", "--set", "steps"], ["--set expects KEY=VALUE", "steps"]),
    Case("keep-checkpoints-zero", ["run", "--set", "keep_checkpoints=0"], ["keep_checkpoints must be >= 1"]),
    Case("flag-type", ["run", "--steps", "many"], ["--steps", "valid integer"]),
    Case("flag-unknown", ["run", "--stepz", "4"], ["no such option", "--stepz"]),
    # -- malformed TOML
    Case("toml-syntax", ["run", "--config", "bad.toml"], ["bad.toml is not valid TOML", "line 2"],
         setup=write("bad.toml", 'steps = 4\nseed = = 3\n')),
    Case("toml-wrong-type", ["run", "--config", "c.toml"], ["steps must be an int", "many"],
         setup=write("c.toml", 'steps = "many"\n')),
    Case("toml-bool-for-int", ["run", "--config", "c.toml"], ["batch_size must be an int", "True"],
         setup=write("c.toml", "batch_size = true\n")),
    Case("toml-unknown-key", ["run", "--config", "c.toml"], ["unknown setting 'stepz'", "did you mean 'steps'"],
         setup=write("c.toml", "stepz = 4\n")),
    Case("toml-unknown-option", ["run", "--config", "c.toml"], ["unknown option 'head.beta'", "alpha"],
         setup=write("c.toml", '[head]\nname = "entmax"\nbeta = 2\n')),
    Case("toml-component-not-table", ["run", "--config", "c.toml"], ["'head' must be a component name or a table"],
         setup=write("c.toml", "head = 3\n")),
    Case("toml-missing-file", ["run", "--config", "nope.toml"], ["config file not found", "nope.toml"]),
    # -- class-conditional runs (docs/plugins.md, "Conditional architectures")
    Case("conditional-unlabelled", ["run", "--steps", "2", "--dataset", "ring8", "--set", "arch.conditional=true",
                                    "--set", "metrics=none", "--device", "cpu"],
         ["architecture 'mlp' is conditional", "dataset 'ring8' has no class labels", "arch.conditional=false"]),
    Case("acgan-sigmoid", ["run", *TINY_RUN, "--loss", "acgan", "--set", "arch.conditional=true",
                           "--set", "arch.projection=false"],
         ["loss 'acgan'", "head 'sigmoid' does not have", "softmax, sparsemax or entmax"]),
    Case("acgan-unconditional", ["run", *TINY_RUN, "--loss", "acgan", "--head", "softmax"],
         ["loss 'acgan' trains a class-conditional generator", "arch.conditional=true"]),
    Case("acgan-projection", ["run", *TINY_RUN, "--loss", "acgan", "--head", "entmax", "--set", "arch.conditional=true"],
         ["loss 'acgan' trains D to predict each sample's class", "arch.projection=false"]),
    Case("conditional-pack", ["run", *TINY_RUN, "--set", "arch.conditional=true", "--pack", "2"],
         ["pack 2", "have no single class", "needs pack 1"]),
    Case("conditional-unlabelled-folder", ["run", *ANY_ARCH, "--dataset", "image-folder", "--set", "dataset.path=flat",
                                           "--set", "arch.conditional=true", "--set", "arch.hidden_scale=0.05"],
         ["architecture 'mlp' is conditional", "dataset 'image-folder' has no class labels"], setup=flat_images),
    Case("fake-labels-choice", ["run", "--set", "fake_labels=histogram"], ["fake_labels must be one of", "histogram"]),
    Case("sample-class-unconditional", ["sample", RUN_ID, "--class", "3"],
         ["--class needs a conditional run", "unconditional generator"]),
    # -- missing and corrupt dataset files
    Case("mnist-missing", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "empty"],
         ["dataset 'mnist' not found", "missing train-images-idx3-ubyte", "--download"],
         setup=lambda cwd: (cwd / "empty").mkdir()),
    Case("mnist-garbage", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "garbage"],
         ["mnist", "corrupt"], setup=garbage_mnist),
    Case("mnist-bad-magic", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "garbage"],
         ["mnist", "corrupt"], setup=lambda cwd: garbage_mnist(cwd, header=b"GIF8")),
    Case("image-folder-missing", ["run", *TINY_RUN, "--dataset", "image-folder", "--set", "dataset.path=nowhere"],
         ["image-folder", "nowhere does not exist"]),
    Case("image-folder-garbage", ["run", *TINY_RUN, "--dataset", "image-folder", "--set", "dataset.path=imgs"],
         ["cannot read image", "a.png"], setup=write("imgs/a.png", "not a png")),
    Case("image-folder-one-subfolder", ["run", *TINY_RUN, "--dataset", "image-folder", "--set", "dataset.path=celeba"],
         ["every image of celeba is in one subfolder, img_align_celeba", "dataset.path=celeba/img_align_celeba",
          "dataset.labels=none"], setup=one_subfolder),
    Case("cifar100-missing", ["run", *TINY_RUN, "--dataset", "cifar100", "--data-root", "empty"],
         ["dataset 'cifar100' not found in empty/cifar-100-python", "missing train, test, meta", "--download"],
         setup=lambda cwd: (cwd / "empty").mkdir()),
    Case("stl10-truncated", ["run", *TINY_RUN, "--dataset", "stl10", "--data-root", "data"],
         ["dataset 'stl10'", "train_X.bin", "not a whole number of 27,648-byte records"],
         setup=write("data/stl10_binary/train_X.bin", "a few bytes, not an image")),
    # -- the Inception metrics' weights (tests/test_metric_inception.py: a full-size file with one tensor wrong)
    Case("inception-without-weights", ["run", *ANY_ARCH[:-4], "--set", "metrics=inception"],
         ["metric 'inception' cannot run: no Inception-v3 weights", "GANLAB_INCEPTION_WEIGHTS=PATH",
          "weights-inception-2015-12-05-6726825d.pth", "--download"]),
    Case("metric-named-by-its-number", ["run", *ANY_ARCH[:-4], "--set", "metrics=fid"],
         ["unknown metric 'fid'; did you mean 'inception' (it logs inception.fid)?", "valid: anomaly"]),
    Case("inception-weights-of-another-network", ["run", *ANY_ARCH[:-4], "--set", "metrics=inception"],
         ["small.pth (GANLAB_INCEPTION_WEIGHTS) do not fit torch-fidelity's Inception-v3", "are missing"],
         env={"GANLAB_INCEPTION_WEIGHTS": "small.pth"}, setup=inception_weights_of_another_network),
    Case("inception-weights-not-tensors", ["run", *ANY_ARCH[:-4], "--set", "metrics=inception"],
         ["text.pth (GANLAB_INCEPTION_WEIGHTS) are not a PyTorch file of tensors alone"],
         env={"GANLAB_INCEPTION_WEIGHTS": "text.pth"}, setup=write("text.pth", "not a checkpoint")),
    # -- checkpoints and resume (a garbled checkpoint: see test_corrupt_checkpoint_is_refused)
    Case("resume-unknown-run", ["resume", "0123456789abcdef0123456789abcdef"], ["no run '0123456789abcdef", "ganlab runs"]),
    Case("resume-finished", ["resume", RUN_ID], ["already FINISHED", "--steps"]),
    Case("resume-fewer-steps", ["resume", RUN_ID, "--steps", "3"], ["is at step 4 of 3", "N > 4"]),
    Case("runs-unknown-experiment", ["runs", "--experiment", "ganlib"], ["no experiment 'ganlib'",
                                                                         "did you mean 'ganlab'"]),
    Case("report-unknown-experiment", ["report", "ganlib"], ["unknown experiment 'ganlib'", "did you mean 'ganlab'",
                                                             "experiments in"]),
    Case("report-empty-experiment", ["report", "empty"], ["experiment 'empty' has no FINISHED runs"],
         setup=empty_experiment),
    Case("report-unwritable-output", ["report", "ganlab", "-o", "afile/report.html"],
         ["cannot write the report to afile/report.html", "afile is not a directory"], setup=file_in_the_way),
    # -- plugin faults
    Case("plugin-import-error-strict", ["run", "--plugin", plugin("broken_import"), "--dry-run"],
         ["plugin 'broken_import'", "failed to import", "ganlab_no_such_module"], env=STRICT),
    Case("plugin-syntax-error-strict", ["run", "--plugin", "syntax_error.py", "--dry-run"],
         ["plugin 'syntax_error'", "SyntaxError"], env=STRICT,
         setup=write("syntax_error.py", "from ganlab import hookimpl\n\ndef register_heads(register:\n")),
    Case("plugin-file-missing-strict", ["run", "--plugin", "no_such_plugin.py", "--dry-run"],
         ["plugin 'no_such_plugin'", "no plugin file"], env=STRICT),
    Case("plugin-hook-raises-then-used", ["run", "--head", "fragile"], ["unknown head 'fragile'"], warnings=1,
         setup=entry_point("register_raises"), env=SITE),  # an installed plugin: left out with a warning
    # -- a plugin named with --plugin or GANLAB_PLUGINS that cannot be loaded: an error, nothing runs
    Case("plugin-file-missing", ["run", *TINY_RUN, "--plugin", "./missing.py"],
         ["plugin 'missing'", "no plugin file at missing.py", "named with --plugin"]),
    Case("plugin-import-error", ["run", *TINY_RUN, "--plugin", plugin("broken_import")],
         ["plugin 'broken_import'", "failed to import", "ganlab_no_such_module", "named with --plugin"]),
    Case("plugin-misspelled-hook", ["run", *TINY_RUN, "--plugin", plugin("misspelled_hook")],
         ["unknown hook 'register_head'", "did you mean 'register_heads'"]),
    Case("plugin-register-raises", ["run", *TINY_RUN, "--plugin", plugin("register_raises")],
         ["plugin 'register_raises'", "raised in register_heads", "registry on fire"]),
    Case("plugin-exits-at-import", ["run", *TINY_RUN, "--plugin", plugin("exits_at_import")],
         ["plugin 'exits_at_import'", "SystemExit", "sys.exit(0)"]),
    Case("plugin-exits-at-import-strict", ["run", *TINY_RUN, "--plugin", plugin("exits_at_import")],
         ["plugin 'exits_at_import'", "SystemExit"], env=STRICT),
    Case("plugin-env-missing", ["run", *TINY_RUN], ["plugin 'missing'", "no plugin file", "GANLAB_PLUGINS"],
         env={"GANLAB_PLUGINS": "missing.py"}),
    Case("plugin-command-of-missing-plugin", ["hello", "--plugin", "hello.py"], ["plugin 'hello'", "no plugin file"]),
    Case("resume-plugin-missing", ["resume", RUN_ID, "--plugin", "missing.py"], ["plugin 'missing'", "no plugin file"]),
    Case("plugin-entry-point-exits-strict", ["run", "--dry-run"], ["plugin 'exits_at_import'", "SystemExit"],
         setup=entry_point("exits_at_import"), env={**SITE, **STRICT}),
    Case("plugin-register-raises-strict", ["run", "--plugin", plugin("register_raises"), "--dry-run"],
         ["plugin 'register_raises'", "raised in register_heads", "registry on fire"], env=STRICT),
    Case("plugin-factory-raises", ["run", *TINY_RUN, "--plugin", plugin("factory_raises"), "--head", "exploding"],
         ["head 'exploding' (plugin 'factory_raises') failed to build", "ValueError", "always explodes"]),
    Case("plugin-factory-wrong-type", ["run", *TINY_RUN, "--plugin", plugin("wrong_type"), "--head", "not-a-head"],
         ["head 'not-a-head' (plugin 'wrong_type') returned a str", "num_logits"]),
    Case("plugin-build-wrong-type", ["run", *ANY_ARCH, "--plugin", plugin("wrong_type"), "--arch", "not-modules"],
         ["architecture 'not-modules' returned a str as generator", "torch.nn.Module"]),
    Case("plugin-samplewise-batchnorm", ["run", *ANY_ARCH, "--plugin", plugin("samplewise_batchnorm"),
                                         "--arch", "bn-mlp"],
         ["architecture 'bn-mlp' declares samplewise_discriminator", "BatchNorm (2)"]),
    Case("plugin-duplicate-name", ["run", "--plugin", plugin("duplicate_head"), "--dry-run"],
         ["head 'sigmoid' is registered twice", "duplicate_head", "GANLAB_DISABLE_PLUGINS"]),
    Case("plugin-misspelled-hook-strict", ["run", "--plugin", plugin("misspelled_hook"), "--dry-run"],
         ["unknown hook 'register_head'", "did you mean 'register_heads'"], env=STRICT),
    Case("plugin-step-hook-raises-strict", ["run", *TINY_RUN, "--plugin", plugin("step_hook_raises"),
                                            "--experiment", "strict"],
         ["plugin 'step_hook_raises'", "raised in on_step_end", "step hook exploded at step 1"], env=STRICT, new_runs=1),
    # -- tracking store
    Case("tracking-uri-scheme", ["run", "--tracking-uri", "mlfow://somewhere"], ["tracking URI 'mlfow://somewhere'",
                                                                                 "sqlite:///mlruns/mlflow.db"]),
    Case("tracking-uri-no-path", ["run", "--tracking-uri", "sqlite://"], ["tracking URI 'sqlite://' has no database path"]),
    Case("tracking-uri-env", ["run"], ["tracking URI 'nonsense'"], env={"MLFLOW_TRACKING_URI": "nonsense"}),
    Case("tracking-dir-unwritable", ["run", "--tracking-uri", "sqlite:///afile/sub/mlflow.db"],
         ["cannot create the tracking store directory", "afile/sub"], setup=file_in_the_way),
    Case("tracking-not-a-database", ["run", *TINY_RUN, "--tracking-uri", "sqlite:///other.db"],
         ["cannot open the tracking store", "other.db", "file is not a database"], setup=not_a_database),
    # sweeps as studies (ganlab.studies): storage, search distributions, objective
    Case("study-storage-scheme", ["sweep", "grid.toml", "--storage", "redis://localhost/0"],
         ["unknown storage scheme 'redis'", "postgresql://"], setup=write("grid.toml", STUDY_GRID)),
    Case("study-storage-unreachable", ["sweep", "grid.toml", "--storage", "postgresql://nobody@127.0.0.1:9/none"],
         ["storage postgresql://nobody@127.0.0.1:9/none is unreachable"], setup=write("grid.toml", STUDY_GRID)),
    Case("study-low-above-high", ["sweep", "search.toml"], ["[search] lr_g: low 0.01 > high 0.0001"],
         setup=write("search.toml", STUDY_SEARCH.format(lr="[1e-2, 1e-4]", objective="modes.hq_percent"))),
    Case("study-unknown-distribution", ["sweep", "search.toml"], ["unknown distribution 'normal'", "log_uniform"],
         setup=write("search.toml", STUDY_SEARCH.replace("log_uniform", "normal").format(
             lr="[1e-4, 1e-2]", objective="modes.hq_percent"))),
    Case("study-objective-no-metric", ["sweep", "search.toml"], ["objective 'mode.hq_percent'", "modes.*"],
         setup=write("search.toml", STUDY_SEARCH.format(lr="[1e-4, 1e-2]", objective="mode.hq_percent"))),
    # a metric component that is selected but does not apply to the data: found after the first trial
    Case("study-objective-not-logged", ["sweep", "search.toml"], ["objective 'images.fld'", "do not log",
                                                                   "modes.hq_percent"],
         setup=write("search.toml", STUDY_SEARCH.format(lr="[1e-4, 1e-2]", objective="images.fld")), new_runs=2),
    Case("study-unknown", ["sweep", "status", "nosuchstudy"], ["no study 'nosuchstudy'"]),
    Case("study-grace-too-short", ["sweep", "grid.toml", "--jobs", "0", "--heartbeat", "5", "--grace", "8"],
         ["--grace 8 must be more than twice --heartbeat 5"], setup=write("grid.toml", STUDY_GRID)),
    Case("study-bad-later-choice", ["sweep", "search.toml"], ["unknown head 'sigmod'", "did you mean 'sigmoid'"],
         setup=write("search.toml", STUDY_SEARCH.format(lr="[1e-4, 1e-2]", objective="modes.hq_percent")
                     + '"head.name" = { choices = ["sigmoid", "sigmod"] }\n')),
    # text GANs: networks and data that do not go together, data too large, no corpus
    Case("text-image-arch-on-text", ["run", *TEXT_RUN, "--arch", "dcgan"],
         ["architecture 'dcgan' generates images or vectors", "dataset 'oracle' holds token sequences", "conv, lstm"]),
    # refused before the oracle's sequences are generated: this oracle's memory guard would refuse it otherwise
    Case("text-image-arch-before-loading", ["run", *TEXT_RUN, "--arch", "dcgan", "--set", "dataset.vocab_size=1000000",
                                            "--batch-size", "100000"],
         ["architecture 'dcgan' generates images or vectors", "dataset 'oracle' holds token sequences"]),
    Case("text-arch-on-images", ["run", *ANY_ARCH, "--arch", "lstm"],
         ["architecture 'lstm' generates token sequences", "dataset 'digits' is not text", "dcgan, mlp"]),
    Case("text-seq-len-zero", ["run", *TEXT_RUN, "--set", "dataset.seq_len=0"], ["dataset.seq_len must be >= 1"]),
    Case("text-vocab-too-large", ["run", *TEXT_RUN, "--set", "dataset.vocab_size=1000000", "--batch-size", "100000"],
         ["vocab_size 1,000,000", "one-hot batches of 100000 x 20 x 1,000,000", "lower dataset.vocab_size"]),
    Case("text-no-corpus", ["run", *ANY_ARCH[:-4], "--dataset", "fortunes", "--arch", "conv", "--set", "dataset.path=nowhere"],
         ["fortunes: nowhere does not exist", "apt-get install fortunes-min", "dataset.path"]),
    Case("text-unknown-output", ["run", *TEXT_RUN, "--set", "arch.output=softmx"],
         ["arch.output must be one of", "did you mean 'softmax'"]),
    Case("sample-txt-of-images", ["sample", RUN_ID, "--out", "s.txt"], ["cannot write .txt", "does not generate text"]),
    # -- bounded reads and dataset contracts (issue 30)
    Case("config-dev-zero", ["run", "-c", "/dev/zero", "--dry-run"],
         ["config file /dev/zero is a character device", "not a regular file"]),
    Case("config-too-large", ["run", "-c", "big.toml", "--dry-run"],
         ["config file big.toml is too large (1,048,577 bytes)", "at most 1,048,576 bytes (1 MiB)"],
         setup=write("big.toml", "#" * (2**20 - 1) + "\n\n")),
    Case("config-nested-arrays", ["run", "-c", "deep.toml", "--dry-run"],
         ["deep.toml is not valid TOML", "nested too deeply"], setup=deep_toml("deep.toml", "[")),
    Case("sweep-nested-tables", ["sweep", "deep.toml"], ["deep.toml is not valid TOML", "nested too deeply"],
         setup=deep_toml("deep.toml", "{")),
    Case("mnist-header-claims-more", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "idx"],
         ["dataset 'mnist'", "train-images-idx3-ubyte", "claims 60000 x 100000 x 100000 unsigned bytes",
          "the file is 17 bytes"], setup=idx_mnist(claims=(60000, 100000, 100000))),
    Case("mnist-more-images-than-labels", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "idx"],
         ["dataset 'mnist' (plugin 'datasets')", "600 training samples but 10 labels"],
         setup=idx_mnist(images=600, labels=10)),
    Case("mnist-label-past-classes", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "idx"],
         ["dataset 'mnist' (plugin 'datasets')", "training labels range over 10..19, outside 0..9"],
         setup=idx_mnist(first_label=10)),
    Case("mnist-label-past-classes-conditional", ["run", *TINY_RUN, "--dataset", "mnist", "--data-root", "idx",
                                                  "--set", "arch.conditional=true"],
         ["dataset 'mnist' (plugin 'datasets')", "training labels range over 10..19, outside 0..9"],
         setup=idx_mnist(first_label=10)),
    Case("dataset-contract-third-party", ["run", *TINY_RUN, "--plugin", "off_by_one.py", "--dataset", "off-by-one"],
         ["dataset 'off-by-one' (plugin 'off_by_one')", "training labels range over 1..4, outside 0..3"],
         setup=write("off_by_one.py", OFF_BY_ONE_DATASET)),
    # -- held-out variants (issue 30)
    Case("resume-checkpoint-fifo", ["resume", RUN_ID, "--steps", "6"],
         ["checkpoints/step-00000004.pt is a named pipe, not a regular file", "delete it"],
         setup=replaced_artifact("checkpoints/step-00000004.pt", "fifo")),
    Case("resume-checkpoint-dev-zero", ["resume", RUN_ID, "--steps", "6"],
         ["checkpoints/step-00000004.pt is a character device, not a regular file"],
         setup=replaced_artifact("checkpoints/step-00000004.pt", "zero")),
    Case("sample-generator-fifo", ["sample", RUN_ID, "--out", "s.png"],
         ["generator.pt of run", "is a named pipe, not a regular file"],
         setup=replaced_artifact("generator.pt", "fifo")),
    Case("sample-generator-dev-zero", ["sample", RUN_ID, "--out", "s.png"],
         ["generator.pt of run", "is a character device, not a regular file"],
         setup=replaced_artifact("generator.pt", "zero")),
    Case("sample-deleted-run", ["sample", RUN_ID, "--out", "s.png"],
         ["is deleted; restore it first (mlflow runs restore)"], setup=deleted_run),
    Case("tracking-server-unreachable", ["run", *TINY_RUN, "--tracking-uri", "http://user:SECRETPW@127.0.0.1:1/"],
         ["cannot reach the MLflow tracking server at http://user:***@127.0.0.1:1/", "connection refused"]),
    # -- runs files (ganlab export / import)
    Case("export-over-a-file", ["export", "-e", "ganlab", "runs.json"], ["runs.json already exists", "nothing was written"],
         setup=write("runs.json", "keep me\n")),
    Case("export-unknown-experiment", ["export", "-e", "ganlb", "runs.json"],
         ["unknown experiment 'ganlb'", "did you mean 'ganlab'"]),
    Case("import-no-file", ["import", "nowhere.json"], ["no runs file at nowhere.json"]),
    Case("import-not-json", ["import", "runs.json"], ["runs.json is not a runs file", "not JSON"],
         setup=write("runs.json", "hello\n")),
    Case("import-another-format", ["import", "runs.json"], ["not a runs file of format ganlab-runs/1", "'mlflow'"],
         setup=write("runs.json", '{"format": "mlflow", "runs": []}')),
    Case("import-truncated-gzip", ["import", "runs.json.gz"], ["cannot read runs.json.gz"], setup=truncated_gzip),
    Case("import-a-bad-point", ["import", "runs.json"],
         ["run 1 of 1 has metric 'loss.d' not as [step, timestamp, value] points", "nothing was imported"],
         setup=write("runs.json", '{"format": "ganlab-runs/1", "experiment": "x", "runs": [{"run_id": "a", '
                                  '"status": "FINISHED", "params": {}, "tags": {}, "metrics": {"loss.d": [[1, 2, "abc"]]}}]}')),
    Case("import-a-running-run", ["import", "runs.json"],
         ["run 1 of 1 has status 'RUNNING'", "FINISHED, FAILED, KILLED", "nothing was imported"],
         setup=write("runs.json", '{"format": "ganlab-runs/1", "experiment": "x", "runs": [{"run_id": "a", '
                                  '"status": "RUNNING", "params": {}, "tags": {}, "metrics": {}}]}')),
]

#: broken-but-tolerated: a warning line, and the command carries on (exit 0)
TOLERATED = [
    # installed entry-point plugins that cannot be loaded: left out
    Case("tolerated-import-error", ["run", "--dry-run"],
         ["plugin 'broken_import'", "failed to import", "GANLAB_STRICT_PLUGINS=1"], code=0, warnings=1,
         setup=entry_point("broken_import"), env=SITE),
    Case("tolerated-misspelled-hook", ["run", "--dry-run"],
         ["unknown hook 'register_head'", "did you mean 'register_heads'"], code=0, warnings=1,
         setup=entry_point("misspelled_hook"), env=SITE),
    Case("tolerated-exits-at-import", ["run", "--dry-run"], ["plugin 'exits_at_import'", "SystemExit"],
         code=0, warnings=1, setup=entry_point("exits_at_import"), env=SITE),
    # a third-party lifecycle hook failing during a run (--plugin or not): reported once, skipped after
    Case("tolerated-step-hook-raises", ["run", *TINY_RUN, "--plugin", plugin("step_hook_raises"),
                                        "--experiment", "tolerant"],
         ["plugin 'step_hook_raises'", "raised in on_step_end"], code=0, warnings=1, new_runs=1),
    Case("tolerated-hooks-exit", ["run", *TINY_RUN, "--plugin", plugin("exits_in_hooks"), "--experiment", "tolerant"],
         ["plugin 'exits_in_hooks'", "raised in on_run_start: GeneratorExit"], code=0, warnings=2, new_runs=1,
         env={"GANLAB_TEST_RECORD": "events.jsonl"}),
]


@dataclass
class Outcome:
    case: Case
    proc: subprocess.CompletedProcess[str]
    before: dict[str, Any]
    after: dict[str, Any]
    run_id: str


#: Cases that run in a real ``python -m ganlab`` process; the rest run in this one (the same ``main``,
#: its exit code and output captured), each real process costing seconds of imports. Always in a
#: real process: installed plugins (entry points found on a new process's path) and a sweep that
#: trains (its trials are processes). And a sample whose subject is partly the process: a plain
#: refusal, an unknown flag and a refused resume (the console script's exit status and stderr), a
#: plugin that exits the interpreter at import, a failed run whose record the writer process
#: finishes, and a file no process may block on.
SUBPROCESS_SAMPLE = {
    "head-misspelled", "flag-unknown", "resume-finished", "plugin-exits-at-import",
    "plugin-step-hook-raises-strict", "sample-generator-dev-zero",
}


def in_a_subprocess(case: Case) -> bool:
    return case.id in SUBPROCESS_SAMPLE or "PYTHONPATH" in case.env or (case.args[0] == "sweep" and case.new_runs > 0)


def prepare(case: Case, root: Path, populated: dict[str, Any]) -> tuple[Path, Path, dict[str, Any], list[str]]:
    """The case's directory (a copy of the populated store, and its own files), the store's state before."""
    cwd = root / case.id
    (cwd / "mlruns").mkdir(parents=True)
    shutil.copy(populated["db"], cwd / "mlruns" / "mlflow.db")
    if case.setup is not None:
        case.setup(cwd)
    db = cwd / "mlruns" / "mlflow.db"
    return cwd, db, snapshot(db), [a.replace(RUN_ID, populated["run_id"]) for a in case.args]


def start_case(case: Case, root: Path, populated: dict[str, Any]) -> Callable[[], Outcome]:
    """Prepare the case here (this thread's environment is the one it sees) and return what runs it in a
    real ``python -m ganlab`` process: safe to call on another thread."""
    cwd, db, before, args = prepare(case, root, populated)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **case.env}

    def run() -> Outcome:
        proc = subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=240)
        return Outcome(case, proc, before, snapshot(db), populated["run_id"])

    return run


def run_case_in_process(case: Case, root: Path, populated: dict[str, Any]) -> Outcome:
    """The case through ``ganlab.cli.app.main`` in this process; an exception that escapes it is what a
    real process would print as a traceback (exit 1), and a change it leaves in the process-wide state
    (which a real process would take with it) is reported on stderr as if it were one."""
    from conftest import _global_state, _restore, _state_changes, run_in_process

    cwd, db, before, args = prepare(case, root, populated)
    state = _global_state()
    try:
        proc = run_in_process(args, cwd, env=case.env)
    except BaseException as exc:  # noqa: BLE001 - what escapes main() is a traceback in a real process
        import traceback

        proc = subprocess.CompletedProcess(args, 1, "", "Traceback (in process):\n" + "".join(
            traceback.format_exception(exc)))
    changes = _state_changes(state, _global_state())
    if changes:
        _restore(state)
        proc.stderr += "left process-wide state changed:\n" + "\n".join(changes) + "\n"
    return Outcome(case, proc, before, snapshot(db), populated["run_id"])


def selected_cases(session: pytest.Session) -> set[str] | None:
    """The ids of the cases the collected tests look at (``-k`` picks a few); None: every case."""
    wanted: set[str] = set()
    for item in session.items:
        if "outcomes" not in getattr(item, "fixturenames", ()):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(params.get("case"), Case):
            wanted.add(params["case"].id)
        elif isinstance(params.get("case_id"), str):
            wanted.add(params["case_id"])
        else:
            return None
    return wanted


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             populated: dict[str, Any]) -> dict[str, Outcome]:
    """Every selected case's outcome: the subprocess sample on a thread pool, while this thread runs the
    others in process, one after another (they change this process's directory and environment)."""
    root = tmp_path_factory.mktemp("bad-input")
    wanted = selected_cases(request.session)
    cases = [c for c in [*CASES, *TOLERATED] if wanted is None or c.id in wanted]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.id: pool.submit(start_case(c, root, populated)) for c in cases if in_a_subprocess(c)}
        done = {c.id: run_case_in_process(c, root, populated) for c in cases if not in_a_subprocess(c)}
        done.update({cid: f.result() for cid, f in futures.items()})
    return {c.id: done[c.id] for c in cases}


def test_the_subprocess_sample_names_real_cases_and_covers_every_kind_of_command() -> None:
    ids = {c.id for c in [*CASES, *TOLERATED]}
    assert SUBPROCESS_SAMPLE <= ids
    sampled = [c for c in [*CASES, *TOLERATED] if in_a_subprocess(c)]
    assert {c.args[0] for c in sampled} >= {"run", "resume", "sample", "sweep"}, "a real process for each command"
    assert any(c.new_runs for c in sampled) and any(c.code == 0 for c in sampled)
    assert 0 < len(sampled) < len(ids) // 2


def check(outcome: Outcome) -> None:
    case, proc = outcome.case, outcome.proc
    where = f"\n--- stderr ---\n{proc.stderr}\n--- stdout ---\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr, where
    assert proc.returncode == case.code, where
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert all(line.startswith("ganlab: ") for line in lines), f"a line that is not ganlab's own:{where}"
    errors = [line for line in lines if line.startswith(ERROR)]
    warnings = [line for line in lines if line.startswith("ganlab: warning:")]
    assert len(warnings) == case.warnings, where
    if case.code == 0:
        assert not errors, where
        named = warnings[0]
    else:
        assert len(errors) == 1 and lines[-1] == errors[0], f"exactly one error line, the last:{where}"
        named = errors[0]
    for fragment in case.expect:
        assert fragment.lower() in named.lower(), f"{fragment!r} not in {named!r}"

    before, after = outcome.before, outcome.after
    assert after[outcome.run_id] == before[outcome.run_id], "the run already in the store was modified"
    assert set(before) <= set(after), "a run disappeared"
    new = [after[r] for r in set(after) - set(before)]
    assert len(new) == case.new_runs, where
    statuses = [r["status"] for r in after.values()]
    assert "RUNNING" not in statuses, f"a run was left RUNNING:{where}"


def _params(cases: list[Case]) -> list[Any]:
    """Each case a test; one that needs a real process is marked slow (seconds of imports each)."""
    return [pytest.param(c, id=c.id, marks=[
                *([pytest.mark.xfail(strict=True, reason=c.known_bug)] if c.known_bug else []),
                *([pytest.mark.slow] if in_a_subprocess(c) else [])])
            for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_is_refused_in_one_line(case: Case, outcomes: dict[str, Outcome]) -> None:
    check(outcomes[case.id])


@pytest.mark.parametrize("case", _params(TOLERATED))
def test_broken_plugin_nobody_needs_is_a_warning(case: Case, outcomes: dict[str, Outcome]) -> None:
    check(outcomes[case.id])


@pytest.mark.slow  # its case runs in a real process
def test_strict_hook_failure_leaves_a_failed_run_with_the_reason(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["plugin-step-hook-raises-strict"]
    (new,) = [r for rid, r in outcome.after.items() if rid not in outcome.before]
    assert new["status"] == "FAILED"
    assert "step hook exploded" in new["tags"]["ganlab.error"]


@pytest.mark.parametrize("case_id", ["tolerated-step-hook-raises", "tolerated-hooks-exit"])
def test_tolerated_hook_failures_let_the_run_finish(case_id: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case_id]
    (new,) = [r for rid, r in outcome.after.items() if rid not in outcome.before]
    assert new["status"] == "FINISHED", outcome.proc.stderr


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30


# ---- a garbled checkpoint -----------------------------------------------------------
def test_corrupt_checkpoint_is_refused(workdir: Path, mlflow_client: Any) -> None:
    """Truncated, garbled, and hostile (pickled code) newest checkpoints: each refused, the run untouched."""
    from conftest import run_in_process
    from test_checkpoint import evil_checkpoint

    assert cli_in_process(["run", *TINY_RUN, "--steps", "6", "--checkpoint-every", "2"]) == 0
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    run_id = run.info.run_id
    mlflow_client.set_terminated(run_id, status="KILLED")  # as if interrupted: resumable without --steps
    newest = Path(run.info.artifact_uri.replace("file://", "")) / "checkpoints" / "step-00000006.pt"
    good = newest.read_bytes()
    marker = workdir / "code-ran"
    variants = {
        "truncated": (good[: len(good) // 2], ["corrupt or truncated", "step-00000006.pt", "delete it"]),
        "garbled": (bytes(b ^ 0x5A for b in good[:4096]) + good[4096:], ["corrupt or truncated"]),
        "hostile": (evil_checkpoint(marker), ["pickled Python objects", "refusing to load"]),
    }
    db = workdir / "mlruns" / "mlflow.db"
    for name, (content, expect) in variants.items():
        newest.write_bytes(content)
        before = snapshot(db)
        proc = run_in_process(["resume", run_id], workdir)  # the catalogue resumes in a real process
        where = f"{name}:\n{proc.stderr}"
        assert proc.returncode == 2, where
        assert "Traceback" not in proc.stderr, where
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(ERROR), where
        for fragment in expect:
            assert fragment in lines[0], where
        assert snapshot(db) == before, f"{name}: the run was modified"
        assert not marker.exists(), "unpickling ran code from the checkpoint"


# ---- security: where code and network exposure can come from -------------------------
SNEAKY = '''
from pathlib import Path
from ganlab import hookimpl

Path("imported-{name}").touch()

@hookimpl
def register_heads(register):
    register("sneaky-{name}", lambda: None, summary="must never load by itself")
'''


def test_plugins_load_only_from_entry_points_or_when_named(workdir: Path) -> None:
    """Plugin-looking files lying around (cwd, ./plugins, ganlab_*.py) are never imported unless named."""
    for name, path in {"cwd": "sneaky.py", "prefixed": "ganlab_sneaky.py", "folder": "plugins/sneaky.py"}.items():
        (workdir / path).parent.mkdir(exist_ok=True)
        (workdir / path).write_text(SNEAKY.format(name=name))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def heads(*args: str, extra_env: dict[str, str] | None = None) -> str:
        proc = subprocess.run([sys.executable, "-m", "ganlab", "components", "head", "--json", *args], cwd=workdir,
                              env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "sneaky" not in heads()
    assert not list(workdir.glob("imported-*")), "nothing was imported"
    assert "sneaky-cwd" in heads(extra_env={"GANLAB_PLUGINS": "sneaky.py"})
    assert "sneaky-folder" in heads("--plugin", "plugins/sneaky.py")
    assert sorted(p.name for p in workdir.glob("imported-*")) == ["imported-cwd", "imported-folder"]


def test_ui_binds_to_localhost_unless_told_otherwise() -> None:
    import typer.main

    from ganlab.cli.app import build_app

    commands = typer.main.get_command(build_app(["ui"])).commands
    if "ui" not in commands:
        pytest.skip("no `ganlab ui` command in this checkout")
    (host,) = [p for p in commands["ui"].params if p.name == "host"]
    assert host.default == "127.0.0.1"
