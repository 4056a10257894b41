"""Checkpoints: complete, atomic, pruned to the newest K, and read without executing anything."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process

from ganlab.train import checkpoint
from ganlab.errors import GanlabError

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ["--batch-size", "16", "--latent-dim", "8", "--log-every", "1", "--eval-every", "0", "--sample-every", "0",
            "--set", "metrics=none", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05", "--device", "cpu"]


def evil_checkpoint(marker: Path) -> bytes:
    """A torch file that, unpickled without weights_only, runs ``touch MARKER``."""
    import io

    import torch

    class RunsCode:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    torch.save({"format": checkpoint.FORMAT, "step": 1, "generator": RunsCode()}, buffer)
    return buffer.getvalue()


def state(step: int) -> dict[str, Any]:
    import torch

    return {"step": step, "generator": {"w": torch.full((3,), float(step))}, "discriminator": {}, "opt_g": {},
            "opt_d": {}, "scaler": {}, "rng": {"torch": torch.get_rng_state()}, "data_order": {}, "config": {}}


# ---- atomic writes and pruning ------------------------------------------------------
def test_keeps_the_newest_k_and_removes_leftover_temporaries(tmp_path: Path) -> None:
    leftover = tmp_path / ".step-00000003.pt.tmp424242"  # a writer that died mid-write
    tmp_path.mkdir(exist_ok=True)
    leftover.write_bytes(b"half a checkpoint")
    for step in range(1, 6):
        checkpoint.save_atomic(state(step), tmp_path, step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000004.pt", "step-00000005.pt"]
    assert [int(checkpoint.load(p)["step"]) for p in checkpoint.list_checkpoints(tmp_path)] == [4, 5]


def test_a_failed_write_leaves_the_previous_checkpoints_untouched(tmp_path: Path) -> None:
    checkpoint.save_atomic(state(2), tmp_path, 2, keep=2)
    before = (tmp_path / "step-00000002.pt").read_bytes()
    broken = {**state(4), "config": {"not picklable": lambda: None}}
    with pytest.raises(Exception):
        checkpoint.save_atomic(broken, tmp_path, 4, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000002.pt"], "no torn or temporary file"
    assert (tmp_path / "step-00000002.pt").read_bytes() == before


# ---- refusing bad files -------------------------------------------------------------
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda good: good[: len(good) // 3], "corrupt or truncated"),
        (lambda good: b"\x00" * len(good), "corrupt or truncated"),
        (lambda good: b"", "corrupt or truncated"),
    ],
    ids=["truncated", "zeroed", "empty"],
)
def test_damaged_checkpoint_is_refused_in_one_line(tmp_path: Path, damage: Any, message: str) -> None:
    path = checkpoint.save_atomic(state(3), tmp_path, 3, keep=1)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(GanlabError, match=message) as info:
        checkpoint.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_foreign_and_incomplete_files_are_refused(tmp_path: Path) -> None:
    import torch

    foreign = tmp_path / "step-00000001.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(GanlabError, match="not a ganlab checkpoint"):
        checkpoint.load(foreign)
    incomplete = tmp_path / "step-00000002.pt"
    torch.save({"format": checkpoint.FORMAT, "step": 2, "generator": {}}, incomplete)
    with pytest.raises(GanlabError, match="incomplete: it lacks discriminator, opt_g"):
        checkpoint.load(incomplete)


def test_checkpoint_carrying_pickled_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "step-00000001.pt"
    path.write_bytes(evil_checkpoint(marker))
    with pytest.raises(GanlabError, match=r"pickled Python objects \((posix|nt)\.system\).*refusing"):
        checkpoint.load(path)
    assert not marker.exists()


def test_dataset_cache_carrying_pickled_code_is_ignored_and_never_run(tmp_path: Path) -> None:
    from ganlab.data import load_cached

    marker = tmp_path / "code-ran"
    cache = tmp_path / "digits-0123.pt"
    cache.write_bytes(evil_checkpoint(marker))
    assert load_cached(cache) is None  # treated as a cache miss: the data is rebuilt
    assert not marker.exists()


def _unsafe_loads(path: Path) -> list[str]:
    """Calls that can unpickle arbitrary objects: torch.load without weights_only=True, pickle/joblib loads."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name.endswith("torch.load"):
            safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)
            if not safe:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
        elif name in {"pickle.load", "pickle.loads", "joblib.load", "dill.load", "dill.loads", "cloudpickle.load"}:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
        elif name.endswith("np.load") or name.endswith("numpy.load"):
            if any(k.arg == "allow_pickle" and getattr(k.value, "value", False) is True for k in node.keywords):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_in_ganlab_or_its_plugins_unpickles_arbitrary_objects() -> None:
    files = [*sorted((ROOT / "ganlab").rglob("*.py")), *sorted((ROOT / "plugins").rglob("*.py"))]
    assert len(files) > 10
    unsafe = [hit for path in files for hit in _unsafe_loads(path)]
    assert not unsafe, "\n".join(unsafe)


# ---- what a real run writes ----------------------------------------------------------
def test_run_checkpoints_everything_into_its_mlflow_artifacts(workdir: Path, mlflow_client: Any) -> None:
    import torch

    code = cli_in_process(["run", *TINY_RUN, "--steps", "7", "--checkpoint-every", "2", "--seed", "3",
                           "--set", "keep_checkpoints=2"])
    assert code == 0
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    artifacts = Path(run.info.artifact_uri.replace("file://", ""))
    directory = artifacts / "checkpoints"
    # every 2 steps and at the end (7); only the newest two are kept
    assert sorted(p.name for p in directory.iterdir()) == ["step-00000006.pt", "step-00000007.pt"]
    last = checkpoint.load(directory / "step-00000007.pt")
    assert last["format"] == checkpoint.FORMAT and last["step"] == 7
    for key in checkpoint.REQUIRED_KEYS:
        assert key in last
    assert set(last["rng"]) >= {"torch", "numpy", "python"}
    assert {"generator", "perm", "pos"} <= set(last["data_order"])
    assert last["opt_g"]["state"] and last["opt_d"]["state"], "Adam moments are saved"
    assert last["config"]["steps"] == 7 and last["config"]["seed"] == 3
    assert last["config"]["checkpoint_every"] == 2 and last["config"]["head"] == {"name": "sigmoid"}
    final = torch.load(artifacts / "generator.pt", weights_only=True)
    assert all(torch.equal(final[k], last["generator"][k]) for k in final), "the end checkpoint is the end state"
    earlier = checkpoint.load(directory / "step-00000006.pt")
    assert earlier["step"] == 6
    assert not all(torch.equal(earlier["generator"][k], last["generator"][k]) for k in final)
