"""The ``text`` metric (torch code); registered in :mod:`ganlab_plugins.metrics`.

For runs on token sequences (a dataset with a vocabulary). Each evaluation draws
``samples`` generated sequences, G's per-position distributions (N, L, V), and logs:

* ``text.one_hot_fraction``: the share of positions whose distribution is exactly one-hot
  (real tokens always are; softmax never is, sparsemax and entmax can be, Gumbel-ST always is);
* ``text.nonzeros``: the mean number of non-zero entries per position (1 for one-hots, V for softmax);
* on the argmax tokens (how the samples read as text, :mod:`ganlab.text`):
  ``text.jsd_1`` .. ``text.jsd_4``: Jensen-Shannon divergence (nats) between the n-gram
  distributions of the samples and of held-out text (Gulrajani et al. 2017);
  ``text.bleu4``: BLEU-4 of each sample against the held-out set as references, averaged;
  ``text.self_bleu4``: BLEU-4 of samples against the other samples (high: little diversity);
* oracle data only: ``text.nll_oracle``, the oracle's mean per-token negative log-likelihood of
  the samples (SeqGAN's exact quality measure; lower is better).

Reference values are logged once as params, so a number has its scale beside it:
``text.floor.*`` the same statistics for real training sequences against the held-out set
(what a generator that reproduced the data would score, at the same sample count), and
``text.nll_oracle_heldout`` the oracle's NLL of its own held-out samples. Statistics are
defined (conventions, smoothing) in :mod:`.text_stats`.
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab.text import pad_id
from ganlab_plugins.metrics import text_stats

ORDERS = (1, 2, 3, 4)


def sequence_statistics(tokens: torch.Tensor, references: torch.Tensor, pad: int | None,
                        self_bleu_samples: int, seed: int) -> dict[str, float]:
    """The n-gram statistics of ``tokens`` (N, L) against held-out ``references`` (M, L)."""
    out = {f"text.jsd_{n}": text_stats.ngram_jsd(tokens, references, n, pad) for n in ORDERS}
    out["text.bleu4"] = text_stats.corpus_bleu(tokens, references, 4, pad)
    if len(tokens) >= 2:
        out["text.self_bleu4"] = text_stats.self_bleu(
            tokens, 4, pad, max_hypotheses=min(self_bleu_samples, len(tokens)),
            generator=torch.Generator().manual_seed(seed))
    return out


class TextMetrics:
    """Sparsity of G's token distributions, n-gram JSD, BLEU-4, self-BLEU and (oracle) NLL_oracle."""

    def __init__(self, samples: int = 1000, references: int = 2000, self_bleu_samples: int = 250) -> None:
        self.samples = int(samples)
        self.references = int(references)
        self.self_bleu_samples = int(self_bleu_samples)
        self._reference_cache: dict[str, Any] = {}

    def applies_to(self, run: Any) -> bool:
        return getattr(run.data, "vocab", None) is not None

    def evaluate(self, ctx: Any) -> dict[str, float]:
        data = ctx.data
        probs = ctx.generate(self.samples).float().cpu()
        tokens = text_stats.decode_argmax(probs)
        pad = pad_id(data.vocab)
        references, floor = self._references(ctx, pad)
        out = {
            "text.one_hot_fraction": text_stats.one_hot_fraction(probs),
            "text.nonzeros": text_stats.mean_nonzeros(probs),
            **sequence_statistics(tokens, references, pad, self.self_bleu_samples, ctx.seed),
        }
        oracle = self._oracle(ctx)
        if oracle is not None:
            out["text.nll_oracle"] = float(oracle.nll(tokens).mean())
        ctx.params.update(floor)
        return out

    # ---- references, computed once per run -------------------------------------------
    def _references(self, ctx: Any, pad: int | None) -> tuple[torch.Tensor, dict[str, Any]]:
        if "references" not in self._reference_cache:
            data = ctx.data
            held_out = data.test_x is not None and len(data.test_x) > 0
            pool = (data.test_x if held_out else data.x).cpu()
            chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[: self.references]
            references = pool[chosen]
            real = data.x.cpu()
            drawn = torch.randperm(len(real), generator=torch.Generator().manual_seed(1))[: self.samples]
            floor = {f"text.floor.{k[len('text.'):]}": round(v, 6) for k, v in sequence_statistics(
                real[drawn], references, pad, self.self_bleu_samples, 0).items()}
            floor.update({"text.samples": self.samples, "text.references": len(references),
                          "text.reference_split": "held-out" if held_out else "training (no held-out split)"})
            oracle = self._oracle(ctx)
            if oracle is not None and held_out:
                floor["text.nll_oracle_heldout"] = round(float(oracle.nll(data.test_x.cpu()).mean()), 6)
            self._reference_cache.update(references=references, floor=floor)
        return self._reference_cache["references"], self._reference_cache["floor"]

    def _oracle(self, ctx: Any) -> Any:
        if ctx.dataset_name != "oracle" or ctx.config is None:
            return None
        if "oracle" not in self._reference_cache:
            from ganlab_plugins.datasets.text import oracle_from_options

            self._reference_cache["oracle"] = oracle_from_options(ctx.config.options_of("dataset"))
        return self._reference_cache["oracle"]
