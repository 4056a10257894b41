"""Benchmark 10: the text metrics' cost grows linearly with the number of samples (docs/text.md).

Self-BLEU scores every sample against all the others. Clipping each n-gram's count by its
largest count in the other samples, found afresh for every hypothesis, costs O(N²·L); ganlab's
``self_bleu`` counts every n-gram once over the whole set and keeps the largest and second
largest count, so a hypothesis looks up its clipping count (the second largest where it holds
the largest itself) and the whole set costs O(N·L).

Measured: ``self_bleu``, ``corpus_bleu`` and ``ngram_jsd`` (n = 1..4) on N random sequences of
length 32 over 29 tokens, for N = 250, 500, 1000: the median time and the growth exponent
log(t(1000) / t(250)) / log 4 (1 linear, 2 quadratic). Baseline, in the same run: the
per-hypothesis loop above at N = 125 and 250, and its time against ``self_bleu``'s at N = 250.

    python benchmarks/bench_text_stats.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

LENGTH, VOCABULARY, MAX_N = 32, 30, 4


def ngrams(row: list[int], n: int) -> Counter[tuple[int, ...]]:
    return Counter(tuple(row[i:i + n]) for i in range(len(row) - n + 1))


def per_hypothesis_self_bleu(rows: list[list[int]]) -> float:
    """Self-BLEU with every clipping count found by scanning the other samples: the O(N²·L) baseline."""
    counts = [[ngrams(row, n) for n in range(1, MAX_N + 1)] for row in rows]
    total = 0.0
    for i, row in enumerate(rows):
        log_precision = 0.0
        for n in range(MAX_N):
            clipped = sum(min(count, max(counts[j][n].get(gram, 0) for j in range(len(rows)) if j != i))
                          for gram, count in counts[i][n].items())
            log_precision += math.log(max(clipped, 0.1) / max(len(row) - n, 1)) / MAX_N
        total += math.exp(log_precision)  # equal lengths: no brevity penalty
    return total / len(rows)


def timed(work: Any, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return benchlib.median(seconds)


def main() -> None:
    args = benchlib.repeat_options(__doc__, repeat=5, quick=1)
    benchlib.warn_if_busy()
    print(benchlib.describe(benchlib.machine()))
    import torch

    from ganlab_plugins.metrics.text_stats import corpus_bleu, ngram_jsd, self_bleu

    def samples(n: int, seed: int) -> torch.Tensor:
        return torch.randint(1, VOCABULARY, (n, LENGTH), generator=torch.Generator().manual_seed(seed))

    sizes = (250, 500, 1000) if not args.quick else (50, 100, 200)
    ganlab_seconds: dict[int, dict[str, float]] = {}
    for n in sizes:
        a, b = samples(n, 1), samples(n, 2)
        ganlab_seconds[n] = {
            "self_bleu": timed(lambda: self_bleu(a), args.repeat),
            "corpus_bleu": timed(lambda: corpus_bleu(a, b), args.repeat),
            "ngram_jsd": timed(lambda: [ngram_jsd(a, b, k) for k in range(1, MAX_N + 1)], args.repeat),
        }
    small, large = sizes[0], sizes[-1]
    growth = {name: math.log(ganlab_seconds[large][name] / ganlab_seconds[small][name]) / math.log(large / small)
              for name in ganlab_seconds[small]}
    base_sizes = (small // 2, small)
    baseline = {n: timed(lambda n=n: per_hypothesis_self_bleu(samples(n, 1).tolist()), max(1, args.repeat // 2))
                for n in base_sizes}
    base_growth = math.log(baseline[small] / baseline[small // 2]) / math.log(2)
    rows = [[name, *(f"{ganlab_seconds[n][name] * 1000:.1f}" for n in sizes), f"{growth[name]:.2f}"]
            for name in ganlab_seconds[small]]
    rows.append(["per-hypothesis self-BLEU (baseline)", f"{baseline[small] * 1000:.1f}", "–", "–",
                 f"{base_growth:.2f} (N = {small // 2} to {small})"])
    print(benchlib.table(["function", *(f"ms at N = {n}" for n in sizes), "growth exponent"], rows))
    ratio = baseline[small] / ganlab_seconds[small]["self_bleu"]
    print(f"baseline / self_bleu at N = {small}: {ratio:.1f}x")
    benchlib.save_json(args.json, {"machine": benchlib.machine(), "sizes": sizes, "seconds": ganlab_seconds,
                                   "growth": growth, "baseline_seconds": baseline, "baseline_growth": base_growth,
                                   "baseline_over_self_bleu": ratio})


if __name__ == "__main__":
    main()
