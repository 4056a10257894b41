"""Token sequences as text: the conventions every text dataset, metric and the CLI share.

A text dataset (``TensorData.vocab`` set) names its tokens in ``vocab``. Two
names are reserved: ``"<pad>"`` fills a sequence after its end and decodes to
nothing; ``"<unk>"`` stands for a token too rare to keep and decodes to ``"¿"``,
visible in a sample but never a real character of the corpus. A vocabulary
without them (the oracle's ``t0 .. t{V-1}``) decodes every id as its name.

Samples, as G emits them, hold one distribution over the vocabulary per
position; they are read as text by their most likely token (``argmax``: exact
for one-hot and sparse outputs; ties go to the lowest id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
UNK_GLYPH = "¿"


def pad_id(vocab: Sequence[str]) -> int | None:
    """The id of the padding token, or None when the vocabulary has none."""
    try:
        return list(vocab).index(PAD_TOKEN)
    except ValueError:
        return None


def decode(ids: Iterable[int] | Any, vocab: Sequence[str], joiner: str = "") -> str:
    """One sequence of token ids as text: pads dropped, the unknown token shown as ``"¿"``."""
    if hasattr(ids, "tolist"):
        ids = ids.reshape(-1).tolist()
    words = []
    for i in ids:
        name = vocab[int(i)]
        if name == PAD_TOKEN:
            continue
        words.append(UNK_GLYPH if name == UNK_TOKEN else name)
    return joiner.join(words)


def decode_samples(samples: Any, vocab: Sequence[str], joiner: str = "") -> list[str]:
    """Samples (N, L, V) of per-position distributions, or token ids (N, L), as N lines of text."""
    ids = samples.argmax(dim=-1) if samples.dim() == 3 else samples
    return [decode(row, vocab, joiner) for row in ids.cpu()]


def as_text_block(lines: Sequence[str]) -> str:
    """Decoded samples as a text file: one per line, control characters made visible."""
    return "".join(line.replace("\n", "\\n").replace("\r", "\\r") + "\n" for line in lines)
