"""Text GANs end to end: tiny runs through the real CLI, recorded in a real MLflow store.

One run per output mapping of G (softmax, sparsemax, entmax, gumbel) on the oracle, a
WGAN-GP run of the convolutional pair on a fortune file the test writes in the real
format, the ``text`` metric against values computed here from the same tensors, and
``ganlab sample`` printing decoded text.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import run_in_process

from ganlab.text import decode, decode_samples

V, L = 24, 8
ORACLE = ["--dataset", "oracle", "--set", f"dataset.vocab_size={V}", "--set", f"dataset.seq_len={L}",
          "--set", "dataset.samples=256", "--set", "dataset.test_samples=64"]
TINY = ["--steps", "6", "--batch-size", "16", "--latent-dim", "8", "--eval-every", "3", "--sample-every", "3",
        "--device", "cpu", "--set", "metric.text.samples=64", "--set", "metric.text.references=64",
        "--set", "metric.text.self_bleu_samples=16"]


def finished_run(cwd: Path) -> tuple[object, object]:
    """The store's only run, asserted FINISHED, and its client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    assert runs[0].info.status == "FINISHED"
    return runs[0], client


def artifact_dir(run: object) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


# each output mapping of G, each with another head of D in the non-saturating game
@pytest.mark.slow
@pytest.mark.parametrize(("output", "head"), [("softmax", "sigmoid"), ("sparsemax", "sparsemax"),
                                              ("entmax", "entmax"), ("gumbel", "softmax")])
def test_each_output_mapping_trains_and_is_recorded(tmp_path: Path, output: str, head: str) -> None:
    done = run_in_process(["run", *ORACLE, *TINY, "--arch", "lstm", "--set", "arch.hidden=16", "--head", head,
                           "--set", "arch.embedding=8", "--set", f"arch.output={output}"], tmp_path)
    assert done.returncode == 0, done.stderr
    run, _ = finished_run(tmp_path)
    metrics = run.data.metrics
    # what the mapping can emit: softmax never an exact one-hot (V non-zeros), gumbel always one
    if output == "softmax":
        assert metrics["text.one_hot_fraction"] == 0.0 and metrics["text.nonzeros"] == pytest.approx(V)
    elif output == "gumbel":
        assert metrics["text.one_hot_fraction"] == 1.0 and metrics["text.nonzeros"] == 1.0
    else:
        assert 1.0 <= metrics["text.nonzeros"] < V  # sparse: some entries exactly zero
    for key in ("text.jsd_1", "text.jsd_4", "text.bleu4", "text.self_bleu4", "text.nll_oracle"):
        assert key in metrics
    assert 0.0 <= metrics["text.jsd_2"] <= 0.6932
    params = run.data.params
    assert params["arch.output"] == output and params["head.name"] == head and params["loss.name"] == "nonsaturating"
    assert float(params["text.nll_oracle_heldout"]) < metrics["text.nll_oracle"] + 5  # both on the oracle's scale
    # samples as text artifacts, one file per sample step, one decoded line per sample
    root = artifact_dir(run)
    files = sorted((root / "samples").glob("step_*.txt"))
    assert [f.name for f in files] == ["step_0000003.txt", "step_0000006.txt"]
    lines = files[-1].read_text().splitlines()
    assert len(lines) >= 16 and all(len(line.split(" ")) == L for line in lines)
    assert all(token.startswith("t") for token in lines[0].split(" "))
    real = (root / "data_card" / "real_samples.txt").read_text().splitlines()
    assert len(real) == 64
    vocab = json.loads((root / "vocab.json").read_text())
    assert vocab == {"vocab": [f"t{i}" for i in range(V)], "joiner": " "}


@pytest.mark.slow
def test_sample_prints_decoded_text_and_writes_txt(tmp_path: Path) -> None:
    done = run_in_process(["run", *ORACLE, *TINY, "--arch", "lstm", "--set", "arch.hidden=16",
                           "--set", "arch.output=sparsemax"], tmp_path)
    assert done.returncode == 0, done.stderr
    run, _ = finished_run(tmp_path)
    printed = run_in_process(["sample", run.info.run_id, "--n", "20"], tmp_path)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == 20
    assert all(len(line.split(" ")) == L and all(t.startswith("t") for t in line.split(" ")) for line in lines)
    # the same seed gives the same text in a file; .npy keeps the distributions that decode to it
    written = run_in_process(["sample", run.info.run_id, "--n", "20", "--out", "s.txt"], tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "s.txt").read_text().splitlines() == lines
    assert run_in_process(["sample", run.info.run_id, "--n", "20", "--out", "s.npy"], tmp_path).returncode == 0
    import numpy as np

    probs = torch.from_numpy(np.load(tmp_path / "s.npy"))
    assert probs.shape == (20, L, V)
    assert decode_samples(probs, [f"t{i}" for i in range(V)], " ") == lines
    picture = run_in_process(["sample", run.info.run_id, "--out", "s.png"], tmp_path)
    assert picture.returncode == 2 and "generates text" in picture.stderr
    assert not (tmp_path / "s.png").exists()


def write_fortunes(path: Path) -> None:
    quotes = ["The early bird catches the worm,\nbut the second mouse gets the cheese.",
              "A journey of a thousand miles begins with a single step.",
              "Simplicity is the ultimate sophistication.\n\t\t-- Leonardo da Vinci",
              "To be or not to be, that is the question."] * 6
    path.write_text("\n%\n".join(quotes) + "\n%\n")


@pytest.mark.slow
def test_wgan_gp_on_a_fortune_file_with_the_conv_pair(tmp_path: Path) -> None:
    corpus = tmp_path / "quotes"
    write_fortunes(corpus)
    done = run_in_process(["run", "--dataset", "fortunes", "--set", f"dataset.path={corpus}", "--set", "dataset.seq_len=16",
                           "--set", "dataset.min_count=1", "--arch", "conv", "--set", "arch.dim=16",
                           "--set", "arch.blocks=1", "--set", "arch.output=entmax", "--loss", "wasserstein",
                           "--set", "reg=gp", *TINY], tmp_path)
    assert done.returncode == 0, done.stderr
    run, client = finished_run(tmp_path)
    assert run.data.params["reg"] == "gp"
    gp = client.get_metric_history(run.info.run_id, "loss.d.gp")
    assert gp and all(torch.isfinite(torch.tensor(m.value)) for m in gp)
    assert "text.nll_oracle" not in run.data.metrics  # only the oracle has an exact likelihood
    assert "text.bleu4" in run.data.metrics and "text.floor.bleu4" in run.data.params
    real = (artifact_dir(run) / "data_card" / "real_samples.txt").read_text().splitlines()
    def words(text: str) -> str:  # tabs become spaces in the corpus's lines; compare the words
        return " ".join(text.split())

    corpus_lines = [words(line) for line in corpus.read_text().splitlines() if len(line.strip()) >= 4]
    assert len(real) >= 20 and all(any(c.startswith(words(line)) for c in corpus_lines) for line in real)
    assert all(len(line) <= 16 for line in real)


# ---- the metric on known inputs ------------------------------------------------------------
def oracle_context(samples: torch.Tensor, data: object, options: dict) -> SimpleNamespace:
    return SimpleNamespace(data=data, generate=lambda n: samples[:n], seed=0, params={}, dataset_name="oracle",
                           config=SimpleNamespace(options_of=lambda section: options))


def test_text_metric_on_real_sequences_matches_its_definitions() -> None:
    from ganlab_plugins.datasets.text import Oracle, oracle_from_options
    from ganlab_plugins.metrics import text_stats
    from ganlab_plugins.metrics.text import TextMetrics

    options = {"vocab_size": 30, "seq_len": 6, "samples": 300, "test_samples": 100}
    data = Oracle(**options).load(SimpleNamespace(batch_size=0))
    generated = data.expand(data.x[:200])  # the data itself, as exact one-hots
    metric = TextMetrics(samples=200, references=100, self_bleu_samples=50)
    ctx = oracle_context(generated, data, options)
    out = metric.evaluate(ctx)
    assert out["text.one_hot_fraction"] == 1.0 and out["text.nonzeros"] == 1.0
    assert out["text.jsd_1"] == pytest.approx(text_stats.ngram_jsd(data.x[:200], data.test_x, 1))
    assert out["text.bleu4"] == pytest.approx(text_stats.corpus_bleu(data.x[:200], data.test_x, 4))
    oracle = oracle_from_options(options)
    assert out["text.nll_oracle"] == pytest.approx(float(oracle.nll(data.x[:200]).mean()))
    assert float(ctx.params["text.nll_oracle_heldout"]) == pytest.approx(float(oracle.nll(data.test_x).mean()), abs=1e-5)
    # uniform random tokens read far worse to the oracle than its own samples
    noise = torch.nn.functional.one_hot(torch.randint(30, (200, 6), generator=torch.Generator().manual_seed(3)), 30)
    worse = TextMetrics(samples=200, references=100, self_bleu_samples=50).evaluate(
        oracle_context(noise.float(), data, options))
    assert worse["text.nll_oracle"] > out["text.nll_oracle"] + 1.0
    assert worse["text.jsd_2"] > out["text.jsd_2"]


def test_decode_drops_pads_and_marks_unknown_tokens() -> None:
    vocab = ["<pad>", "<unk>", "a", "b", " "]
    assert decode([2, 4, 3, 1, 0, 0], vocab) == "a b¿"
    probs = torch.zeros(1, 3, 5)
    probs[0, 0, 2] = probs[0, 1, 3] = probs[0, 2, 0] = 1.0
    assert decode_samples(probs, vocab) == ["ab"]
