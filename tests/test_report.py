"""``ganlab report``: what the page says, checked against values chosen here.

The runs are written straight into a real SQLite store with MlflowClient (as tests/test_compare.py
does), their pictures with MLflow's own ``log_image(key=..., step=...)``: each picture is one solid
colour that says which run and step it came from, so the test can tell from the page's pixels which
run's picture of which step it shows. A real `ganlab run` population is reported in
tests/test_report_browser.py.
"""

from __future__ import annotations

import base64
import io
import math
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ganlab.compare.significance import permutation_p
from ganlab.record.logged_images import last_of_each_key, parse
from ganlab.report.content import default_metrics, median_run

#: head -> final modes.captured per seed 0..3. sigmoid: sorted 2 (seed 1), 5 (seed 2), 7, 8 -> lower
#: median 5, seed 2. sparsemax: 1 (seed 2), 3 (seed 0), 3 (seed 1), 6 -> 3, tied: the smaller seed, 0.
CAPTURED = {"sigmoid": [8, 2, 5, 7], "sparsemax": [3, 3, 1, 6]}
MEDIAN_SEED = {"sigmoid": 2, "sparsemax": 0}


def colour(head: str, seed: int, step: int) -> tuple[int, int, int]:
    """The solid colour of a run's picture at a step: which head, seed and step, readable from pixels."""
    return (40 if head == "sigmoid" else 200, 30 * seed + 10, step)


def solid(rgb: tuple[int, int, int], size: int = 24) -> Any:
    import numpy as np

    return np.full((size, size, 3), rgb, dtype=np.uint8)


def log_run(client: Any, experiment: str, head: str, seed: int, captured: float, field: bool,
            status: str = "FINISHED", tags: dict[str, str] | None = None) -> str:
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment, run_name=f"{head}-seed={seed}", tags=tags or {})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    history = [Metric("modes.captured", float(captured) + 2 - s, now + s, 10 * s) for s in range(3)]
    history += [Metric("loss.d", 1.0 + s, now + s, 10 * s) for s in range(3)]
    client.log_batch(run_id, metrics=history, params=[Param("head.name", head), Param("seed", str(seed)),
                                                      Param("dataset.name", "ring8")])
    for step in (10, 20):
        client.log_image(run_id, solid(colour(head, seed, step)), key="samples", step=step)
        if field:
            client.log_image(run_id, solid(colour(head, seed, step + 100)), key="field", step=step)
    client.set_terminated(run_id, status=status)
    return run_id


@pytest.fixture
def store(workdir: Path, mlflow_client: Any) -> Any:
    """Experiment 'rep': two heads x four seeds; only sigmoid's runs logged a field picture (sparsemax's
    were 'made before that feature'); one FAILED sigmoid run; and an empty experiment 'nothing'."""
    experiment = mlflow_client.create_experiment("rep")
    for head, values in CAPTURED.items():
        for seed, captured in enumerate(values):
            log_run(mlflow_client, experiment, head, seed, captured, field=head == "sigmoid")
    log_run(mlflow_client, experiment, "sigmoid", 9, 100.0, field=True, status="FAILED")
    mlflow_client.create_experiment("nothing")
    return mlflow_client


class Page(HTMLParser):
    """The parts of the report a reader sees: section ids in order, tables (rows of cell texts), images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[tuple[str, dict[str, str]]] = []  # (section id, attributes)
        self.captions: dict[str, list[str]] = {}
        self._section = ""
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = found["id"]
            self.sections.append(self._section)
        elif tag == "tr":
            self.tables.setdefault(self._section, []).append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append((self._section, found))
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._section][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "figcaption" and self._caption is not None:
            self.captions.setdefault(self._section, []).append("".join(self._caption).strip())
            self._caption = None

    def handle_data(self, data: str) -> None:
        for part in (self._cell, self._caption):
            if part is not None:
                part.append(data)


def pixel(uri: str) -> tuple[int, int, int]:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def report(run_in_process: Any, root: Path, *args: str) -> tuple[Any, Page | None]:
    done = run_in_process(["report", *args], root)
    out = next((Path(root, a) for a in reversed(args) if a.endswith(".html")), Path(root, "report.html"))
    return done, Page(out.read_text(encoding="utf-8")) if done.returncode == 0 else None


def test_groups_n_median_seed_tests_and_pictures(store, workdir):
    from conftest import run_in_process

    done, page = report(run_in_process, workdir, "rep", "-o", "rep.html", "--metric", "modes.captured")
    assert done.returncode == 0, done.stderr
    assert "8 runs in 2 groups" in done.stderr
    assert page.sections == ["curves", "finals", "tests", "pictures-samples", "pictures-field"]

    header, *rows = page.tables["finals"]
    assert header == ["head.name", "n", "median seed (by modes.captured)", "modes.captured"]
    by_head = {row[0]: row for row in rows}
    assert set(by_head) == set(CAPTURED)  # the FAILED run is no group of its own, nor in sigmoid's n
    for head, values in CAPTURED.items():
        n, mean = len(values), sum(values) / len(values)
        se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
        assert by_head[head][1] == str(n)
        assert by_head[head][2] == f"{head}-seed={MEDIAN_SEED[head]} (seed {MEDIAN_SEED[head]})"
        assert by_head[head][3] == f"{mean:.4g} ± {se:.2g}"

    header, *tests = page.tables["tests"]
    assert header[:6] == ["metric", "first", "second", "difference", "p", "p (Holm)"]
    (test,) = tests  # one pair of groups, one metric
    p, exact = permutation_p(CAPTURED["sigmoid"], CAPTURED["sparsemax"])
    assert exact and test[:5] == ["modes.captured", "sigmoid", "sparsemax", "2.25", f"{p:.3g}"]
    assert test[5] == f"{p:.3g}"  # a family of one test: Holm changes nothing

    # the pictures: the median seed's last step (20), per group; no field slot where none was logged
    samples = {attrs["alt"]: attrs["src"] for section, attrs in page.images if section == "pictures-samples"}
    assert {alt: pixel(src) for alt, src in samples.items()} == {
        f"samples of {head}": colour(head, seed, 20) for head, seed in MEDIAN_SEED.items()}
    fields = [attrs for section, attrs in page.images if section == "pictures-field"]
    assert [(a["alt"], pixel(a["src"])) for a in fields] == [("field of sigmoid", colour("sigmoid", 2, 120))]
    assert page.captions["pictures-field"] == ["sigmoid (n=4)sigmoid-seed=2, seed 2, step 20"]
    (curve,) = [a for s, a in page.images if s == "curves"]
    assert curve["src"].startswith("data:image/png;base64,")


def test_the_page_reaches_nothing_outside_itself(store, workdir):
    from conftest import run_in_process

    done, _ = report(run_in_process, workdir, "rep", "-o", "rep.html")
    assert done.returncode == 0, done.stderr
    html = (workdir / "rep.html").read_text(encoding="utf-8")
    assert "<script" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'; img-src data:" in html
    for reference in ('src="http', "src='http", 'href="http', "url(", "@import", "@font-face"):
        assert reference not in html, reference
    assert "Made with <code>ganlab report rep -o rep.html</code>" in html


def test_text_from_the_store_is_escaped(workdir, mlflow_client):
    from conftest import run_in_process

    experiment = mlflow_client.create_experiment("<b>x</b>")
    for seed in range(2):
        log_run(mlflow_client, experiment, "<img src=x onerror=alert(1)>", seed, seed, field=False)
    done, page = report(run_in_process, workdir, "<b>x</b>", "-o", "x.html")
    assert done.returncode == 0, done.stderr
    html = (workdir / "x.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "<b>x</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert [s for s, _ in page.images].count("pictures-samples") == 1


def test_a_sweep_by_its_run_id_and_the_default_metrics(workdir, mlflow_client):
    from conftest import run_in_process

    experiment = mlflow_client.create_experiment("swept")
    parent = mlflow_client.create_run(experiment, run_name="study", tags={"ganlab.sweep.role": "parent"})
    for head in ("sigmoid", "softmax"):
        for seed in range(2):
            log_run(mlflow_client, experiment, head, seed, seed + (head == "softmax"), field=False,
                    tags={"mlflow.parentRunId": parent.info.run_id})
    mlflow_client.set_terminated(parent.info.run_id)
    done, page = report(run_in_process, workdir, parent.info.run_id[:8], "-o", "s.html")
    assert done.returncode == 0, done.stderr
    assert f"sweep 'study' ({parent.info.run_id})" in done.stderr
    # what the metric plugins measured is charted, not the loss
    assert page.tables["finals"][0] == ["head.name", "n", "median seed (by modes.captured)", "modes.captured"]
    assert [a["alt"] for s, a in page.images if s == "curves"] == [
        "modes.captured: mean and standard error per group over steps"]


def test_the_median_seed_and_default_metrics() -> None:
    from types import SimpleNamespace

    def run(seed: int, value: float | None) -> Any:
        metrics = {} if value is None else {"m": value}
        return SimpleNamespace(info=SimpleNamespace(run_id=f"r{seed}"),
                               data=SimpleNamespace(params={"seed": str(seed)}, metrics=metrics))

    runs = [run(0, 3.0), run(1, 1.0), run(2, math.nan), run(3, 3.0), run(4, None), run(10, 2.0)]
    # finite values sorted: 1 (seed 1), 2 (seed 10), 3 (seed 0), 3 (seed 3): lower median 2, seed 10
    assert median_run(runs, "m").info.run_id == "r10"
    assert median_run(runs[:1], "m").info.run_id == "r0"
    assert median_run([run(5, None), run(7, None), run(6, None)], "m").info.run_id == "r6"  # by seed
    assert default_metrics(["modes.captured", "modes.hq_percent", "diag.entropy", "loss.d", "loss.g"]) == [
        "modes.captured", "modes.hq_percent"]
    assert default_metrics(["diag.entropy", "loss.d", "loss.g"]) == ["loss.d", "loss.g"]
    # the metrics' declared headline first: the classifier distance and the field's FID and IS beside it
    logged = ["images.class_kl", "images.coverage", "images.fld", "images.fld_real", "images.kid", "inception.fid",
              "inception.is", "inception.kid", "inception.precision"]
    assert default_metrics(logged) == ["images.fld", "images.kid", "inception.fid", "inception.is"]


def test_mlflow_image_file_names_are_read_back(workdir, mlflow_client):
    experiment = mlflow_client.create_experiment("names")
    run_id = mlflow_client.create_run(experiment).info.run_id
    for step in (3, 12, 7):
        mlflow_client.log_image(run_id, solid((step, 0, 0)), key="plugin/pic", step=step)
    folder = Path(mlflow_client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / "images"
    found = [image for p in folder.iterdir() if (image := parse(p.name)) is not None]
    assert sorted(i.step for i in found) == [3, 7, 12]  # the .webp thumbnails are not pictures
    assert {i.key for i in found} == {"plugin/pic"}
    assert last_of_each_key(found)["plugin/pic"].step == 12
    assert parse("samples%step%4%timestamp%1%0a-b.png").step == 4  # earlier MLflow versions' separator
