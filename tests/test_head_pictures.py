"""The head's pictures (docs/heads.md, "Pictures of the head"): D's field on 2-D data, the histograms of
p_real and of the generator's gradients, their animations, and a metric plugin's own picture.

Tested on the arrays each picture is drawn from (what ``ganlab_plugins.metrics.head_pictures``
prepares), not on pixels: the marked exact-0/1 regions, the zero-gradient dots, the exact bars.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY, run_in_process

from ganlab import Picture, hookimpl
from ganlab.contracts import metric_values_problem
from ganlab.record.pictures import render
from ganlab.testing import run_steps

#: a tiny ring8 run whose sparse head saturates within 8 steps (D's learning rate raised): evaluations at
#: steps 2, 4, 6, 8; the field on a 32 × 32 grid
RING8 = {"dataset": "ring8", "arch": {"name": "mlp", "hidden_scale": 0.125}, "steps": 8, "metrics": "diagnostics",
         "eval_every": 2, "batch_size": 16, "latent_dim": 8, "lr_d": 0.01, "eval_samples": 200,
         "sets": ["metric.diagnostics.field_resolution=32"]}


class Kept:
    """Keeps each evaluation's metrics and pictures; for the field, also the zero-gradient fakes recomputed
    independently, from the networks as they are at that evaluation."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[dict[str, float], dict[str, Any]]] = {}
        self.recomputed: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float], pictures: dict[str, Any]) -> None:
        from ganlab.train.evaluation import evaluation_mode
        from ganlab_plugins.metrics.diagnostics import generator_gradient_norms

        self.seen[step] = (metrics, pictures)
        field = pictures.get("field")
        if field is not None:
            at = torch.from_numpy(field.data["at"])
            with evaluation_mode(ctx.discriminator), torch.no_grad():
                norms = generator_gradient_norms(ctx.objective, ctx.head, ctx.discriminator, at)
                p_real = ctx.head.p_real(ctx.discriminator(at))
            self.recomputed[step] = (norms.numpy(), p_real.numpy())


def ring8(head: str, loss: str = "minimax") -> Kept:
    kept = Kept()
    settings = {k: v for k, v in RING8.items() if k != "sets"}
    run_steps(head=head, loss=loss, plugins=[kept], sets=RING8["sets"], **settings)
    return kept


def marked_area(field: Picture) -> float:
    """The area of the plane the field marks as exactly 0 or exactly 1 (cells × cell area)."""
    x, y = field.data["x"], field.data["y"]
    cells = int((field.data["exact_0"] | field.data["exact_1"]).sum())
    return cells * (x[1] - x[0]) * (y[1] - y[0])


def test_the_field_marks_exact_regions_for_sparsemax_and_none_for_sigmoid():
    sparse, smooth = ring8("sparsemax"), ring8("sigmoid")
    saturated = [step for step, (metrics, _) in sparse.seen.items() if metrics["diag.frac_exact_1"] > 0]
    assert saturated, "the sparse head never output an exact 1 in this run"
    for step in saturated:
        field = sparse.seen[step][1]["field"]
        assert marked_area(field) > 0, step
        assert np.array_equal(field.data["exact_1"], field.data["p_real"] == 1)
        assert np.array_equal(field.data["exact_0"], field.data["p_real"] == 0)
    for step, (metrics, pictures) in smooth.seen.items():
        assert metrics["diag.frac_exact_1"] == 0 and marked_area(pictures["field"]) == 0, step
    # the grid covers every point drawn
    field = sparse.seen[8][1]["field"]
    points = np.concatenate([field.data["real"], field.data["fake"]])
    assert field.data["x"][0] <= points[:, 0].min() and points[:, 0].max() <= field.data["x"][-1]
    assert field.data["y"][0] <= points[:, 1].min() and points[:, 1].max() <= field.data["y"][-1]


def test_the_zero_gradient_dots_are_the_fakes_diag_g_grad_zero_counts():
    kept = ring8("sparsemax")
    mixed = [step for step, (metrics, _) in kept.seen.items() if 0 < metrics["diag.g_grad_zero"] < 1]
    assert mixed, "no evaluation had both zero and non-zero gradients"
    for step, (metrics, pictures) in kept.seen.items():
        data = pictures["field"].data
        zero, arrows, at = data["zero"], data["arrows"], data["at"]
        # the same fakes: the first grad_samples of the fakes drawn, those the diagnostics measured
        assert np.array_equal(at, data["fake"][: len(at)]) and len(at) == min(256, len(data["fake"]))
        # the same count
        assert int(zero.sum()) == round(metrics["diag.g_grad_zero"] * len(zero)), step
        # and exactly the fakes whose gradient is zero, recomputed from the networks at this evaluation
        norms, p_real = kept.recomputed[step]
        assert np.array_equal(zero, norms == 0), step
        assert not arrows[zero].any() and (np.abs(arrows[~zero]).sum(axis=1) > 0).all()
        # the minimax game with a sparse head: a fake gets no gradient where D rejects it exactly
        assert (p_real[zero] == 0).all()
    # arrows are −∇ₓℓ_G on the stated scale: the longest is a tenth of the plot's width
    data = kept.seen[mixed[0]][1]["field"].data
    longest = np.hypot(data["arrows"][:, 0], data["arrows"][:, 1]).max()
    assert data["arrow_scale"] * longest == pytest.approx(0.1 * (data["x"][-1] - data["x"][0]), rel=1e-5)


def test_the_histograms_count_exact_zeros_and_ones_apart_and_agree_with_the_diagnostics():
    kept = ring8("sparsemax")
    for step, (metrics, pictures) in kept.seen.items():
        data = pictures["head_histograms"].data
        real, fake, grad = data["real"], data["fake"], data["grad"]
        for counts in (real, fake):
            assert counts["exact_0"] + counts["exact_1"] + counts["counts"].sum() == counts["n"] == 200
        # a two-score head: p_real exactly 0 or 1 puts one exact 1 and one exact 0 among its two probabilities
        exact = real["exact_0"] + real["exact_1"] + fake["exact_0"] + fake["exact_1"]
        assert exact / (2 * (real["n"] + fake["n"])) == pytest.approx(metrics["diag.frac_exact_1"]), step
        assert grad["zero"] == round(metrics["diag.g_grad_zero"] * grad["n"]) and grad["n"] == 200
        assert grad["zero"] + grad["counts"].sum() == grad["n"]


@pytest.mark.slow
@pytest.mark.parametrize("head", ["sigmoid", "sparsemax"])
def test_the_pictures_draw(head: str, capsys: pytest.CaptureFixture[str]):
    """Drawn by the record writer's code: the figures' own sizes (not the card of a failed drawing)."""
    _, pictures = ring8(head).seen[8]
    assert render(pictures["field"]).size == (640, 660)
    assert render(pictures["head_histograms"]).size == (1200, 360)
    assert "failed" not in capsys.readouterr().err


@pytest.mark.slow
def test_pictures_of_degenerate_evaluations_draw(capsys: pytest.CaptureFixture[str]):
    from ganlab_plugins.metrics import head_pictures

    class Context:
        step, device, dataset_name, config = 3, "cpu", "ring8", None
        head = type("Head", (), {"p_real": staticmethod(lambda s: torch.zeros(len(s)))})()
        discriminate = staticmethod(lambda x: torch.zeros(len(x), 1))

    same = torch.zeros(5, 2)  # every point at one place, D certain everywhere, every gradient zero
    for gradients in (torch.zeros(3, 2), None):
        assert render(head_pictures.field_picture(Context(), same, same, gradients, 16)).size == (640, 660)
    for norms in (torch.zeros(4), None, torch.tensor([0.0, 1e-30, 5e3, float("inf")])):
        picture = head_pictures.histograms_picture(Context(), torch.tensor([0.0, 1.0, 0.5]), torch.ones(3), norms)
        assert render(picture).size[1] == 360
    assert "failed" not in capsys.readouterr().err


def test_pictures_off_skips_their_work():
    kept = Kept()
    settings = {k: v for k, v in RING8.items() if k != "sets"}
    run_steps(head="sparsemax", plugins=[kept], sets=["pictures=false"], **{**settings, "steps": 2})
    metrics, pictures = kept.seen[2]
    assert pictures == {} and "diag.g_grad_zero" in metrics
    kept = Kept()
    run_steps(head="sparsemax", plugins=[kept], sets=["metric.diagnostics.field=false"], **{**settings, "steps": 2})
    assert set(kept.seen[2][1]) == {"head_histograms"}


def test_the_field_is_drawn_only_where_p_real_is_a_function_of_the_plane():
    kept = Kept()
    run_steps(head="sigmoid", dataset="tiny-images", plugins=[kept], metrics="diagnostics", steps=1)
    assert set(kept.seen[1][1]) == {"head_histograms"}  # images: the histograms, as for every run
    kept = Kept()
    settings = {k: v for k, v in RING8.items() if k not in ("sets", "steps")}
    run_steps(head="sigmoid", plugins=[kept], steps=2, pack=2, **settings)
    assert set(kept.seen[2][1]) == {"head_histograms"}  # a packed D scores packs, not points


def test_the_metric_contract_takes_pictures_and_names_a_bad_one():
    good = {"x.value": 1.0, "x_pixels": Picture.image(torch.rand(4, 5, 3)),
            "x-plot": Picture.plot("pkg.module:draw", values=torch.arange(3), label="a", nested={"a": [1, 2]})}
    assert metric_values_problem(good) is None
    assert good["x_pixels"].array.dtype == np.uint8 and isinstance(good["x-plot"].data["values"], np.ndarray)
    bad = {
        "a b": Picture.image(np.zeros((2, 2), np.uint8)),
        "p": Picture.plot("not a function name"),
        "q": Picture.plot("m:f", thing=object()),
        "r": Picture("grid", np.zeros((2, 2), np.float64)),
        "s": Picture.plot("m:f", big=np.zeros(9 << 20, np.uint8)),
    }
    said = {"a b": "a picture's key is", "p": "not 'module:function'", "q": "data holds a object",
            "r": "not a uint8", "s": "MiB of data"}
    for key, picture in bad.items():
        assert said[key] in metric_values_problem({key: picture}), key


PLUGIN = '''
import numpy as np
from ganlab import Picture, hookimpl


class Checker:
    def applies_to(self, run):
        return True

    def evaluate(self, ctx):
        pixels = np.zeros((6, 8, 3), np.uint8)
        pixels[:, :, 0] = ctx.step
        return {"checker.step": float(ctx.step), "checker": Picture.image(pixels),
                "broken": Picture.plot("no_such_module_anywhere:draw", step=ctx.step), "a b": Picture.points(pixels[0])}


@hookimpl
def register_metrics(register):
    register("checker", Checker, summary="a metric with pictures")
'''


def logged(mlflow_client: Any, run: Any) -> dict[str, list[int]]:
    from ganlab.record.logged_images import logged_images

    keys: dict[str, list[int]] = {}
    for image in logged_images(mlflow_client, run):
        keys.setdefault(image.key, []).append(image.step)
    return {key: sorted(steps) for key, steps in keys.items()}


def gif_frames(mlflow_client: Any, run: Any, key: str, where: Path) -> int:
    from PIL import Image

    path = mlflow_client.download_artifacts(run.info.run_id, f"{key}/animation.gif", str(where))
    with Image.open(path) as gif:
        return gif.n_frames


@pytest.mark.slow
def test_a_metric_plugins_picture_reaches_the_record(workdir: Path, mlflow_client: Any):
    from PIL import Image

    from ganlab.record.logged_images import logged_images, read_image

    (workdir / "checker.py").write_text(PLUGIN)
    done = run_in_process(["run", "--plugin", "checker.py", "--dataset", "ring8", "--arch", "mlp", *TINY,
                           "--set", "arch.hidden_scale=0.125", "--eval-every", "2", "--set", "metrics=checker"], workdir)
    assert done.returncode == 0, done.stderr
    # a picture under a bad key is named and left out; the rest of the evaluation is logged
    assert "metric 'checker' (plugin 'checker') evaluate() returned a picture under 'a b'" in done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    assert logged(mlflow_client, run) == {"samples": [4]}  # an evaluation with a bad picture logs nothing of it

    (workdir / "pictured.py").write_text(PLUGIN.replace(', "a b": Picture.points(pixels[0])', ""))
    done = run_in_process(["run", "--plugin", "pictured.py", "--dataset", "ring8", "--arch", "mlp", *TINY,
                           "--set", "arch.hidden_scale=0.125", "--eval-every", "2", "--set", "metrics=checker",
                           "--run-name", "second"], workdir)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id],
                                      filter_string="attributes.run_name = 'second'")
    assert run.info.status == "FINISHED" and run.data.metrics["checker.step"] == 4
    assert logged(mlflow_client, run) == {"samples": [4], "checker": [2, 4], "broken": [2, 4]}
    for image in logged_images(mlflow_client, run):
        if image.key == "checker":  # the pixels the plugin returned, as they were
            pixels = np.asarray(Image.open(io.BytesIO(read_image(mlflow_client, run, image))))
            assert pixels.shape == (6, 8, 3) and (pixels[:, :, 0] == image.step).all()
        if image.key == "broken":  # a drawing that fails is a card saying so, and the run goes on
            assert Image.open(io.BytesIO(read_image(mlflow_client, run, image))).size == (500, 200)
    assert gif_frames(mlflow_client, run, "checker", workdir) == 2


@pytest.mark.slow
def test_a_ring8_run_records_its_pictures_and_their_animations(workdir: Path, mlflow_client: Any):
    from PIL import Image

    args = ["run", "--dataset", "ring8", "--arch", "mlp", "--head", "sparsemax", *TINY, "--set",
            "arch.hidden_scale=0.125", "--eval-every", "1", "--set", "metrics=diagnostics",
            "--set", "metric.diagnostics.field_resolution=24"]
    done = run_in_process(args, workdir)
    assert done.returncode == 0, done.stderr
    [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    evaluations = [1, 2, 3, 4]
    assert sorted(m.step for m in mlflow_client.get_metric_history(run.info.run_id, "diag.p_real_real")) == evaluations
    assert logged(mlflow_client, run) == {"samples": [4], "field": evaluations, "head_histograms": evaluations}
    for key in ("field", "head_histograms"):  # one frame per evaluation, and it decodes
        assert gif_frames(mlflow_client, run, key, workdir / key) == len(evaluations)

    # `ganlab sample RUN --field` writes the same animation
    done = run_in_process(["sample", run.info.run_id, "--field", "--out", "field.gif"], workdir)
    assert done.returncode == 0, done.stderr
    with Image.open(workdir / "field.gif") as gif:
        assert gif.n_frames == len(evaluations)
    assert f"at 4 evaluations (steps 1 to 4) to field.gif" in done.stderr

    # pictures off: none logged, none animated
    done = run_in_process([*args, "--set", "pictures=false", "--run-name", "off"], workdir)
    assert done.returncode == 0, done.stderr
    [off] = mlflow_client.search_runs([run.info.experiment_id], filter_string="attributes.run_name = 'off'")
    assert logged(mlflow_client, off) == {"samples": [4]}
    assert not [f for f in mlflow_client.list_artifacts(off.info.run_id) if f.path in ("field", "head_histograms")]
    done = run_in_process(["sample", off.info.run_id, "--field"], workdir)
    assert done.returncode == 2 and "logged no field pictures" in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_sample_field_refuses_what_it_cannot_write(workdir: Path):
    done = run_in_process(["sample", "last", "--field", "--out", "field.png"], workdir)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["ganlab: error: cannot write 'field.png': --field writes an "
                                                "animated GIF; name a .gif file"]
    done = run_in_process(["sample", "last", "--field", "--out", "missing/field.gif"], workdir)
    assert done.returncode == 2 and "directory missing does not exist" in done.stderr


def test_a_drawing_function_of_a_module_loaded_from_a_file_is_found_by_the_writer(tmp_path: Path, capsys):
    """A plugin loaded by path (``--plugin file.py``) is not importable by name in the writer's process:
    the picture carries its file (``located``), and the writer loads it from there."""
    import sys

    from ganlab.record.pictures import located

    path = tmp_path / "drawn_here.py"
    path.write_text("def draw(figure, size):\n    figure.set_size_inches(size, 2)\n    figure.add_subplot().plot([1, 2])\n")
    name = "ganlab_local_plugin_drawn_here_for_test"
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    try:
        picture = located(Picture.plot(f"{name}:draw", size=3))
    finally:
        del sys.modules[name]  # as in the writer's process, which never loaded the plugin
    assert picture.origin == str(path)
    try:
        assert render(picture).size == (300, 200)
    finally:
        sys.modules.pop(name, None)
    assert "failed" not in capsys.readouterr().err
    assert render(Picture.plot(f"{name}_missing:draw", size=3)).size == (500, 200)  # the card saying why
    assert "ModuleNotFoundError" in capsys.readouterr().err


class Store:
    uri = "sqlite:///unused.db"

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, operation: str, *args: Any, **kwargs: Any) -> None:
        self.sent.append((operation, *args, kwargs.get("key"), kwargs.get("step")))


def test_a_resumed_run_logs_no_picture_twice_and_animates_those_logged_before():
    from ganlab.record.tracker import MlflowTracker

    store = Store()
    tracker = MlflowTracker(store, resume_run_id="run")  # type: ignore[arg-type]
    tracker.skip_until = {"images/field": 4, "images/plugin-picture": 2, "samples": 4}
    picture = Picture.image(np.zeros((2, 2), np.uint8))
    ctx = type("Context", (), {"extras": {}})()
    for step in (4, 6):
        tracker.on_evaluate(ctx=ctx, step=step, metrics={}, pictures={"field": picture})
    assert [(op, key, step) for op, _, _, key, step in store.sent if op == "log_image"] == [("log_image", "field", 6)]
    store.sent.clear()
    tracker.log_animations()
    assert store.sent == [("log_animation", "run", "field", None, None),
                          ("log_animation", "run", "plugin-picture", None, None)]
