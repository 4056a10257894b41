"""The text datasets: SeqGAN's oracle LSTM and Debian's fortunes, read from files written here.

Nothing downloads and nothing needs /usr/share/games/fortunes: the fortune
tests write small files in the strfile source format (quotations separated by
lines holding a single "%") into tmp_path and load them through the real code.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from ganlab.data import DataRequest
from ganlab.errors import GanlabError
from ganlab_plugins.datasets import text
from ganlab_plugins.datasets.text import PAD, UNK, Fortunes, Oracle, OracleLSTM, decode, oracle_from_options

REQUEST = DataRequest(root=Path("data"))
SMALL = {"vocab_size": 300, "seq_len": 12, "samples": 200, "test_samples": 50, "hidden": 16, "embedding": 8}


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------- oracle


def test_oracle_parameters_come_from_the_seed_alone_and_are_standard_normal() -> None:
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    a = OracleLSTM.create(5000, 32, 32, seed=3)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is neither used nor advanced
    torch.manual_seed(456)
    b = OracleLSTM.create(5000, 32, 32, seed=3)
    c = OracleLSTM.create(5000, 32, 32, seed=4)
    names = ["embedding", "start", "w_ih", "w_hh", "b", "w_out", "b_out"]
    assert [name for name, _ in a.named_parameters()] == names
    assert {name: tuple(p.shape) for name, p in a.named_parameters()} == {
        "embedding": (5000, 32), "start": (32,), "w_ih": (128, 32), "w_hh": (128, 32), "b": (128,),
        "w_out": (5000, 32), "b_out": (5000,)}
    for name in names:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert not torch.equal(getattr(a, name), getattr(c, name)), name
        assert not getattr(a, name).requires_grad
    # every parameter N(0, 1), biases included (torch's default init would give std ~0.18 for w_hh)
    for name in ("embedding", "w_out", "w_hh"):
        p = getattr(a, name)
        assert abs(float(p.mean())) < 0.05 and abs(float(p.std()) - 1.0) < 0.05, name
    assert 0.7 < float(torch.cat([a.b, a.b_out]).std()) < 1.3
    # the draw is generator.randn in the documented order: rebuild it by hand
    g = torch.Generator().manual_seed(3)
    for name in names:
        expected = torch.randn(getattr(a, name).shape, generator=g, dtype=torch.float64)
        assert torch.equal(getattr(a, name), expected), name


def test_oracle_sampling_is_deterministic_given_the_generator_and_independent_of_chunking(monkeypatch) -> None:
    oracle = OracleLSTM.create(200, 8, 16, seed=0)
    first = oracle.sample(64, 10, torch.Generator().manual_seed(7))
    again = oracle.sample(64, 10, torch.Generator().manual_seed(7))
    other = oracle.sample(64, 10, torch.Generator().manual_seed(8))
    assert first.dtype == torch.int64 and first.shape == (64, 10)
    assert int(first.min()) >= 0 and int(first.max()) < 200
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    monkeypatch.setattr(text, "CHUNK_ELEMENTS", 200 * 5)  # 5 rows at a time instead of all 64
    assert text.chunk_rows(200, 64) == 5
    assert torch.equal(oracle.sample(64, 10, torch.Generator().manual_seed(7)), first)
    assert torch.allclose(oracle.nll(first), OracleLSTM.create(200, 8, 16, seed=0).nll(first), rtol=0, atol=1e-12)


def test_oracle_dataset_is_deterministic_with_shapes_ranges_and_vocab() -> None:
    data = Oracle(**SMALL, oracle_seed=5).load(REQUEST)
    again = Oracle(**SMALL, oracle_seed=5).load(REQUEST)
    other = Oracle(**SMALL, oracle_seed=6).load(REQUEST)
    assert data.x.shape == (200, 12) and data.test_x.shape == (50, 12)
    assert data.x.dtype == data.test_x.dtype == torch.int64
    assert data.shape == (12, 300) and data.is_text and len(data) == 200
    for t in (data.x, data.test_x):
        assert int(t.min()) >= 0 and int(t.max()) < 300
    assert torch.equal(data.x, again.x) and torch.equal(data.test_x, again.test_x)
    assert not torch.equal(data.x, other.x)
    assert data.vocab == [f"t{i}" for i in range(300)] and data.text_joiner == " "
    assert "oracle" in data.source and "oracle_seed 5" in data.source
    # held-out sequences are further draws, not copies of the training ones
    assert not torch.equal(data.test_x, data.x[:50])
    assert len(data.x.unique(dim=0)) > 190
    # more training samples leave the first ones unchanged (one stream: parameters, train, then test)
    bigger = Oracle(**{**SMALL, "samples": 260}, oracle_seed=5).load(REQUEST)
    assert torch.equal(bigger.x[:200], data.x)
    # no test split asked for: none given
    assert Oracle(**{**SMALL, "test_samples": 0}).load(REQUEST).test_x is None
    # the oracle's vocabulary has no pad token: decode keeps t0
    assert decode(torch.tensor([0, 5, 0]), data.vocab, data.text_joiner) == "t0 t5 t0"


def test_oracle_from_options_rebuilds_the_oracle_that_generated_the_data() -> None:
    options = {**SMALL, "oracle_seed": 9}
    data = Oracle(**options).load(REQUEST)
    oracle = oracle_from_options(options)
    assert all(torch.equal(p, q) for p, q in zip(oracle.parameters(), Oracle(**options).oracle().parameters()))
    other = oracle_from_options({**options, "oracle_seed": 10})
    train, test = float(oracle.nll(data.x).mean()), float(oracle.nll(data.test_x).mean())
    # train and held-out come from the same distribution; a different oracle finds the data far less likely
    assert abs(train - test) < 0.3
    assert float(other.nll(data.x).mean()) > train + 1.0
    # defaults fill missing options; options that do not shape the oracle are ignored
    small = oracle_from_options({"vocab_size": 40, "hidden": 4, "embedding": 3, "samples": 1})
    assert small.w_out.shape == (40, 4) and torch.equal(small.start, OracleLSTM.create(40, 3, 4, 0).start)


@pytest.mark.slow
def test_oracle_nll_of_its_own_samples_beats_uniform_tokens_by_a_margin() -> None:
    oracle = OracleLSTM.create(5000, 32, 32, seed=0)  # SeqGAN's sizes
    samples = oracle.sample(500, 20, torch.Generator().manual_seed(1))
    uniform = torch.randint(5000, (500, 20), generator=torch.Generator().manual_seed(2))
    own, random = float(oracle.nll(samples).mean()), float(oracle.nll(uniform).mean())
    # measured: own 5.974, uniform 11.204 nats, margin 5.23 (margins 5.00 .. 5.42 for oracle seeds 0..4)
    assert own < math.log(5000) - 2.0
    assert random - own > 4.0


def _reference_nll(oracle: OracleLSTM, tokens: torch.Tensor) -> list[float]:
    """Step by step, one sequence at a time, in float64, from the documented equations."""
    p = {name: param.detach().double() for name, param in oracle.named_parameters()}
    hidden = p["w_hh"].shape[1]
    sig = torch.sigmoid
    out = []
    for row in tokens.tolist():
        h = torch.zeros(hidden, dtype=torch.float64)
        c = torch.zeros(hidden, dtype=torch.float64)
        x = p["start"]
        total = 0.0
        for token in row:
            gates = p["w_ih"] @ x + p["w_hh"] @ h + p["b"]
            i, f, g, o = (gates[k * hidden:(k + 1) * hidden] for k in range(4))
            c = sig(f) * c + sig(i) * torch.tanh(g)
            h = sig(o) * torch.tanh(c)
            logits = (p["w_out"] @ h + p["b_out"]).tolist()
            top = max(logits)
            log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
            total -= logits[token] - log_norm
            x = p["embedding"][token]
        out.append(total / len(row))
    return out


def test_oracle_nll_agrees_with_a_step_by_step_float64_computation() -> None:
    oracle = OracleLSTM.create(7, 3, 4, seed=11)
    tokens = torch.cat([oracle.sample(4, 5, torch.Generator().manual_seed(0)),
                        torch.tensor([[0, 6, 6, 0, 3], [1, 2, 3, 4, 5]])])
    got = oracle.nll(tokens)
    assert got.dtype == torch.float64 and got.shape == (6,)
    assert got.tolist() == pytest.approx(_reference_nll(oracle, tokens), rel=1e-10, abs=1e-10)


def test_oracle_probabilities_sum_to_one_and_sampling_follows_them() -> None:
    oracle = OracleLSTM.create(3, 2, 3, seed=1)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 sequences of length 3
    prob = torch.exp(-3 * oracle.nll(every))
    assert float(prob.sum()) == pytest.approx(1.0, abs=1e-12)
    draws = oracle.sample(20_000, 3, torch.Generator().manual_seed(0))
    counts = Counter(map(tuple, draws.tolist()))
    for seq, p in zip(map(tuple, every.tolist()), prob.tolist()):
        assert counts[seq] / 20_000 == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 20_000) + 1e-3), seq


def test_oracle_memory_guard_refuses_before_allocating(monkeypatch) -> None:
    with pytest.raises(GanlabError) as excinfo:
        Oracle(vocab_size=10**11).load(REQUEST)  # ~50 TB of weights: torch.empty would fail otherwise
    message = one_line_error(excinfo)
    assert "vocab_size 100,000,000,000" in message and "available" in message
    with pytest.raises(GanlabError):
        oracle_from_options({"vocab_size": 10**11})

    from ganlab.train import memory

    seen = []
    monkeypatch.setattr(memory, "available", lambda device: seen.append(device) or 1 << 20)  # 1 MiB
    monkeypatch.setattr(OracleLSTM, "__init__", lambda *a, **k: pytest.fail("allocated before the check"))
    with pytest.raises(GanlabError, match=r"vocab_size 5,000 .* but only 1\.0 MiB is available"):
        Oracle().load(REQUEST)  # 5000 x 65 float64 weights = 2.6 MB
    assert seen and seen[0].type == "cpu"
    monkeypatch.undo()
    monkeypatch.setattr(memory, "available", lambda device: None)  # unknown: no check
    assert Oracle(**{**SMALL, "samples": 3, "test_samples": 0}).load(REQUEST).x.shape == (3, 12)


def test_oracle_refuses_bad_sizes_in_one_line() -> None:
    with pytest.raises(GanlabError) as excinfo:
        Oracle(seq_len=0)
    assert "seq_len" in one_line_error(excinfo)
    for bad in ({"vocab_size": 1}, {"samples": 0}, {"test_samples": -1}, {"hidden": 0}):
        with pytest.raises(GanlabError):
            Oracle(**bad)
    oracle = OracleLSTM.create(10, 2, 2, seed=0)
    with pytest.raises(GanlabError, match="seq_len"):
        oracle.sample(3, 0, torch.Generator())
    with pytest.raises(GanlabError, match=r"\[0, 10\)"):
        oracle.nll(torch.tensor([[1, 10]]))


# --------------------------------------------------------------------------------------------- fortunes


def write_fortunes(path: Path, quotations: list[str]) -> Path:
    """A fortune file: quotations separated by lines holding a single '%' (strfile source format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n%\n".join(q.rstrip("\n") for q in quotations) + "\n%\n", encoding="utf-8")
    return path


def lines_of(data, rows) -> list[str]:
    return [decode(row, data.vocab, data.text_joiner) for row in rows]


def test_fortunes_parsing_lines_truncation_padding_and_short_lines(tmp_path) -> None:
    file = write_fortunes(tmp_path / "cookies", [
        "Short one.",
        "First line\twith\t\ttabs   \nab\n\n\t\t-- Somebody\nA line far longer than sixteen characters",
        "100% sure: a percent sign inside a line does not split",
        "It's _\b_\bUNlucky.",
    ])
    data = Fortunes(path=str(file), seq_len=16, min_count=1, test_fraction=0.0).load(REQUEST)
    assert data.test_x is None and data.text_joiner == "" and data.shape == (16, len(data.vocab))
    assert lines_of(data, data.x) == [
        "Short one.",
        "First line with ",  # tabs collapsed, truncated to 16
        " -- Somebody",  # a run of leading tabs is one space; "ab" (< 4 characters) and the blank line dropped
        "A line far longe",
        "100% sure: a per",
        "It's UNlucky.",  # backspace overstrike resolved
    ]
    assert data.x.shape == (6, 16) and data.x.dtype == torch.int64
    # right padding with PAD (0) and nothing else
    assert data.x[0, 10:].tolist() == [PAD] * 6 and (data.x[0, :10] != PAD).all()
    assert (data.x[1] != PAD).all()
    assert f"{file}" in data.source and "(6 lines)" in data.source and data.source.startswith("Debian fortunes: ")


def test_fortunes_vocabulary_comes_from_the_training_split_only(tmp_path) -> None:
    # each line carries its own marker letter (Greek), so the split shows in the vocabulary
    markers = [chr(0x3B1 + i) for i in range(20)]
    write_fortunes(tmp_path / "f", [f"line {m} text\nmore {m} text" for m in markers])
    data = Fortunes(path=str(tmp_path), seq_len=20, min_count=1, test_fraction=0.25, split_seed=3).load(REQUEST)
    assert data.vocab[PAD] == "<pad>" and data.vocab[UNK] == "<unk>"
    train_lines, test_lines = lines_of(data, data.x), lines_of(data, data.test_x)
    assert len(train_lines) == 30 and len(test_lines) == 10
    train_markers = {ch for line in train_lines for ch in line if ch in markers}
    assert train_markers and set(data.vocab) & set(markers) == train_markers
    # a held-out line whose marker never appears in training shows the unknown glyph
    unseen = [line for line in test_lines if "¿" in line]
    assert unseen and all(m not in data.vocab for line in unseen for m in markers if m in line)
    assert (data.test_x == UNK).any() and not (data.x == UNK).any()
    # order: descending training frequency, ties by codepoint
    counts = Counter(ch for line in train_lines for ch in line)
    assert data.vocab[2:] == sorted(counts, key=lambda ch: (-counts[ch], ord(ch)))


def test_fortunes_rare_characters_become_unknown_and_decode_round_trips(tmp_path) -> None:
    write_fortunes(tmp_path / "f", ["aaaa bbbb\ncccc Zxy", "aaaa cccc\nbbbb Zxy", "aaaa bbbb\ncccc bbb"])
    data = Fortunes(path=str(tmp_path / "f"), seq_len=12, min_count=3, test_fraction=0.0).load(REQUEST)
    # Z, x, y occur twice (< min_count 3): unknown. b 15 times, a and c 12 (tie: by codepoint), space 6
    assert data.vocab == ["<pad>", "<unk>", "b", "a", "c", " "]
    lines = lines_of(data, data.x)
    assert lines[1] == "cccc ¿¿¿"
    row = data.x[1]
    assert row[5:8].tolist() == [UNK] * 3 and row[8:].tolist() == [PAD] * 4
    # a line of known characters decodes to itself; pads (trailing or not) are dropped
    assert lines[0] == "aaaa bbbb"
    assert decode(torch.cat([data.x[0], torch.zeros(3, dtype=torch.int64)]), data.vocab) == "aaaa bbbb"
    assert decode([data.vocab.index("a"), PAD, data.vocab.index("b")], data.vocab) == "ab"


def test_fortunes_split_is_deterministic_and_complete(tmp_path) -> None:
    quotations = [f"quotation number {i}\nits second line {i}" for i in range(30)]
    write_fortunes(tmp_path / "f", quotations)
    options = {"path": str(tmp_path), "seq_len": 24, "min_count": 1, "test_fraction": 0.2}
    a = Fortunes(**options, split_seed=0).load(REQUEST)
    b = Fortunes(**options, split_seed=0).load(REQUEST)
    c = Fortunes(**options, split_seed=1).load(REQUEST)
    assert torch.equal(a.x, b.x) and torch.equal(a.test_x, b.test_x) and a.vocab == b.vocab
    assert len(a.test_x) == 12 and len(a.x) == 48
    assert not torch.equal(a.test_x, c.test_x)
    every = sorted(line for q in quotations for line in q.split("\n"))
    assert sorted(lines_of(a, a.x) + lines_of(a, a.test_x)) == every
    assert not set(lines_of(a, a.x)) & set(lines_of(a, a.test_x))


def test_fortunes_missing_or_empty_data_says_how_to_get_it(tmp_path) -> None:
    for path in (tmp_path / "nowhere", tmp_path):  # absent; a directory without quotations
        with pytest.raises(GanlabError) as excinfo:
            Fortunes(path=str(path)).load(REQUEST)
        message = one_line_error(excinfo)
        assert str(path) in message and "fortunes-min" in message and "dataset.path" in message
    (tmp_path / "only").write_text("%\nab\n%\n")  # only a short line
    with pytest.raises(GanlabError, match="fortunes-min"):
        Fortunes(path=str(tmp_path / "only")).load(REQUEST)
    with pytest.raises(GanlabError, match="test_fraction"):
        Fortunes(test_fraction=1.0)
    with pytest.raises(GanlabError, match="seq_len"):
        Fortunes(seq_len=0)


def test_fortunes_directory_skips_dat_indexes_links_and_subdirectories(tmp_path) -> None:
    write_fortunes(tmp_path / "alpha", ["alpha line one", "alpha line two"])
    write_fortunes(tmp_path / "beta", ["beta line"])
    # a .dat without NUL bytes: only its suffix can keep it out
    write_fortunes(tmp_path / "alpha.dat", ["DAT LINE MUST NOT APPEAR"])
    (tmp_path / "alpha.u8").symlink_to("alpha")  # Debian's duplicate link
    write_fortunes(tmp_path / "off" / "rot13", ["Fhoqverpgbel yvar"])
    data = Fortunes(path=str(tmp_path), seq_len=20, min_count=1, test_fraction=0.0).load(REQUEST)
    assert lines_of(data, data.x) == ["alpha line one", "alpha line two", "beta line"]
    assert "D" not in data.vocab and "F" not in data.vocab
    assert "(3 lines)" in data.source and "alpha.u8" not in data.source and "alpha.dat" not in data.source
    # a file path reads that file alone, even a .u8 link
    only = Fortunes(path=str(tmp_path / "alpha.u8"), seq_len=20, min_count=1, test_fraction=0.0).load(REQUEST)
    assert lines_of(only, only.x) == ["alpha line one", "alpha line two"]


def test_fortunes_relative_path_is_found_under_the_data_root(tmp_path, monkeypatch) -> None:
    write_fortunes(tmp_path / "root" / "fortunes" / "mine", ["under the data root"])
    monkeypatch.chdir(tmp_path)
    data = Fortunes(path="fortunes", min_count=1, test_fraction=0.0).load(DataRequest(root=tmp_path / "root"))
    assert lines_of(data, data.x) == ["under the data root"]


@pytest.mark.skipif(not Path(text.DEFAULT_FORTUNES, "fortunes").is_file(), reason="fortunes-min is not installed")
def test_fortunes_reads_the_installed_debian_corpus() -> None:
    data = Fortunes().load(REQUEST)
    assert data.x.shape[1] == 32 and len(data.x) > 1000 and len(data.test_x) > 100
    assert " " in data.vocab[:4] and "e" in data.vocab[:6]
