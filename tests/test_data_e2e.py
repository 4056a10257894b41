"""Short real runs (`ganlab run`) on the built-in architectures and datasets.

Each run is a handful of steps on tiny networks; what matters is that the
pieces fit (dataset → shape → architecture → head → engine → MLflow) and that
the converted data is cached and reused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY
from PIL import Image

CACHE_MARKER = "loaded from cache"
SMALL_DCGAN = ["--arch", "dcgan", "--set", "arch.ngf=8", "--set", "arch.ndf=8"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, so that other tests' runs cannot pre-fill it."""
    path = tmp_path / "data-cache"
    monkeypatch.setenv("GANLAB_CACHE", str(path))
    return path


def run(cli_inproc, capsys, *args: str) -> str:
    code = cli_inproc(["run", *TINY, "--set", "metrics=none", *args])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def data_cards(mlflow_client, tmp_path: Path) -> list[dict]:
    """The data cards of every run in the store, oldest first, each run FINISHED."""
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    runs = mlflow_client.search_runs(experiments, order_by=["attributes.start_time ASC"])
    cards = []
    for i, found in enumerate(runs):
        assert found.info.status == "FINISHED"
        local = mlflow_client.download_artifacts(found.info.run_id, "data_card/data_card.json", str(tmp_path / f"card{i}"))
        cards.append(json.loads(Path(local).read_text()))
    return cards


def test_dcgan_on_digits_reuses_the_cache(cli_inproc, capsys, workdir, cache, mlflow_client, tmp_path):
    first = run(cli_inproc, capsys, *SMALL_DCGAN, "--dataset", "digits")
    assert CACHE_MARKER not in first and list(cache.glob("digits-*.pt"))
    second = run(cli_inproc, capsys, *SMALL_DCGAN, "--dataset", "digits")
    assert f"dataset 'digits' {CACHE_MARKER}" in second
    changed = run(cli_inproc, capsys, *SMALL_DCGAN, "--dataset", "digits", "--set", "dataset.size=16")
    assert CACHE_MARKER not in changed  # other options, other cache entry
    cards = data_cards(mlflow_client, tmp_path)
    assert [c["shape"] for c in cards] == [[1, 32, 32], [1, 32, 32], [1, 16, 16]]
    assert cards[0]["size"] == cards[1]["size"] and cards[0]["num_classes"] == 10
    assert "load_digits" in cards[1]["source"]


def write_folder(root: Path) -> Path:
    for label, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(12):
            folder = root / "pictures" / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20 + i, 18), tuple(max(0, c - 5 * i) for c in color)).save(folder / f"{i}.png")
    return root / "pictures"


def test_dcgan_on_an_image_folder(cli_inproc, capsys, workdir, cache, mlflow_client, tmp_path):
    folder = write_folder(tmp_path)
    options = ["--dataset", "image-folder", "--set", f"dataset.path={folder}", "--set", "dataset.size=16"]
    assert CACHE_MARKER not in run(cli_inproc, capsys, *SMALL_DCGAN, *options)
    assert CACHE_MARKER in run(cli_inproc, capsys, *SMALL_DCGAN, *options)
    streamed = run(cli_inproc, capsys, *SMALL_DCGAN, *options, "--set", "dataset.in_memory=false",
                   "--set", "dataset.num_workers=0")
    assert CACHE_MARKER not in streamed  # streamed data is read from the folder every time
    cards = data_cards(mlflow_client, tmp_path)
    assert [c["storage"] for c in cards] == ["resident tensor", "resident tensor", "streamed"]
    assert all(c["shape"] == [3, 16, 16] and c["num_classes"] == 2 and c["size"] == 24 for c in cards)


def test_image_folder_cache_follows_the_folder_contents(cli_inproc, capsys, workdir, cache, tmp_path):
    folder = write_folder(tmp_path)
    options = ["--dataset", "image-folder", "--set", f"dataset.path={folder}", "--set", "dataset.size=16"]
    run(cli_inproc, capsys, *SMALL_DCGAN, *options)
    Image.new("RGB", (16, 16), (0, 200, 0)).save(folder / "red" / "new.png")
    assert CACHE_MARKER not in run(cli_inproc, capsys, *SMALL_DCGAN, *options)


def test_mlp_on_ring8(cli_inproc, capsys, workdir, cache, mlflow_client, tmp_path):
    run(cli_inproc, capsys, "--arch", "mlp", "--dataset", "ring8", "--set", "dataset.samples=2000")
    assert not cache.exists() or not list(cache.iterdir())  # drawing the mixture beats reading a cache
    [card] = data_cards(mlflow_client, tmp_path)
    assert card["shape"] == [2] and card["size"] == 2000 and card["num_classes"] == 8


def test_dcgan_on_ring8_is_refused_before_training(cli_inproc, capsys, workdir, cache, mlflow_client):
    code = cli_inproc(["run", *TINY, "--arch", "dcgan", "--dataset", "ring8"])
    err = capsys.readouterr().err
    assert code == 2 and "mlp" in err and "Traceback" not in err
    assert mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]) == []
