"""The ``inception`` metric: torch-fidelity's Inception-v3 FID, KID, IS and precision/recall.

Nothing is downloaded. The weights are a file of the same architecture made once per session
with random weights (``weights_file`` in conftest.py). The full path runs on it: the weights check,
torch-fidelity's extractor, the reference cache, the CLI.

Inception at 299×299 costs about a third of a second per image on one CPU thread, so the
image sets are ten digits each, shared by module fixtures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, run_in_process
from ganlab.config import RunConfig
from ganlab.context import EvalContext, RunContext
from ganlab.data import DataRequest, TensorData
from ganlab.errors import ConfigError
from ganlab_plugins.datasets.digits import Digits
from ganlab_plugins.metrics import inception_features as feats
from ganlab_plugins.metrics import inception_reference as refs
from ganlab_plugins.metrics import inception_scores as scores
from ganlab_plugins.metrics import inception_weights as weights
from ganlab_plugins.metrics.inception import InceptionMetrics

N = 10  # images per set
#: two IS splits of five: a split of one image scores exactly 1 whatever its logits
SMALL = {"samples": N, "kid_subsets": 5, "kid_subset_size": 5, "is_splits": 2}


@pytest.fixture
def with_weights(monkeypatch: pytest.MonkeyPatch, weights_file: Path) -> Path:
    monkeypatch.setenv(weights.ENV, str(weights_file))
    return weights_file


@pytest.fixture(scope="module")
def digits() -> TensorData:
    return Digits(8).load(DataRequest(root=Path("data")))


def config(metrics: str = "inception", **settings) -> RunConfig:
    return RunConfig(settings={"metrics": metrics, "download": False, "eval_samples": N, **settings},
                     components={"dataset": {"name": "digits", "size": 8, "exclude_class": -1}})


def eval_context(data: TensorData, generate, name: str = "digits-inception-test") -> EvalContext:
    return EvalContext(
        step=0, device=torch.device("cpu"), dataset_name=name, data=data, head=None, generator=None,
        discriminator=None, latent_dim=8, seed=0, cache_dir=Path(os.environ["GANLAB_CACHE"]), generate=generate,
        discriminate=lambda x: x, real_batch=lambda n: data.x[:n], config=config(),
    )


def run_context(data, metrics: str = "inception", device: str = "cpu") -> RunContext:
    return RunContext(config=config(metrics), device=torch.device(device), generator=None, discriminator=None,
                      head=None, objective=None, data=data, data_shape=tuple(data.shape), num_classes=10)


# ---- the input rule ---------------------------------------------------------------
def test_uint8_rounds_as_a_saved_png_and_gives_real_pixels_back_exactly() -> None:
    pixels = torch.arange(256, dtype=torch.float64)
    signed = (pixels / 127.5 - 1.0).to(torch.float32).reshape(1, 1, 16, 16)  # how a dataset scales 8-bit images
    assert torch.equal(feats.to_uint8(signed)[:, 0].flatten().long(), pixels.long())
    x = torch.linspace(-1.2, 1.2, 2401).reshape(1, 1, 49, 49)
    # torchvision's save_image: (x+1)/2 * 255 + 0.5, clamped, truncated to uint8 (float64 here)
    expected = (((x.double() + 1) / 2) * 255 + 0.5).clamp(0, 255).floor().to(torch.uint8)
    assert torch.equal(feats.to_uint8(x)[:, 0], expected[:, 0])
    assert int(feats.to_uint8(torch.full((1, 3, 2, 2), 5.0)).min()) == 255


def test_greyscale_is_repeated_to_rgb_as_pil_converts_a_greyscale_file() -> None:
    from PIL import Image

    grey = torch.rand(1, 1, 5, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = feats.to_uint8(grey)[0].permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(feats.to_uint8(grey)[0, 0].numpy(), mode="L").convert("RGB"))
    assert ours.shape == (5, 7, 3) and np.array_equal(ours, pil)
    rgb = torch.rand(2, 3, 4, 4) * 2 - 1
    assert torch.equal(feats.to_uint8(rgb), ((rgb + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8))
    with pytest.raises(ValueError, match="1 or 3"):
        feats.to_uint8(torch.zeros(1, 2, 4, 4))


# ---- the statistics, by torch-fidelity's functions --------------------------------
def test_inception_score_matches_its_definition_on_given_logits() -> None:
    """exp(E_x KL(p(y|x) ‖ p(y))) per split = exp(H(p̄) − mean H(p(y|x))), on torch-fidelity's shuffle."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(200, 7, generator=gen, dtype=torch.float64) * 3
    order = np.random.RandomState(scores.SEED).permutation(200)
    p = torch.softmax(logits[order], dim=1).numpy()
    per_split = []
    for chunk in np.array_split(p, scores.IS_SPLITS):
        mean = chunk.mean(axis=0)
        entropy_of_mean = -(mean * np.log(mean)).sum()
        mean_entropy = -(chunk * np.log(chunk)).sum(axis=1).mean()
        per_split.append(math.exp(entropy_of_mean - mean_entropy))
    mean_is, std_is = scores.inception_score(logits.float(), scores.IS_SPLITS)
    assert mean_is == pytest.approx(np.mean(per_split), rel=1e-5)
    assert std_is == pytest.approx(np.std(per_split), rel=1e-4)
    # every sample with the same p(y|x): p(y) is that too, every KL is 0 and IS = 1 exactly
    assert scores.inception_score(torch.randn(1, 10).repeat(200, 1)) == pytest.approx((1.0, 0.0), abs=1e-9)


def test_fid_of_identical_features_is_zero_and_a_shift_adds_its_square() -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    a = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    reference = fid_features_to_statistics(a.double())
    assert abs(scores.fid(a, reference["mu"], reference["sigma"])) < 1e-9
    # the same covariance, the mean moved by 0.5 in each of 16 coordinates: FID = 16 * 0.25
    assert scores.fid(a + 0.5, reference["mu"], reference["sigma"]) == pytest.approx(16 * 0.25, abs=1e-6)


# ---- the weights file -----------------------------------------------------------------
@pytest.mark.slow
def test_a_weights_file_that_does_not_fit_is_named_with_what_is_wrong(tmp_path: Path, weights_file: Path) -> None:
    state = torch.load(weights_file, weights_only=True)
    wrong_shape = dict(state, **{"fc.weight": torch.zeros(10, 2048)})
    missing = {k: v for k, v in state.items() if not k.startswith("Mixed_7c")}
    extra = dict(state, **{"head.weight": torch.zeros(3)})
    without_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    cases = {"shape.pth": (wrong_shape, "'fc.weight' has shape [10, 2048] where the architecture has [1008, 2048]"),
             "missing.pth": (missing, "tensors are missing, e.g. 'Mixed_7c."),
             "extra.pth": (extra, "the architecture lacks, e.g. 'head.weight'"),
             "list.pth": ([1, 2], "holds a list, not a state dict")}
    for name, (content, says) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(ConfigError, match="do not fit") as refused:
            weights.checked(tmp_path / name, "test")
        assert says in str(refused.value) and str(tmp_path / name) in str(refused.value)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"garbage.pth \(test\) are not a PyTorch file of tensors alone") as refused:
        weights.checked(tmp_path / "garbage.pth", "test")
    assert "weights_only=False" not in str(refused.value), "never advise loading code"
    torch.save(without_counters, tmp_path / "counters.pth")  # torch-fidelity's own file has no counters
    assert weights.checked(tmp_path / "counters.pth", "test").sha256 != weights.checked(weights_file, "test").sha256


def test_weights_are_found_through_the_variable_then_the_hub_cache(monkeypatch, tmp_path: Path, weights_file) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.ENV, raising=False)
    assert weights.find(download=False) is None
    assert weights.hub_path() == tmp_path / "torch" / "hub" / "checkpoints" / weights.FILE_NAME
    monkeypatch.setenv(weights.ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(ConfigError, match=f"{weights.ENV} names .*nowhere.pth, which is not a file"):
        weights.find(download=False)
    monkeypatch.setenv(weights.ENV, str(weights_file))
    found = weights.find(download=False)
    assert found.source == weights.ENV and found.digest == found.sha256[:16]
    monkeypatch.delenv(weights.ENV)
    weights.hub_path().parent.mkdir(parents=True)
    os.symlink(weights_file, weights.hub_path())
    assert weights.find(download=False).source == "torch hub cache"


# ---- when it applies ------------------------------------------------------------------
def test_auto_without_weights_leaves_it_off_with_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    images = TensorData(x=torch.zeros(20, 1, 8, 8))
    metric = InceptionMetrics(**SMALL, auto_on_cpu=True)
    assert not metric.applies_to(run_context(images, metrics="auto"))
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ganlab: note: inception metrics off: no Inception-v3 weights")
    assert weights.ENV in line and weights.FILE_NAME in line and str(tmp_path) in line
    # named in metrics, the same absence refuses the run
    with pytest.raises(ConfigError, match=f"metric 'inception' cannot run: no Inception-v3 weights; set {weights.ENV}"):
        InceptionMetrics(**SMALL).applies_to(run_context(images))


@pytest.mark.slow
def test_auto_with_weights_applies_to_images_off_the_cpu_or_when_asked(with_weights, digits, capsys) -> None:
    assert InceptionMetrics(**SMALL, auto_on_cpu=True).applies_to(run_context(digits, metrics="auto"))
    assert capsys.readouterr().err == ""
    assert not InceptionMetrics(**SMALL).applies_to(run_context(digits, metrics="auto"))  # a CPU run
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "inception metrics off: the run is on the CPU" in line and "auto_on_cpu" in line
    assert InceptionMetrics(**SMALL).applies_to(run_context(digits, metrics="inception"))  # named: any device
    points = TensorData(x=torch.randn(20, 2))
    assert not InceptionMetrics(**SMALL).applies_to(run_context(points, metrics="auto"))
    four = TensorData(x=torch.zeros(20, 4, 8, 8))
    assert not InceptionMetrics(**SMALL, auto_on_cpu=True).applies_to(run_context(four, metrics="auto"))
    assert "4-channel images have no Inception-v3 input" in capsys.readouterr().err
    no_test = TensorData(x=digits.x, y=digits.y, num_classes=10)
    with pytest.raises(ConfigError, match="reference = 'test', but dataset 'digits' has no test split"):
        InceptionMetrics(**SMALL, reference="test").applies_to(run_context(no_test))


# ---- values: the full path on ten digits ---------------------------------------------------
LEVELS = (0.0, 0.1, 0.25, 0.5)  # standard deviations of the noise added to [-1, 1] images


@pytest.fixture(scope="module")
def evaluated(digits, weights_file, tmp_path_factory) -> dict:
    """One reference (the first ten training digits, the whole split of this data) and the metric's
    values for generated sets: those same digits under growing noise (one draw, scaled), and ten
    other digits."""
    old = os.environ.get(weights.ENV)
    os.environ[weights.ENV] = str(weights_file)
    try:
        reference = TensorData(x=digits.x[:N].clone())
        metric = InceptionMetrics(**SMALL)
        computed = refs.COMPUTED
        noise = torch.randn(reference.x.shape, generator=torch.Generator().manual_seed(7))
        values, params = {}, {}
        for level in LEVELS:
            noised = (reference.x + level * noise).clamp(-1, 1)
            ctx = eval_context(reference, lambda n, x=noised: x[:n])
            values[level] = metric.evaluate(ctx)
            params = dict(ctx.params)
        other = digits.x[N : 2 * N]
        values["other"] = metric.evaluate(eval_context(reference, lambda n: other[:n]))
        return {"values": values, "params": params, "reference": reference, "other": other,
                "computed": refs.COMPUTED - computed, "metric": metric}
    finally:
        if old is None:
            os.environ.pop(weights.ENV, None)
        else:
            os.environ[weights.ENV] = old


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(evaluated) -> None:
    values = evaluated["values"]
    # zero up to torch-fidelity's round-off: ten samples give a covariance of rank 9 in 2048 dimensions,
    # and the square roots of its ~2000 round-off eigenvalues (about 1e-16 each) add up to about 1e-5
    assert abs(values[0.0]["inception.fid"]) < 1e-4 < values[LEVELS[1]]["inception.fid"]
    fids = [values[level]["inception.fid"] for level in LEVELS]
    assert fids == sorted(fids) and fids[1] > 0 and fids[3] > 2 * fids[1], fids
    assert values[0.0]["inception.precision"] == values[0.0]["inception.recall"] == 1.0
    assert evaluated["computed"] == 1  # five evaluations, one reference


@pytest.mark.slow
def test_values_agree_with_torch_fidelity_calculate_metrics_on_pngs(evaluated, weights_file, tmp_path) -> None:
    """The field's route, independent of ours up to the extractor: samples written as PNG files by
    torchvision's save_image, read back by torch-fidelity (PIL, greyscale to RGB), scored by
    ``calculate_metrics`` with the same protocol. (Precision/recall named to Inception's pool
    features: torch-fidelity's default for them is VGG-16, as in Kynkäänniemi et al.)"""
    import torch_fidelity
    from torchvision.utils import save_image

    for folder, images in (("generated", evaluated["other"]), ("real", evaluated["reference"].x)):
        (tmp_path / folder).mkdir()
        for i, image in enumerate(images):
            save_image((image + 1) / 2, tmp_path / folder / f"{i:03d}.png")
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "generated"), input2=str(tmp_path / "real"), cuda=False, isc=True, fid=True,
        kid=True, prc=True, feature_extractor="inception-v3-compat", feature_layer_prc="2048",
        feature_extractor_weights_path=str(weights_file),
        kid_subsets=SMALL["kid_subsets"], kid_subset_size=SMALL["kid_subset_size"], isc_splits=SMALL["is_splits"],
        batch_size=feats.batch_size("cpu"),
        save_cpu_ram=True, cache=False, verbose=False)
    ours = evaluated["values"]["other"]
    pairs = {"inception.fid": "frechet_inception_distance", "inception.kid": "kernel_inception_distance_mean",
             "inception.kid_std": "kernel_inception_distance_std", "inception.is": "inception_score_mean",
             "inception.is_std": "inception_score_std", "inception.precision": "precision",
             "inception.recall": "recall"}
    for key, name in pairs.items():
        assert ours[key] == pytest.approx(theirs[name], rel=1e-6, abs=1e-9), (key, ours[key], theirs[name])
    assert ours["inception.fid"] > 0 and ours["inception.is"] > 1.0


@pytest.mark.slow
def test_protocol_params_are_recorded(evaluated, weights_file) -> None:
    import hashlib

    params = evaluated["params"]
    assert params["inception.samples"] == N and params["inception.reference"] == "train"
    assert params["inception.reference_samples"] == N and params["inception.resize"] == feats.RESIZE
    assert params["inception.weights"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()[:16]
    assert params["inception.kid"].endswith("5 subsets of 5") and params["inception.pr_k"] == 3
    assert params["inception.is_splits"] == 2


@pytest.mark.slow
def test_the_reference_is_read_from_the_disk_cache_by_a_new_metric(evaluated, with_weights) -> None:
    reference = evaluated["reference"]
    first = evaluated["metric"].reference(eval_context(reference, None))
    mtime, computed = first.path.stat().st_mtime_ns, refs.COMPUTED
    again = InceptionMetrics(**SMALL).reference(eval_context(reference, None))  # nothing in memory
    assert refs.COMPUTED == computed and first.path.stat().st_mtime_ns == mtime
    assert again.path == first.path and torch.equal(again.features, first.features)
    assert np.array_equal(again.sigma, first.sigma) and again.sigma.dtype == np.float64
    # other images or another weights file are another reference
    changed = TensorData(x=reference.x.flip(0))
    options = config().options_of("dataset")
    rows = torch.arange(N)
    images = refs.real_images(reference, "train")
    other_images = refs.real_images(changed, "train")
    cache = Path(os.environ["GANLAB_CACHE"])
    base = refs.cache_path(cache, "d", options, images, rows, "a" * 64, 2)
    assert base == refs.cache_path(cache, "d", options, refs.real_images(reference, "train"), rows, "a" * 64, 2)
    assert base != refs.cache_path(cache, "d", options, other_images, rows, "a" * 64, 2)
    assert base != refs.cache_path(cache, "d", options, images, rows, "b" * 64, 2)
    assert base != refs.cache_path(cache, "d", {**options, "size": 16}, images, rows, "a" * 64, 2)


# ---- through the CLI ----------------------------------------------------------------
def runs_of(workdir: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    return [run for e in client.search_experiments() for run in client.search_runs([e.experiment_id])]


DIGITS_RUN = ["run", "--arch", "mlp", "--dataset", "digits", *TINY, "--set", "dataset.size=8", "--device", "cpu",
              "--set", "arch.hidden_scale=0.05"]


@pytest.mark.slow
def test_naming_the_metric_without_weights_is_refused_before_any_run(workdir: Path, tmp_path: Path) -> None:
    done = run_in_process([*DIGITS_RUN, "--set", "metrics=inception"], workdir, env={"TORCH_HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ganlab: error: metric 'inception' cannot run: no Inception-v3 weights")
    assert weights.ENV in line and weights.FILE_NAME in line
    assert runs_of(workdir) == []


@pytest.mark.slow
def test_a_weights_file_of_the_wrong_shape_is_refused_before_any_run(workdir: Path, weights_file: Path) -> None:
    state = torch.load(weights_file, weights_only=True)
    torch.save(dict(state, **{"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 1, 3, 3)}), workdir / "bad.pth")
    done = run_in_process([*DIGITS_RUN, "--set", "metrics=inception"], workdir,
                          env={weights.ENV: str(workdir / "bad.pth")})
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "bad.pth" in line and "'Conv2d_1a_3x3.conv.weight' has shape [32, 1, 3, 3]" in line
    assert runs_of(workdir) == []


@pytest.mark.slow
def test_an_auto_run_without_weights_says_so_once_and_finishes(workdir: Path, tmp_path: Path) -> None:
    done = run_in_process([*DIGITS_RUN, "--set", "metric.inception.auto_on_cpu=true"], workdir,
                          env={"TORCH_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "inception" in line]
    assert len(notes) == 1 and notes[0].startswith("ganlab: note: inception metrics off: no Inception-v3 weights")
    (run,) = runs_of(workdir)
    assert run.info.status == "FINISHED" and "images.fld" in run.data.metrics
    assert not any(key.startswith("inception.") for key in run.data.metrics)

    # a population's replicas each decide, about the same data: still one line
    done = run_in_process([*DIGITS_RUN, "--seeds", "0-2", "--experiment", "population"], workdir,
                          env={"TORCH_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "inception" in line]
    assert len(notes) == 1 and notes[0].startswith("ganlab: note: inception metrics off: the run is on the CPU")


@pytest.mark.slow
def test_a_digits_run_logs_inception_metrics_and_their_protocol(workdir: Path, weights_file: Path) -> None:
    done = run_in_process([*DIGITS_RUN, "--set", "metrics=inception", "--set", f"metric.inception.samples={N}",
                           "--set", "metric.inception.kid_subsets=3", "--set", "metric.inception.kid_subset_size=4",
                           "--set", "metric.inception.is_splits=2"],
                          workdir, env={weights.ENV: str(weights_file)})
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("ganlab: ") for line in done.stderr.splitlines()), done.stderr  # no library chatter
    (run,) = runs_of(workdir)
    assert run.info.status == "FINISHED"
    for key in ("fid", "kid", "kid_std", "is", "is_std", "is_real", "precision", "recall"):
        assert math.isfinite(run.data.metrics[f"inception.{key}"]), key
    assert run.data.metrics["inception.fid"] > 0
    params = run.data.params
    assert params["inception.samples"] == str(N) and params["inception.reference_samples"] == str(N)
    assert params["inception.reference"] == "train" and params["inception.resize"] == feats.RESIZE
    assert params["inception.weights"] == weights.checked(weights_file, "test").digest
    assert str(weights_file) not in " ".join(params.values())  # the hash, never the path
