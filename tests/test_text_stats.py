"""Text-GAN statistics (ganlab_plugins.metrics.text_stats): n-gram counts and JSD, BLEU,
self-BLEU, and the sparsity of per-position token distributions.

Hand-computed values are written out as float64 arithmetic; BLEU and self-BLEU are
also checked against a naive implementation written here (pads stripped from Python
lists, clipping counts recomputed reference by reference, the sample itself removed
from the reference list for self-BLEU).
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from ganlab_plugins.metrics.text_stats import (
    corpus_bleu,
    decode_argmax,
    mean_nonzeros,
    ngram_counts,
    ngram_jsd,
    one_hot_fraction,
    self_bleu,
)

EPS = 0.1  # Chen & Cherry method-1 numerator
LOG2 = math.log(2.0)
PAD = 0


def T(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


# ----------------------------------------------------------------------------- naive reference


def _naive_ngrams(seq: list[int], n: int) -> Counter:
    return Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))


def _strip(row: list[int], pad: int | None) -> list[int]:
    return [t for t in row if t != pad] if pad is not None else list(row)


def naive_sentence_bleu(hyp: list[int], refs: list[list[int]], max_n: int = 4) -> float:
    """Sentence BLEU with method-1 smoothing, written directly from the definition."""
    precisions = []
    for n in range(1, max_n + 1):
        h = _naive_ngrams(hyp, n)
        matched = 0
        for g, cnt in h.items():
            best = 0
            for ref in refs:
                best = max(best, _naive_ngrams(ref, n)[g])
            matched += min(cnt, best)
        precisions.append((matched, max(1, sum(h.values()))))
    if precisions[0][0] == 0:
        return 0.0
    c = len(hyp)
    r = sorted((abs(len(ref) - c), len(ref)) for ref in refs)[0][1]
    bp = 1.0 if c > r else math.exp(1 - r / c)
    logs = [math.log((m if m else EPS) / d) for m, d in precisions]
    return bp * math.exp(sum(logs) / max_n)


def _random_padded(gen: torch.Generator, rows: int, length: int, vocab: int, min_len: int = 0) -> torch.Tensor:
    """Random right-padded sequences: tokens 1..vocab, PAD after a random length."""
    tokens = torch.randint(1, vocab + 1, (rows, length), generator=gen)
    lengths = torch.randint(min_len, length + 1, (rows,), generator=gen)
    tokens[torch.arange(length)[None, :] >= lengths[:, None]] = PAD
    return tokens


# ----------------------------------------------------------------------------- n-grams


def test_ngram_counts_within_sequences_only() -> None:
    tokens = T([[1, 2, 1, 2], [3, 4, 5, 6]])
    assert ngram_counts(tokens, 1) == Counter({(1,): 2, (2,): 2, (3,): 1, (4,): 1, (5,): 1, (6,): 1})
    # (2, 3) would cross the boundary between the rows: not counted
    assert ngram_counts(tokens, 2) == Counter({(1, 2): 2, (2, 1): 1, (3, 4): 1, (4, 5): 1, (5, 6): 1})
    assert ngram_counts(tokens, 4) == Counter({(1, 2, 1, 2): 1, (3, 4, 5, 6): 1})
    assert ngram_counts(tokens, 5) == Counter()


def test_ngram_counts_skip_pads() -> None:
    tokens = T([[1, 2, 3, PAD, PAD], [4, 4, PAD, PAD, PAD]])
    assert ngram_counts(tokens, 1, pad_id=PAD) == Counter({(1,): 1, (2,): 1, (3,): 1, (4,): 2})
    assert ngram_counts(tokens, 2, pad_id=PAD) == Counter({(1, 2): 1, (2, 3): 1, (4, 4): 1})
    assert ngram_counts(tokens, 3, pad_id=PAD) == Counter({(1, 2, 3): 1})
    # without pad_id, the pad is an ordinary token
    assert ngram_counts(tokens, 2)[(3, PAD)] == 1


def test_ngram_counts_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ngram_counts(torch.tensor([1, 2, 3]), 1)
    with pytest.raises(TypeError):
        ngram_counts(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError):
        ngram_counts(T([[1, 2]]), 0)


# ----------------------------------------------------------------------------- JSD


def test_jsd_unigrams_by_hand() -> None:
    gen = T([[1, 1, 2, 3]])  # P = {1: 1/2, 2: 1/4, 3: 1/4}
    ref = T([[1, 2, 2, 4]])  # Q = {1: 1/4, 2: 1/2, 4: 1/4}
    # M = {1: 3/8, 2: 3/8, 3: 1/8, 4: 1/8}
    kl_pm = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.375) + 0.25 * math.log(0.25 / 0.125)
    kl_qm = 0.25 * math.log(0.25 / 0.375) + 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.125)
    expected = 0.5 * (kl_pm + kl_qm)
    assert ngram_jsd(gen, ref, 1) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert ngram_jsd(ref, gen, 1) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert 0 < expected < LOG2


def test_jsd_bigrams_by_hand() -> None:
    gen = T([[1, 2, 1], [1, 2, 3]])  # bigrams (1,2)×2, (2,1), (2,3): P = {12: 1/2, 21: 1/4, 23: 1/4}
    ref = T([[1, 2, 5]])             # bigrams (1,2), (2,5):             Q = {12: 1/2, 25: 1/2}
    # M = {12: 1/2, 21: 1/8, 23: 1/8, 25: 1/4}
    kl_pm = 0.5 * math.log(0.5 / 0.5) + 0.25 * math.log(0.25 / 0.125) * 2
    kl_qm = 0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / 0.25)
    assert ngram_jsd(gen, ref, 2) == pytest.approx(0.5 * (kl_pm + kl_qm), rel=1e-12)


def test_jsd_identical_and_disjoint() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(1, 6, (20, 8), generator=gen)
    # same n-gram distribution: same rows in another order
    assert ngram_jsd(a, a.flip(0), 3) == 0.0
    # the frequency distribution, not the counts: duplicating every row changes nothing
    assert ngram_jsd(a, torch.cat([a, a]), 2) == pytest.approx(0.0, abs=1e-15)
    b = a + 10  # no token in common
    for n in (1, 2, 4):
        assert ngram_jsd(a, b, n) == pytest.approx(LOG2, rel=1e-12)


def test_jsd_empty_convention_and_pads() -> None:
    a = T([[1, 2, 3, PAD], [2, 3, PAD, PAD]])
    # a set with no n-grams at all scores log 2
    assert ngram_jsd(a, T([[1, 2]]), 3) == LOG2
    assert ngram_jsd(T([[PAD, PAD, PAD]]), a, 1, pad_id=PAD) == LOG2
    # pads ignored: extra padding columns change nothing, and pad n-grams do not count
    b = T([[1, 2, 3], [2, 3, 1]])
    padded = torch.cat([b, torch.full((2, 3), PAD)], dim=1)
    assert ngram_jsd(a, padded, 2, pad_id=PAD) == pytest.approx(ngram_jsd(a, b, 2, pad_id=PAD), abs=1e-15)
    # the same non-pad bigrams (1,2), (2,3) x2 padded differently: identical distributions
    same = T([[2, 3, PAD, PAD, PAD, PAD], [1, 2, 3, PAD, PAD, PAD]])
    assert ngram_jsd(a, same, 2, pad_id=PAD) == 0.0
    # without pad_id the pads are tokens and the distributions differ
    assert ngram_jsd(a, same, 2) > 0.05


# ----------------------------------------------------------------------------- BLEU by hand


def test_bleu_hand_example_with_smoothing() -> None:
    hyp = T([[1, 2, 3, 4, 5]])
    ref = T([[1, 2, 3, 5, 4]])
    # p1 = 5/5; bigrams (1,2) (2,3) match of (1,2) (2,3) (3,4) (4,5): 2/4;
    # trigrams: only (1,2,3) matches: 1/3; 4-grams: 0/2 -> smoothed 0.1/2; c = r = 5, BP = 1
    expected = (1.0 * (2 / 4) * (1 / 3) * (EPS / 2)) ** 0.25
    assert corpus_bleu(hyp, ref) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx((1 / 120) ** 0.25, rel=1e-12)


def test_bleu_clipping_uses_max_over_single_references() -> None:
    hyp = T([[5, 5, 5, 5]])
    refs = T([[5, 1, 2, 3], [4, 5, 6, 7]])
    # 5 occurs at most once in any single reference: p1 = 1/4 (summing over refs would give 2/4)
    # (5,5), (5,5,5), (5,5,5,5) never occur: 0.1/3, 0.1/2, 0.1/1; all lengths 4 -> BP = 1
    expected = ((1 / 4) * (EPS / 3) * (EPS / 2) * (EPS / 1)) ** 0.25
    assert corpus_bleu(hyp, refs) == pytest.approx(expected, rel=1e-12)


def test_bleu_brevity_penalty_via_padding() -> None:
    short = T([[1, 2, 3, 4, PAD, PAD]])
    full = T([[1, 2, 3, 4, 5, 6]])
    # hypothesis shorter: c = 4, r = 6, every n-gram matches -> BP = exp(1 - 6/4)
    assert corpus_bleu(short, full, pad_id=PAD) == pytest.approx(math.exp(-0.5), rel=1e-12)
    # hypothesis longer: c = 6 > r = 4 -> BP = 1; p = 4/6, 3/5, 2/4, 1/3
    assert corpus_bleu(full, short, pad_id=PAD) == pytest.approx((4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, rel=1e-12)
    # without pad_id the pads are tokens: (3, 4) ... no longer all match
    assert corpus_bleu(short, full) < math.exp(-0.5)


def test_bleu_closest_length_ties_go_to_shorter_reference() -> None:
    hyp = T([[1, 2, 3, 4, PAD]])
    refs = T([[1, 2, 3, PAD, PAD], [1, 2, 3, 4, 5]])  # lengths 3 and 5, both 1 away from c = 4
    # all hypothesis n-grams occur in the second reference; r = 3 < c -> BP = 1
    # (the longer reference would give exp(1 - 5/4))
    assert corpus_bleu(hyp, refs, pad_id=PAD) == pytest.approx(1.0, rel=1e-12)


def test_bleu_short_hypothesis_and_no_unigram_match() -> None:
    # 2 tokens: p1 = 2/2, p2 = 1/1, no 3- or 4-grams -> denominators max(1, 0) = 1, p3 = p4 = 0.1
    # c = 2, r = 4 -> BP = exp(1 - 2)
    hyp = T([[1, 2, PAD, PAD]])
    ref = T([[1, 2, 3, 4]])
    expected = math.exp(1 - 4 / 2) * (1.0 * 1.0 * EPS * EPS) ** 0.25
    assert corpus_bleu(hyp, ref, pad_id=PAD) == pytest.approx(expected, rel=1e-12)
    # no unigram in common: 0 (NLTK returns 0 before smoothing); empty hypothesis: 0
    assert corpus_bleu(T([[5, 6, 7, 8]]), ref) == 0.0
    assert corpus_bleu(T([[PAD, PAD, PAD, PAD]]), ref, pad_id=PAD) == 0.0
    # the mean over hypotheses
    both = T([[1, 2, PAD, PAD], [5, 6, 7, 8]])
    assert corpus_bleu(both, ref, pad_id=PAD) == pytest.approx(expected / 2, rel=1e-12)


def test_bleu_max_n() -> None:
    hyp = T([[1, 2, 3, 4, 5]])
    ref = T([[1, 2, 3, 5, 4]])
    assert corpus_bleu(hyp, ref, max_n=1) == 1.0
    assert corpus_bleu(hyp, ref, max_n=2) == pytest.approx((1.0 * 2 / 4) ** 0.5, rel=1e-12)


def test_bleu_is_one_when_hypothesis_among_references() -> None:
    gen = torch.Generator().manual_seed(1)
    refs = _random_padded(gen, 25, 10, 6, min_len=4)
    hyps = refs[[3, 7, 7, 20]]
    assert corpus_bleu(hyps, refs, pad_id=PAD) == pytest.approx(1.0, rel=1e-12)


def test_corpus_bleu_matches_naive_on_random_data() -> None:
    gen = torch.Generator().manual_seed(2)
    for trial in range(4):
        hyps = _random_padded(gen, 12, 9, 4)  # lengths 0..9, short hypotheses included
        refs = _random_padded(gen, 15, 11, 4)
        for max_n in (2, 4):
            got = corpus_bleu(hyps, refs, max_n=max_n, pad_id=PAD)
            ref_lists = [_strip(r, PAD) for r in refs.tolist()]
            scores = [naive_sentence_bleu(_strip(h, PAD), ref_lists, max_n) for h in hyps.tolist()]
            assert got == pytest.approx(sum(scores) / len(scores), rel=1e-12, abs=1e-15), (trial, max_n)
            assert 0.0 < got < 1.0


def test_corpus_bleu_pads_ignored() -> None:
    gen = torch.Generator().manual_seed(3)
    hyps = _random_padded(gen, 10, 8, 5)
    refs = _random_padded(gen, 10, 8, 5)
    extra = torch.full((10, 4), PAD)
    base = corpus_bleu(hyps, refs, pad_id=PAD)
    assert corpus_bleu(torch.cat([hyps, extra], 1), refs, pad_id=PAD) == base
    assert corpus_bleu(hyps, torch.cat([refs, extra], 1), pad_id=PAD) == base


def test_corpus_bleu_rejects_empty_sets() -> None:
    with pytest.raises(ValueError):
        corpus_bleu(torch.zeros(0, 4, dtype=torch.int64), T([[1, 2]]))
    with pytest.raises(ValueError):
        corpus_bleu(T([[1, 2]]), torch.zeros(0, 4, dtype=torch.int64))


# ----------------------------------------------------------------------------- self-BLEU


def naive_self_bleu(samples: torch.Tensor, max_n: int, pad: int | None, which: list[int] | None = None) -> float:
    rows = [_strip(r, pad) for r in samples.tolist()]
    which = list(range(len(rows))) if which is None else which
    scores = [naive_sentence_bleu(rows[i], rows[:i] + rows[i + 1:], max_n) for i in which]
    return sum(scores) / len(scores)


def test_self_bleu_identical_samples_is_one() -> None:
    samples = T([[3, 1, 4, 1, 5, 9]] * 5)
    assert self_bleu(samples) == pytest.approx(1.0, rel=1e-12)


def test_self_bleu_excludes_the_sample_itself() -> None:
    # the same unigrams, no common bigram: each sample, scored against the other only,
    # gets p1 = 1, p2 = 0.1/3, p3 = 0.1/2, p4 = 0.1/1, BP = 1 (including itself would give 1)
    samples = T([[1, 2, 3, 4], [2, 1, 4, 3]])
    expected = (1.0 * (EPS / 3) * (EPS / 2) * (EPS / 1)) ** 0.25
    assert self_bleu(samples) == pytest.approx(expected, rel=1e-12)
    # no unigram in common with any other sample: every score is NLTK's early 0
    assert self_bleu(T([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])) == 0.0
    # a duplicated pair scores 1 each; the odd one out scores against them
    dup = T([[1, 2, 3, 4], [1, 2, 3, 4], [2, 1, 4, 3]])
    assert self_bleu(dup) == pytest.approx((1 + 1 + expected) / 3, rel=1e-12)


def test_self_bleu_leave_one_out_second_largest_count() -> None:
    # (7,) occurs 3 times in sample 0, twice in sample 1, once in sample 2:
    # without sample 0 its clipping count is 2 (the second-largest), not 3
    samples = T([[7, 7, 7, 1], [7, 7, 2, 3], [7, 4, 5, 6]])
    for max_n in (1, 2, 4):
        assert self_bleu(samples, max_n=max_n) == pytest.approx(naive_self_bleu(samples, max_n, None), rel=1e-12)
    # max_n = 1, all lengths 4 (BP = 1): sample 0 clips 7 to 2 (from sample 1), 1 unmatched: 2/4;
    # sample 1 clips 7 to 2 (its own count; sample 0 has 3), 2 and 3 unmatched: 2/4;
    # sample 2: 7 matches once, 4, 5, 6 unmatched: 1/4
    assert self_bleu(samples, max_n=1) == pytest.approx((2 / 4 + 2 / 4 + 1 / 4) / 3, rel=1e-12)


def test_self_bleu_matches_naive_on_random_data() -> None:
    gen = torch.Generator().manual_seed(4)
    for trial in range(4):
        samples = _random_padded(gen, 16, 9, 4)  # lengths 0..9
        for max_n in (2, 4):
            got = self_bleu(samples, max_n=max_n, pad_id=PAD)
            assert got == pytest.approx(naive_self_bleu(samples, max_n, PAD), rel=1e-12, abs=1e-15), (trial, max_n)
    # unpadded, with duplicates
    samples = torch.randint(1, 4, (12, 6), generator=gen)
    samples[5] = samples[2]
    assert self_bleu(samples) == pytest.approx(naive_self_bleu(samples, 4, None), rel=1e-12)


def test_self_bleu_length_leave_one_out() -> None:
    # lengths 2, 4, 4, 6: for a length-4 sample the other length-4 sample gives r = 4;
    # for the length-2 sample the closest other is 4, for length 6 it is 4 too
    samples = T([[1, 2, PAD, PAD, PAD, PAD], [1, 2, 3, 4, PAD, PAD],
                 [2, 3, 4, 1, PAD, PAD], [1, 2, 3, 4, 1, 2]])
    assert self_bleu(samples, pad_id=PAD) == pytest.approx(naive_self_bleu(samples, 4, PAD), rel=1e-12)
    # a unique length must not be its own closest reference: lengths 3 and 5
    two = T([[1, 2, 3, PAD, PAD], [1, 2, 3, 1, 2]])
    # sample 0: all n-grams in sample 1, p3 = 1/1, p4 = 0.1/1, c = 3, r = 5
    s0 = math.exp(1 - 5 / 3) * (1.0 * 1.0 * 1.0 * EPS) ** 0.25
    # sample 1: c = 5 > r = 3, p1 = (1+1+1)/5, p2 = (1,2),(2,3) of (1,2)x2,(2,3),(3,1): 2/4, p3 = 1/3, p4 = 0.1/2
    s1 = ((3 / 5) * (2 / 4) * (1 / 3) * (EPS / 2)) ** 0.25
    assert self_bleu(two, pad_id=PAD) == pytest.approx((s0 + s1) / 2, rel=1e-12)


def test_self_bleu_subset_of_hypotheses() -> None:
    gen = torch.Generator().manual_seed(5)
    samples = _random_padded(gen, 20, 8, 4, min_len=1)
    full = self_bleu(samples, pad_id=PAD)
    assert self_bleu(samples, pad_id=PAD, max_hypotheses=20) == full
    assert self_bleu(samples, pad_id=PAD, max_hypotheses=100) == full
    # the documented draw: randperm(N, generator)[:max_hypotheses], each against all N - 1 others
    which = torch.randperm(20, generator=torch.Generator().manual_seed(9))[:6].tolist()
    got = self_bleu(samples, pad_id=PAD, max_hypotheses=6, generator=torch.Generator().manual_seed(9))
    assert got == pytest.approx(naive_self_bleu(samples, 4, PAD, which), rel=1e-12)
    assert got != full
    # reproducible with the same seed
    again = self_bleu(samples, pad_id=PAD, max_hypotheses=6, generator=torch.Generator().manual_seed(9))
    assert again == got


def test_self_bleu_rejects_single_sample() -> None:
    with pytest.raises(ValueError):
        self_bleu(T([[1, 2, 3, 4]]))


# ----------------------------------------------------------------------------- distributions


def _probs() -> torch.Tensor:
    return torch.tensor([[
        [1.0, 0.0, 0.0],          # exact one-hot
        [0.999999, 1e-6, 0.0],    # near one-hot: not one-hot
        [0.5, 0.5, 0.0],          # sparse, 2 non-zeros
        [0.0, 0.0, 1.0],          # exact one-hot
    ], [
        [0.7, 0.2, 0.1],          # dense
        [0.0, 1.0, 0.0],          # exact one-hot
        [0.0, 0.0, 0.0],          # all zero: not one-hot
        [0.0, 0.25, 0.75],        # sparse
    ]], dtype=torch.float32)


def test_one_hot_fraction() -> None:
    p = _probs()
    assert one_hot_fraction(p) == pytest.approx(3 / 8)
    # within a tolerance the near one-hot row counts too
    assert one_hot_fraction(p, atol=1e-5) == pytest.approx(4 / 8)
    assert one_hot_fraction(p.double()) == pytest.approx(3 / 8)
    assert one_hot_fraction(p[:, :1]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        one_hot_fraction(p, atol=0.5)
    # not one-hot even with a tolerance: a second entry beyond it, a max short of 1,
    # or a negative entry (exactly, by default)
    odd = torch.tensor([[[1.0, 0.0, 1e-3], [0.6, 0.0, 0.0], [1.0, -1e-7, 0.0]]])
    assert one_hot_fraction(odd, atol=1e-5) == pytest.approx(1 / 3)
    assert one_hot_fraction(odd) == 0.0


def test_mean_nonzeros() -> None:
    # 1, 2, 2, 1, 3, 1, 0, 2
    assert mean_nonzeros(_probs()) == pytest.approx(12 / 8)
    assert mean_nonzeros(torch.softmax(torch.randn(3, 5, 7), dim=-1)) == 7.0


def test_decode_argmax() -> None:
    ids = decode_argmax(_probs())
    assert ids.dtype == torch.int64
    assert ids.tolist() == [[0, 0, 0, 2], [0, 1, 0, 2]]  # [0.5, 0.5, 0] and all-zero rows: lowest id
    ties = torch.tensor([[[0.0, 0.5, 0.5], [0.25, 0.25, 0.5]]])
    assert decode_argmax(ties).tolist() == [[1, 2]]
    # one-hot round trip is exact
    tokens = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(7))
    assert torch.equal(decode_argmax(torch.nn.functional.one_hot(tokens, 11).float()), tokens)
