"""Text datasets: token ids (N, L) int64 with a vocabulary (see :class:`ganlab.data.TensorData`).

* :class:`Oracle`: SeqGAN's synthetic benchmark (Yu et al. 2017). A randomly
  initialised LSTM language model, :class:`OracleLSTM`, with every parameter
  drawn from N(0, 1) by a seeded generator, samples the training and held-out
  sequences; since the oracle is known exactly, the oracle negative
  log-likelihood of generated text (NLL_oracle, :meth:`OracleLSTM.nll`) is an
  exact quality measure. :func:`oracle_from_options` rebuilds the identical
  oracle from the dataset's options, for a metric.
* :class:`Fortunes`: a real, offline, character-level corpus: the lines of the
  quotations in Debian's ``fortunes`` files (the class docstring is its data card).

Token conventions shared by the text datasets: when ``vocab[PAD]`` is the pad
token ``"<pad>"`` id 0 is padding (decoded as nothing), and when
``vocab[UNK]`` is ``"<unk>"`` id 1 stands for a character outside the
vocabulary (decoded as ``"¿"``), the core's conventions (:mod:`ganlab.text`, whose
:func:`~ganlab.text.decode` turns ids back into text).

Over 400 lines on purpose: the text datasets share their tokens, padding and the oracle's memory
check.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab.data import DataRequest, TensorData
from ganlab.errors import GanlabError
from ganlab.text import PAD_TOKEN, UNK_GLYPH, UNK_TOKEN, decode  # noqa: F401 - the text conventions, re-exported
from ganlab.train.memory import check_fits

#: id of the pad token (right padding of lines shorter than seq_len)
PAD = 0
#: id of the unknown token (characters seen fewer than min_count times in the training split)
UNK = 1


# ---------------------------------------------------------------------------------------------
# The oracle


#: the oracle works on row chunks of at most this many logits (rows x vocabulary) at a time
CHUNK_ELEMENTS = 1 << 22
#: bytes per logit element held at once while sampling or scoring: float64 logits, probabilities,
#: cumulative sums (or log-probabilities) and one temporary
_BYTES_PER_LOGIT = 4 * 8


def chunk_rows(vocab_size: int, n: int) -> int:
    """How many sequences the oracle advances together (bounded so a chunk holds ~4M logits)."""
    return max(1, min(max(n, 1), CHUNK_ELEMENTS // max(vocab_size, 1)))


def oracle_parameter_count(vocab_size: int, embedding: int, hidden: int) -> int:
    v, e, h = vocab_size, embedding, hidden
    return v * e + e + 4 * h * (e + h) + 4 * h + v * h + v


def check_oracle_memory(vocab_size: int, embedding: int, hidden: int, samples: int = 0, seq_len: int = 0,
                        batch_size: int = 0) -> None:
    """Refuse (``ganlab.train.memory.check_fits``), before allocating anything, an oracle that cannot fit:
    its float64 weights, sampling ``samples`` sequences of ``seq_len`` and, with ``batch_size``, the
    training batches, each expanded to one-hot vectors (batch x seq_len x vocab float32), of which a step
    holds at least three (the real batch, the fakes, the fakes' gradient). The refusal comes before
    minutes of sampling."""
    need = (8 * oracle_parameter_count(vocab_size, embedding, hidden)
            + chunk_rows(vocab_size, samples) * (vocab_size * _BYTES_PER_LOGIT + 8 * 8 * hidden + 8 * embedding)
            + samples * seq_len * (8 + 8)  # int64 ids and the float64 uniforms drawn up front
            + 3 * 4 * batch_size * seq_len * vocab_size)
    batches = f" and one-hot batches of {batch_size} x {seq_len} x {vocab_size:,}" if batch_size else ""
    check_fits(need, f"oracle: vocab_size {vocab_size:,} (embedding {embedding}, hidden {hidden}, {samples:,} "
               f"sequences of {seq_len}){batches}",
               "lower dataset.vocab_size (or batch_size, samples, hidden, embedding)")


class OracleLSTM(nn.Module):
    """SeqGAN's oracle: an LSTM language model whose parameters are all drawn from N(0, 1).

    Parameters, drawn in this order from one ``torch.Generator`` as float64:
    ``embedding`` (V, E), ``start`` (E,) (the input at the first position),
    ``w_ih`` (4H, E), ``w_hh`` (4H, H), ``b`` (4H,), ``w_out`` (V, H), ``b_out`` (V,).
    The gates are stacked in torch's order (input, forget, cell, output):
    ``i, f, g, o = chunk(x @ w_ih.T + h @ w_hh.T + b, 4)``;
    ``c' = σ(f)·c + σ(i)·tanh(g)``, ``h' = σ(o)·tanh(c')``, logits ``h' @ w_out.T + b_out``.
    The state starts at zero; position t reads the embedding of token t-1
    (``start`` at t = 0) and predicts token t. Nothing is trained; nothing
    needs gradients.
    """

    def __init__(self, vocab_size: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.vocab_size, self.embedding_dim, self.hidden = vocab_size, embedding, hidden
        shapes = self.parameter_shapes(vocab_size, embedding, hidden)
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, dtype=torch.float64), requires_grad=False))

    @staticmethod
    def parameter_shapes(vocab_size: int, embedding: int, hidden: int) -> dict[str, tuple[int, ...]]:
        """Name -> shape, in the order the parameters are drawn."""
        v, e, h = vocab_size, embedding, hidden
        return {"embedding": (v, e), "start": (e,), "w_ih": (4 * h, e), "w_hh": (4 * h, h), "b": (4 * h,),
                "w_out": (v, h), "b_out": (v,)}

    @classmethod
    def create(cls, vocab_size: int, embedding: int, hidden: int, seed: int) -> OracleLSTM:
        """The oracle of ``seed``: the same arguments always give the same parameters."""
        return cls.from_generator(vocab_size, embedding, hidden, torch.Generator(device="cpu").manual_seed(seed))

    @classmethod
    def from_generator(cls, vocab_size: int, embedding: int, hidden: int, generator: torch.Generator) -> OracleLSTM:
        """An oracle whose parameters are the next N(0, 1) draws of ``generator`` (in the documented order)."""
        if vocab_size < 2 or embedding < 1 or hidden < 1:
            raise GanlabError(f"oracle: vocab_size must be >= 2 and embedding, hidden >= 1 "
                              f"(got {vocab_size}, {embedding}, {hidden})")
        check_oracle_memory(vocab_size, embedding, hidden)
        oracle = cls(vocab_size, embedding, hidden)
        with torch.no_grad():
            for _, param in oracle.named_parameters():  # registration order = parameter_shapes order
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64))
        return oracle

    def _step(self, x: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One LSTM step on inputs ``x`` (R, E): (logits (R, V), h, c)."""
        gates = torch.addmm(self.b, x, self.w_ih.T) + h @ self.w_hh.T
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return torch.addmm(self.b_out, h, self.w_out.T), h, c

    def _initial(self, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dtype, device = self.w_hh.dtype, self.w_hh.device
        h = torch.zeros(rows, self.hidden, dtype=dtype, device=device)
        return self.start.expand(rows, -1), h, h.clone()

    @torch.no_grad()
    def sample(self, n: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` sequences (n, seq_len) int64 drawn token by token from the oracle (on CPU).

        Inverse-CDF sampling: the uniforms for all n x seq_len draws are taken
        from ``generator`` first, row-major, so the result depends on the
        generator's state only, not on how the rows are chunked.
        """
        if seq_len < 1:
            raise GanlabError(f"oracle: seq_len must be at least 1 (got {seq_len})")
        device = self.w_out.device
        uniforms = torch.rand(n, seq_len, generator=generator, dtype=torch.float64).to(device)
        out = torch.empty(n, seq_len, dtype=torch.int64, device=device)

        def draw(logits: torch.Tensor, lo: int, hi: int, t: int) -> torch.Tensor:
            # unnormalised CDF: exp(logits - max) summed along the vocabulary; the target scales with its total
            cdf = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_().cumsum_(dim=1)
            target = uniforms[lo:hi, t : t + 1] * cdf[:, -1:]
            out[lo:hi, t] = torch.searchsorted(cdf, target, right=True).clamp_(max=self.vocab_size - 1).squeeze(1)
            return out[lo:hi, t]

        self._unroll(n, seq_len, draw)
        return out

    def _unroll(self, n: int, seq_len: int,
                next_token: Callable[[torch.Tensor, int, int, int], torch.Tensor]) -> None:
        """Run the oracle over n sequences in chunks of rows; ``next_token(logits, lo, hi, t)`` gives the
        tokens of rows lo..hi at position t (drawn or read), which are fed to the next position."""
        rows = chunk_rows(self.vocab_size, n)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            x, h, c = self._initial(hi - lo)
            for t in range(seq_len):
                logits, h, c = self._step(x, h, c)
                x = self.embedding[next_token(logits, lo, hi, t)]

    @torch.no_grad()
    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per sequence, the mean over positions of -log p_oracle(x_t | x_<t), in nats: (n,) float64."""
        if tokens.dim() != 2 or tokens.shape[1] < 1:
            raise GanlabError(f"oracle nll: expects token ids of shape (n, L) with L >= 1, got {tuple(tokens.shape)}")
        tokens = tokens.to(self.w_out.device, torch.int64)
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise GanlabError(f"oracle nll: token ids must lie in [0, {self.vocab_size}) "
                              f"(got {int(tokens.min())}..{int(tokens.max())})")
        n, seq_len = tokens.shape
        total = torch.zeros(n, dtype=torch.float64, device=tokens.device)

        def score(logits: torch.Tensor, lo: int, hi: int, t: int) -> torch.Tensor:
            token = tokens[lo:hi, t]
            total[lo:hi] -= torch.log_softmax(logits.double(), dim=1).gather(1, token.unsqueeze(1)).squeeze(1)
            return token

        self._unroll(n, seq_len, score)
        return total / seq_len


def _check_positive(what: str, **values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise GanlabError(f"{what}: {name} must be at least 1 (got {value}); pass --set dataset.{name}=N")


class Oracle:
    """SeqGAN's synthetic oracle data: sequences sampled from a fixed random LSTM (:class:`OracleLSTM`).

    One generator seeded ``oracle_seed`` draws the oracle's parameters, then
    the ``samples`` training sequences, then the ``test_samples`` held-out
    ones: the same options give the same tensors on every machine (the oracle
    runs on CPU in float64). Tokens are named ``t0 .. t{V-1}`` and joined by spaces.
    """

    cacheable = True
    labelled = False

    def __init__(self, vocab_size: int = 5000, seq_len: int = 20, samples: int = 10_000, test_samples: int = 2000,
                 hidden: int = 32, embedding: int = 32, oracle_seed: int = 0) -> None:
        _check_positive("oracle", seq_len=seq_len, samples=samples, hidden=hidden, embedding=embedding)
        if vocab_size < 2:
            raise GanlabError(f"oracle: vocab_size must be at least 2 (got {vocab_size}); "
                              f"pass --set dataset.vocab_size=N")
        if test_samples < 0:
            raise GanlabError(f"oracle: test_samples must be >= 0 (got {test_samples})")
        self.vocab_size, self.seq_len, self.samples, self.test_samples = vocab_size, seq_len, samples, test_samples
        self.hidden, self.embedding, self.oracle_seed = hidden, embedding, oracle_seed

    def options(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len, "samples": self.samples,
                "test_samples": self.test_samples, "hidden": self.hidden, "embedding": self.embedding,
                "oracle_seed": self.oracle_seed}

    def oracle(self) -> OracleLSTM:
        """The oracle that generates this dataset (the first draws of the seeded generator)."""
        return OracleLSTM.create(self.vocab_size, self.embedding, self.hidden, self.oracle_seed)

    def load(self, request: DataRequest) -> TensorData:
        n = self.samples + self.test_samples
        check_oracle_memory(self.vocab_size, self.embedding, self.hidden, n, self.seq_len, request.batch_size)
        generator = torch.Generator(device="cpu").manual_seed(self.oracle_seed)
        oracle = OracleLSTM.from_generator(self.vocab_size, self.embedding, self.hidden, generator)
        train = oracle.sample(self.samples, self.seq_len, generator)
        test = oracle.sample(self.test_samples, self.seq_len, generator) if self.test_samples else None
        return TensorData(
            x=train, test_x=test, vocab=[f"t{i}" for i in range(self.vocab_size)], text_joiner=" ",
            source=(f"synthetic: SeqGAN oracle LSTM (vocab {self.vocab_size}, embedding {self.embedding}, "
                    f"hidden {self.hidden}, N(0,1) parameters, oracle_seed {self.oracle_seed}); "
                    f"{self.samples} train + {self.test_samples} held-out sequences of {self.seq_len} tokens"),
        )


def oracle_from_options(options: Mapping[str, Any]) -> OracleLSTM:
    """The oracle of an ``oracle`` dataset with these options (missing ones take their defaults;
    options that do not shape the oracle, such as samples, are ignored)."""
    defaults = Oracle()
    return OracleLSTM.create(int(options.get("vocab_size", defaults.vocab_size)),
                             int(options.get("embedding", defaults.embedding)),
                             int(options.get("hidden", defaults.hidden)),
                             int(options.get("oracle_seed", defaults.oracle_seed)))


# ---------------------------------------------------------------------------------------------
# Fortunes

DEFAULT_FORTUNES = "/usr/share/games/fortunes"
#: lines shorter than this (after cleaning, before truncation) are dropped
MIN_LINE = 4
_INSTALL = "install Debian's fortunes-min (apt-get install fortunes-min) or pass --set dataset.path=FILE_OR_DIR"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def fortune_files(path: Path) -> list[Path]:
    """The fortune text files at ``path``: the file itself, or a directory's regular files (not its
    subdirectories), without ``.dat`` indexes, hidden files, binary files, or links to a file already listed."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    candidates = [p for p in path.iterdir()
                  if p.is_file() and p.suffix != ".dat" and not p.name.startswith(".")]
    seen: set[Path] = set()
    chosen = []
    for p in sorted(candidates, key=lambda p: (p.is_symlink(), p.name)):  # the real file before its links
        real = p.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            with p.open("rb") as handle:
                if b"\0" in handle.read(4096):
                    continue
        except OSError:
            continue
        chosen.append(p)
    return sorted(chosen, key=lambda p: p.name)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_quotations(text: str) -> list[str]:
    """The quotations of a fortune file: the text between lines consisting of a single ``%``."""
    quotations, current = [], []
    for line in text.splitlines():
        if line.rstrip() == "%":
            quotations.append("\n".join(current))
            current = []
        else:
            current.append(line)
    quotations.append("\n".join(current))
    return [q for q in quotations if q.strip()]


def clean_line(line: str) -> str:
    """Backspace overstrikes resolved (``_\\bx`` -> ``x``), other control characters removed, runs of
    tabs collapsed to one space, trailing whitespace stripped."""
    if "\b" in line:
        chars: list[str] = []
        for ch in line:
            if ch == "\b":
                if chars:
                    chars.pop()
            else:
                chars.append(ch)
        line = "".join(chars)
    line = _CONTROL.sub("", line)
    return re.sub(r"\t+", " ", line).rstrip()


def quotation_lines(quotation: str) -> list[str]:
    """The kept lines of one quotation: cleaned, at least MIN_LINE characters (not yet truncated)."""
    return [line for line in map(clean_line, quotation.splitlines()) if len(line) >= MIN_LINE]


def build_vocab(lines: Iterable[str], min_count: int) -> list[str]:
    """``["<pad>", "<unk>", ...]`` then characters seen at least ``min_count`` times, most frequent first
    (ties by codepoint)."""
    counts = Counter(ch for line in lines for ch in line)
    kept = sorted((ch for ch, k in counts.items() if k >= min_count), key=lambda ch: (-counts[ch], ord(ch)))
    return [PAD_TOKEN, UNK_TOKEN, *kept]


def encode(lines: Sequence[str], vocab: Sequence[str], seq_len: int) -> torch.Tensor:
    """Lines as ids (N, seq_len) int64: truncated, right-padded with PAD, unknown characters as UNK."""
    index = {ch: i for i, ch in enumerate(vocab) if i not in (PAD, UNK)}
    rows = [[index.get(ch, UNK) for ch in line[:seq_len]] + [PAD] * (seq_len - len(line[:seq_len]))
            for line in lines]
    return torch.tensor(rows, dtype=torch.int64).reshape(len(lines), seq_len)


class Fortunes:
    """Data card: Debian's ``fortunes`` quotations, one character-level sequence per line.

    What: the quotations ("fortune cookies") of the BSD ``fortune`` program as
    Debian packages them. ``fortunes-min`` installs
    ``/usr/share/games/fortunes/{fortunes,literature,riddles}`` (821
    quotations, 1 925 kept lines, 98 KB); other packages (``fortunes``,
    ``fortunes-de``, ...) add files to the same directory. Offline once the
    package is installed; nothing is downloaded.

    Licence: the files are distributed by Debian under their packages' licences
    (BSD for fortune-mod's own files, with per-file notes) — see
    /usr/share/doc/fortunes-min/copyright (and the copyright file of any other
    fortunes package you read). Check it before redistributing samples or models.

    Format read: the strfile source format, plain text with quotations separated
    by lines consisting of a single ``%``. From a directory, its regular text
    files are read in name order; ``.dat`` indexes (binary), hidden files, and
    links to files already read (Debian's ``.u8`` links) are skipped, and so are
    subdirectories (``fortunes-off`` keeps its rot13-encoded files in ``off/``).
    Files are decoded as UTF-8 (Latin-1 where that fails).

    Preprocessing: every line of every quotation becomes one sequence —
    backspace overstrikes resolved (``_\\bU`` -> ``U``), other control characters
    removed, tab runs collapsed to one space, trailing whitespace stripped,
    lines shorter than 4 characters dropped, then truncated to ``seq_len``
    characters and right-padded with ``<pad>`` (id 0), as Gulrajani et al. (2017)
    prepared 32-character lines of the Billion Word corpus. A deterministic
    shuffle seeded ``split_seed`` holds out ``test_fraction`` of the lines; the
    vocabulary is built on the training lines only: ``<pad>`` (0), ``<unk>`` (1),
    then the characters seen at least ``min_count`` times, most frequent first
    (ties by codepoint); rarer characters, and characters only in the held-out
    lines, become ``<unk>``. Lines are split independently, so lines of one
    quotation, and repeated lines (attributions such as "-- Mark Twain"), can
    fall on both sides of the split. The cache is keyed by options only: after
    changing the files, clear the ganlab dataset cache.

    Known biases and limits: English only; a small corpus (a GAN can memorise
    it); the collection holds dated — sometimes sexist or otherwise offensive —
    humour, US-centric cultural references and old computing jargon, and its
    quotations are attributed to mostly male, Western authors. Lines are
    fragments of multi-line quotations, cut at ``seq_len`` characters, so
    samples are judged as line fragments, not as whole quotations.
    """

    cacheable = True
    labelled = False

    def __init__(self, path: str = DEFAULT_FORTUNES, seq_len: int = 32, min_count: int = 5,
                 test_fraction: float = 0.1, split_seed: int = 0) -> None:
        _check_positive("fortunes", seq_len=seq_len, min_count=min_count)
        if not 0.0 <= test_fraction < 1.0:
            raise GanlabError(f"fortunes: test_fraction must lie in [0, 1) (got {test_fraction}); "
                              f"pass --set dataset.test_fraction=0.1")
        self.path, self.seq_len, self.min_count = str(path), seq_len, min_count
        self.test_fraction, self.split_seed = test_fraction, split_seed

    def _resolve(self, request: DataRequest | None) -> Path:
        """``path``; a relative path that does not exist here is looked for under the run's data root."""
        path = Path(self.path).expanduser()
        if not path.is_absolute() and not path.exists() and request is not None:
            under_root = Path(request.root) / path
            if under_root.exists():
                return under_root
        return path

    def read_lines(self, path: Path) -> tuple[list[Path], list[str]]:
        """(the files read, their kept lines in file and quotation order); GanlabError when there are none."""
        if not path.exists():
            raise GanlabError(f"fortunes: {path} does not exist; {_INSTALL}")
        files = fortune_files(path)
        lines = [line for f in files for quotation in parse_quotations(_read_text(f))
                 for line in quotation_lines(quotation)]
        if not lines:
            raise GanlabError(f"fortunes: no quotation with a line of at least {MIN_LINE} characters in {path}; "
                              f"{_INSTALL}")
        return files, lines

    def split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, held-out) line indices, each in corpus order: a shuffle seeded split_seed."""
        n_test = int(round(n * self.test_fraction))
        if self.test_fraction > 0 and n >= 2:
            n_test = max(1, n_test)
        n_test = min(n_test, n - 1)
        perm = torch.randperm(n, generator=torch.Generator(device="cpu").manual_seed(self.split_seed))
        return perm[n_test:].sort().values, perm[:n_test].sort().values

    def load(self, request: DataRequest | None = None) -> TensorData:
        path = self._resolve(request)
        files, lines = self.read_lines(path)
        train_idx, test_idx = self.split(len(lines))
        train = [lines[i][: self.seq_len] for i in train_idx.tolist()]
        test = [lines[i][: self.seq_len] for i in test_idx.tolist()]
        vocab = build_vocab(train, self.min_count)
        names = [str(f) for f in files]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        return TensorData(
            x=encode(train, vocab, self.seq_len),
            test_x=encode(test, vocab, self.seq_len) if test else None,
            vocab=vocab, text_joiner="",
            source=f"Debian fortunes: {shown} ({len(lines)} lines)",
        )
