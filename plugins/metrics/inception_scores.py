"""FID, KID, IS and precision/recall from Inception features, each by torch-fidelity's own function.

Nothing here re-implements a metric: the functions below choose torch-fidelity's
arguments (the protocol) and name its results. Their random draws (KID's subsets,
the IS split order) use torch-fidelity's default seed, so a value is a function of
the two feature sets alone.
"""

from __future__ import annotations

from typing import Any

import torch

#: torch-fidelity's default ``rng_seed``: KID's subsets and the shuffle before IS's splits
SEED = 2020
#: IS: the mean and spread over 10 splits of the samples (Salimans et al. 2016; torch-fidelity's default)
IS_SPLITS = 10
#: rows of the distance matrix precision/recall holds at once (2,000 × 50,000 floats: 400 MB)
PR_BATCH = 2000


def fid(pool: torch.Tensor, mu: Any, sigma: Any) -> float:
    """Fréchet distance between the Gaussian of ``pool`` (n, 2048) and the reference statistics (float64)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    # float64 features: torch-fidelity's mean keeps its input's dtype, and the reference's is float64
    stats = fid_features_to_statistics(pool.detach().cpu().double())
    return float(fid_statistics_to_metric(stats, {"mu": mu, "sigma": sigma}, verbose=False)[KEY_METRIC_FID])


def kid(pool: torch.Tensor, reference: torch.Tensor, subsets: int, subset_size: int) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD² with kernel (x·y/d + 1)³ over ``subsets`` random subsets per set."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    out = kid_features_to_metric(pool.detach().cpu(), reference.cpu(), kid_subsets=subsets,
                                 kid_subset_size=subset_size, rng_seed=SEED, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def inception_score(logits: torch.Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """(mean, std) over ``splits`` splits of exp E[KL(p(y|x) ‖ p(y))], from the unbiased logits.

    Each split estimates p(y) from its own samples, so a split of one sample scores exactly 1.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    out = isc_features_to_metric(logits.detach().cpu(), splits=splits, shuffle=True, rng_seed=SEED)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def precision_recall(pool: torch.Tensor, reference: torch.Tensor, neighbours: int, device: Any) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019): the share of generated samples inside some real sample's k-NN ball
    (precision), and of real samples inside some generated sample's (recall).

    The distances run on ``device`` (an accelerator makes 50,000² of them cheap); torch-fidelity's
    blockwise variant (``save_cpu_ram``) gives the same values as its full one in bounded memory.
    """
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    out = prc_features_to_metric(pool.to(device), reference.to(device), prc_neighborhood=neighbours,
                                 prc_batch_size=PR_BATCH, save_cpu_ram=True, verbose=False)
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])
