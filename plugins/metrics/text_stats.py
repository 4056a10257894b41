"""Statistics of generated token sequences for text GANs: n-gram JSD, BLEU, self-BLEU,
and the sparsity of a generator's per-position token distributions.

Pure functions of tensors, no model and no data set, computed on the CPU in plain
torch/Python (float64 arithmetic via :mod:`math`). Tested against hand-computed values
and independent brute-force implementations (tests/test_text_stats.py).

Inputs
------
* Token sequences: integer tensors (N, L) of token ids, one sequence per row.
* Distributions: float tensors (N, L, V), one probability distribution over the V-token
  vocabulary per position (what a text generator emits before sampling/decoding).
* ``pad_id``: where given, the padding token. Sequences are right-padded; an n-gram that
  contains a pad is never counted, and a sequence's *length* (for BLEU's brevity
  penalty) is its number of non-pad tokens. (A pad inside a sequence therefore splits
  it: no n-gram spans it, but the tokens around it still count towards the length.)

BLEU conventions (NLTK's ``sentence_bleu`` with ``SmoothingFunction().method1``,
as used by Texygen, Zhu et al. 2018, and the SeqGAN line of papers; reimplemented
here, not copied):

* modified precision p_n = Σ_g min(count_hyp(g), max_r count_r(g)) / max(1, Σ_g count_hyp(g));
  the max is over *single* references (clipping counts are not summed over references);
* a hypothesis with no matching unigram scores 0 (NLTK returns 0 before smoothing);
* otherwise a p_n with zero matches becomes ε / denominator, ε = 0.1 (Chen & Cherry
  2014, method 1); a hypothesis with fewer than n tokens has no n-grams, so its
  denominator is max(1, 0) = 1 and its p_n = ε (NLTK's value, not a special case);
* BLEU = BP · exp(Σ_n log(p_n) / max_n), BP = 1 if c > r else exp(1 − r/c), c the
  hypothesis length and r the reference length closest to c (ties → the shorter).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import torch

#: Chen & Cherry's (2014) method-1 ε: the numerator given to an n-gram order with no match.
SMOOTHING_EPSILON = 0.1

Ngram = tuple[int, ...]


# ----------------------------------------------------------------------------- helpers


def _token_rows(tokens: torch.Tensor) -> list[list[int]]:
    """The rows of an integer (N, L) tensor as Python lists (validated)."""
    t = torch.as_tensor(tokens)
    if t.ndim != 2:
        raise ValueError(f"token sequences must be a 2-D (N, L) tensor, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"token sequences must be an integer tensor, got {t.dtype}")
    return t.detach().to("cpu", torch.int64).tolist()


def _check_n(n: int, name: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")


def _row_ngrams(row: list[int], n: int, pad_id: int | None) -> Counter[Ngram]:
    """Counts of the n-grams of one sequence, skipping any that contain ``pad_id``."""
    grams = zip(*(row[k:] for k in range(n)))
    if pad_id is None:
        return Counter(grams)
    return Counter(g for g in grams if pad_id not in g)


def _row_length(row: list[int], pad_id: int | None) -> int:
    return len(row) if pad_id is None else len(row) - row.count(pad_id)


def _closest_length(c: int, lengths: Sequence[int]) -> int:
    """The length in ``lengths`` closest to c; ties go to the shorter one."""
    return min(lengths, key=lambda r: (abs(r - c), r))


def _bleu_from_stats(matches: Sequence[int], totals: Sequence[int], c: int, r: int) -> float:
    """Sentence BLEU from per-order matched counts and hypothesis n-gram counts (see module doc)."""
    if matches[0] == 0:
        return 0.0  # no unigram matches (includes the empty hypothesis): NLTK's early 0
    log_sum = 0.0
    for m, t in zip(matches, totals):
        denominator = max(1, t)
        numerator = m if m > 0 else SMOOTHING_EPSILON
        log_sum += math.log(numerator / denominator)
    bp = 1.0 if c > r else math.exp(1.0 - r / c)  # c ≥ 1 here: a unigram matched
    return bp * math.exp(log_sum / len(matches))


def _sentence_bleu(hyp_counts: Sequence[Counter[Ngram]], c: int, r: int,
                   ref_max: Callable[[int, Ngram], int]) -> float:
    """BLEU of one hypothesis given its per-order n-gram counts (orders 1..max_n) and
    ``ref_max(order_index, g)``, the clipping count of g."""
    matches, totals = [], []
    for k, counts in enumerate(hyp_counts):
        matched = 0
        total = 0
        for g, cnt in counts.items():
            total += cnt
            ref = ref_max(k, g)
            matched += cnt if cnt <= ref else ref
        matches.append(matched)
        totals.append(total)
    return _bleu_from_stats(matches, totals, c, r)


# ----------------------------------------------------------------------------- n-grams


def ngram_counts(tokens: torch.Tensor, n: int, pad_id: int | None = None) -> Counter[Ngram]:
    """Counts of all n-grams (tuples of n token ids) within each row of ``tokens`` (N, L),
    summed over rows.

    N-grams never cross sequence boundaries (a row of length L has L − n + 1 of them,
    none when L < n), and any n-gram containing ``pad_id`` is skipped.
    """
    _check_n(n)
    total: Counter[Ngram] = Counter()
    for row in _token_rows(tokens):
        grams = zip(*(row[k:] for k in range(n)))
        total.update(grams if pad_id is None else (g for g in grams if pad_id not in g))
    return total


def ngram_jsd(generated: torch.Tensor, reference: torch.Tensor, n: int, pad_id: int | None = None) -> float:
    """Jensen–Shannon divergence, in nats, between the n-gram frequency distributions of
    two sets of sequences (Gulrajani et al. 2017's evaluation of character-level
    language models, used there for n = 1..4):

        P(g) = count_gen(g) / Σ count_gen,   Q(g) = count_ref(g) / Σ count_ref,   M = (P + Q) / 2,
        JSD = ½ KL(P ‖ M) + ½ KL(Q ‖ M),   0 log 0 = 0,

    over the union of both supports. It lies in [0, log 2]: 0 for identical
    distributions, log 2 for disjoint supports. The value is clamped to that range
    against round-off.

    Convention: if either set has no n-grams at all (e.g. every sequence is shorter
    than n, or all padding), the result is log 2, the worst value, so that a
    degenerate generator never scores better than one that emits any n-gram.
    """
    p_counts = ngram_counts(generated, n, pad_id)
    q_counts = ngram_counts(reference, n, pad_id)
    p_total = sum(p_counts.values())
    q_total = sum(q_counts.values())
    if p_total == 0 or q_total == 0:
        return math.log(2.0)
    kl_p = 0.0
    kl_q = 0.0
    for g in p_counts.keys() | q_counts.keys():
        p = p_counts.get(g, 0) / p_total
        q = q_counts.get(g, 0) / q_total
        m = 0.5 * (p + q)
        if p > 0:
            kl_p += p * math.log(p / m)
        if q > 0:
            kl_q += q * math.log(q / m)
    return min(max(0.5 * (kl_p + kl_q), 0.0), math.log(2.0))


# ----------------------------------------------------------------------------- BLEU


def corpus_bleu(hypotheses: torch.Tensor, references: torch.Tensor, max_n: int = 4,
                pad_id: int | None = None) -> float:
    """Mean sentence BLEU-``max_n`` of each hypothesis against the whole reference set.

    The "BLEU against held-out text" of text-GAN papers (Texygen, Zhu et al. 2018;
    SeqGAN-style): every row of ``hypotheses`` (N, L) is scored against *all* rows of
    ``references`` (M, L') as its multiple references, with sentence BLEU as defined in
    the module docstring (NLTK ``sentence_bleu`` + smoothing method 1, uniform weights
    1/max_n), and the N scores are averaged. This is not NLTK's ``corpus_bleu``, which
    pools counts over hypotheses before taking the ratio.

    Per-hypothesis conventions: no matched unigram → 0; fewer than n tokens → p_n = ε
    (= 0.1, see module doc); lengths count non-pad tokens; the closest reference
    length breaks ties towards the shorter reference.

    Cost: the clipping counts max_r count_r(g) are precomputed once per order over
    the references (O(M·L)), so each hypothesis costs O(L·max_n).

    Raises ValueError when either set is empty (no rows).
    """
    _check_n(max_n, "max_n")
    hyp_rows = _token_rows(hypotheses)
    ref_rows = _token_rows(references)
    if not hyp_rows or not ref_rows:
        raise ValueError(f"corpus_bleu needs at least one hypothesis and one reference, "
                         f"got {len(hyp_rows)} and {len(ref_rows)}")

    ref_max: list[dict[Ngram, int]] = []
    for n in range(1, max_n + 1):
        best: dict[Ngram, int] = {}
        for row in ref_rows:
            for g, cnt in _row_ngrams(row, n, pad_id).items():
                if cnt > best.get(g, 0):
                    best[g] = cnt
        ref_max.append(best)
    ref_lengths = sorted({_row_length(row, pad_id) for row in ref_rows})

    def lookup(k: int, g: Ngram) -> int:
        return ref_max[k].get(g, 0)

    closest: dict[int, int] = {}
    scores = []
    for row in hyp_rows:
        c = _row_length(row, pad_id)
        if c not in closest:
            closest[c] = _closest_length(c, ref_lengths)
        counts = [_row_ngrams(row, n, pad_id) for n in range(1, max_n + 1)]
        scores.append(_sentence_bleu(counts, c, closest[c], lookup))
    return math.fsum(scores) / len(scores)


def self_bleu(samples: torch.Tensor, max_n: int = 4, pad_id: int | None = None,
              max_hypotheses: int | None = None, generator: torch.Generator | None = None) -> float:
    """Self-BLEU (Zhu et al. 2018), a diversity measure (lower = more diverse): each row of
    ``samples`` (N, L) is scored with the sentence BLEU of :func:`corpus_bleu` against
    all the *other* N − 1 rows as references, and the scores are averaged.

    The sample itself is excluded (Texygen's non-"fast" variant leaves it in, which
    makes every precision 1). Leave-one-out clipping counts are O(1): for each n-gram
    we keep the largest and second-largest per-sequence counts and which sequence
    holds the largest; without sequence i the maximum is the second-largest if i
    holds the largest, else the largest. The closest reference length is likewise
    taken from the length multiset with one copy of the sample's own length removed.

    ``max_hypotheses``: if given and < N, only the rows
    ``torch.randperm(N, generator=generator)[:max_hypotheses]`` are scored (each still
    against all N − 1 others); otherwise every row is.

    Raises ValueError for fewer than 2 samples (no references).
    """
    _check_n(max_n, "max_n")
    rows = _token_rows(samples)
    num = len(rows)
    if num < 2:
        raise ValueError(f"self_bleu needs at least 2 samples, got {num}")
    if max_hypotheses is not None and max_hypotheses < 1:
        raise ValueError(f"max_hypotheses must be positive, got {max_hypotheses}")

    counts = [[_row_ngrams(row, n, pad_id) for n in range(1, max_n + 1)] for row in rows]
    # per order: g -> [largest count, index of the sequence holding it, second-largest count]
    stats: list[dict[Ngram, list[int]]] = [{} for _ in range(max_n)]
    for i, per_order in enumerate(counts):
        for k, cnt_map in enumerate(per_order):
            table = stats[k]
            for g, cnt in cnt_map.items():
                s = table.get(g)
                if s is None:
                    table[g] = [cnt, i, 0]
                elif cnt > s[0]:
                    s[2] = s[0]
                    s[0] = cnt
                    s[1] = i
                elif cnt > s[2]:
                    s[2] = cnt

    lengths = [_row_length(row, pad_id) for row in rows]
    length_count = Counter(lengths)

    if max_hypotheses is not None and max_hypotheses < num:
        chosen = torch.randperm(num, generator=generator)[:max_hypotheses].tolist()
    else:
        chosen = range(num)

    closest: dict[int, int] = {}
    scores = []
    for i in chosen:
        c = lengths[i]
        if c not in closest:
            others = [r for r, k in length_count.items() if k > (1 if r == c else 0)]
            closest[c] = _closest_length(c, others)

        def lookup(k: int, g: Ngram, i: int = i) -> int:
            s = stats[k][g]  # present: sequence i itself contains g
            return s[2] if s[1] == i else s[0]

        scores.append(_sentence_bleu(counts[i], c, closest[c], lookup))
    return math.fsum(scores) / len(scores)


# ----------------------------------------------------------------------------- distributions


def _check_probs(probs: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(probs).detach()
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"distributions must have a non-empty last (vocabulary) axis, got shape {tuple(p.shape)}")
    if p.numel() == 0:
        raise ValueError(f"no positions in distributions of shape {tuple(p.shape)}")
    return p


def one_hot_fraction(probs: torch.Tensor, atol: float = 0.0) -> float:
    """Fraction of positions (over all N·L of ``probs`` (N, L, V), or any (..., V)) whose
    distribution is one-hot: exactly one entry within ``atol`` of 1 and every other
    entry within ``atol`` of 0.

    With the default ``atol=0`` this is exact equality (max == 1, all others == 0), which
    is what distinguishes sparse heads (sparsemax/entmax can emit exact one-hots) from
    softmax, whose near-one-hot outputs such as 0.999999 never count. ``atol`` must be
    in [0, 0.5) so that no entry can be near both 0 and 1.
    """
    if not 0.0 <= atol < 0.5:
        raise ValueError(f"atol must be in [0, 0.5), got {atol}")
    p = _check_probs(probs)
    # Equivalent, with atol < 0.5, and cheaper than testing every entry against 0 and 1:
    # exactly one entry is not near 0, and the maximum is near 1 (so that entry is the max).
    not_zero = (p.abs() > atol).sum(dim=-1, dtype=torch.int32)
    hot = (not_zero == 1) & ((p.amax(dim=-1) - 1).abs() <= atol)
    return float(hot.to(torch.float64).mean())


def mean_nonzeros(probs: torch.Tensor) -> float:
    """Mean over positions (all N·L of ``probs`` (N, L, V), or any (..., V)) of the number
    of strictly non-zero entries of the distribution (1 for one-hot, V for softmax)."""
    p = _check_probs(probs)
    # an int32 sum of the boolean mask is several times faster than count_nonzero's int64
    return float((p != 0).sum(dim=-1, dtype=torch.int32).to(torch.float64).mean())


def decode_argmax(probs: torch.Tensor) -> torch.Tensor:
    """Token ids (N, L) int64: the argmax of each position's distribution ``probs`` (N, L, V).

    For one-hot or sparse outputs this is the exact token (the only non-zero entry).
    Ties resolve to the lowest token id (``torch.argmax`` returns the first maximal index).
    """
    p = _check_probs(probs)
    return torch.argmax(p, dim=-1).to(torch.int64)
