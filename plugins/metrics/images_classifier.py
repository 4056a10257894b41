"""The feature extractor of the image metrics: a small CNN classifier that ganlab
trains on the dataset's own training split (no Inception weights, no downloads).

Every input is resized to 32×32 first, so one architecture serves digits,
MNIST, Fashion-MNIST and CIFAR-10 at any ``size`` option with the same cost,
and the feature space is the same whatever resolution a run trains at.
Features are the 128-d penultimate layer (after its ReLU), as FID uses the
Inception pool layer.

A trained classifier is cached under ``<cache_dir>/feature-classifiers/``,
keyed by dataset name and options, data shape, a fingerprint of the training
split, and the training protocol; training is seeded independently of the
run, so every run on a dataset measures in the same feature space.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: bump when the architecture or the training recipe changes: old cache files are then ignored
VERSION = 1
INPUT_SIZE = 32
FEATURE_DIM = 128
ARCH = (f"ganlab-lenet v{VERSION}: input resized to {INPUT_SIZE}x{INPUT_SIZE}, conv4x4/2 16-32-64 + ReLU, "
        f"fc {FEATURE_DIM} + ReLU (features, scaled to unit mean square on the training split), fc K")
LR = 1e-3
BATCH = 64

#: classifiers trained in this process (an observable for tests: a cache hit trains nothing)
TRAININGS = 0


class FeatureNet(nn.Module):
    """A LeNet-sized classifier; ``features`` is its penultimate layer.

    Strided convolutions rather than convolution + pooling: a third of the
    cost for the same accuracy on digits (97% after 10 epochs). The features
    are divided by a constant fixed after training (``feature_scale``) so that
    their mean square over the training split is 1: the KID kernel
    (x·y/d + 1)³ then sees x·y/d of order 1, as with Inception features, instead
    of values in the hundreds whose cubes drown the estimate in variance.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),  # 4x4
            nn.Flatten(), nn.Linear(64 * 4 * 4, FEATURE_DIM), nn.ReLU(),
        )
        self.out = nn.Linear(FEATURE_DIM, num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (INPUT_SIZE, INPUT_SIZE):
            return x
        shrinking = x.shape[-1] > INPUT_SIZE or x.shape[-2] > INPUT_SIZE
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                             antialias=shrinking)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.resize(x)) / self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the classification layer reads the unscaled activations, so fixing the scale changes no prediction
        return self.out(self.body(self.resize(x)))


@dataclass
class TrainedClassifier:
    net: FeatureNet
    test_accuracy: float
    path: Path
    trained_now: bool

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, device: Any, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, 128), logits (N, K)) on the CPU in float32; the net runs on ``device``."""
        self.net.eval()
        feats, logits = [], []
        for start in range(0, len(x), batch):
            h = self.net.body(self.net.resize(x[start : start + batch].to(device, torch.float32)))
            feats.append((h / self.net.feature_scale).float().cpu())
            logits.append(self.net.out(h).float().cpu())
        return torch.cat(feats), torch.cat(logits)


def fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    """A cheap content hash of a training split: every label and up to 512 evenly spaced images."""
    digest = hashlib.sha256()
    digest.update(y.detach().cpu().to(torch.int64).numpy().tobytes())
    stride = max(1, len(x) // 512)
    digest.update(x[::stride].detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_path(cache_dir: Path, dataset: str, options: dict[str, Any], x: torch.Tensor, y: torch.Tensor,
               num_classes: int, epochs: int, seed: int) -> Path:
    blob = json.dumps({
        "dataset": dataset, "options": options, "shape": list(x.shape), "num_classes": num_classes,
        "data": fingerprint(x, y), "epochs": epochs, "seed": seed, "version": VERSION, "lr": LR, "batch": BATCH,
    }, sort_keys=True, default=str)
    return Path(cache_dir) / "feature-classifiers" / f"{dataset}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"


def accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor, device: Any) -> float:
    """Test accuracy with predictions restricted to ``classes`` (those the net was trained on)."""
    if len(x) == 0:
        return float("nan")
    _, logits = TrainedClassifier(net, 0.0, Path(), False).features_and_logits(x, device)
    pred = classes[logits[:, classes].argmax(dim=1)]
    return float((pred == y.cpu()).float().mean())


def train(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, seed: int, device: Any) -> FeatureNet:
    """Adam, cross-entropy, minibatches of BATCH (64) from a seeded permutation; no augmentation.

    Initialisation and shuffling draw from their own seeded RNG, and the global
    RNG state is restored afterwards: training the classifier never changes
    the GAN's trajectory.
    """
    global TRAININGS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(x.shape[1], num_classes)
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    x_dev, y_dev = x.to(device, torch.float32), y.to(device, torch.int64)
    net.train()
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen).to(x_dev.device)
            for start in range(0, len(x), BATCH):
                idx = perm[start : start + BATCH]
                loss = F.cross_entropy(net(x_dev[idx]), y_dev[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    net.eval()
    with torch.no_grad():
        sample = x_dev[torch.randperm(len(x), generator=gen)[:10_000].to(x_dev.device)]
        square = torch.cat([net.body(net.resize(sample[i : i + 512])).square().mean(dim=1)
                            for i in range(0, len(sample), 512)]).mean()
        net.feature_scale.fill_(float(square.sqrt().clamp_min(1e-12)))
    TRAININGS += 1
    return net


def load_or_train(cache_dir: Path, dataset: str, options: dict[str, Any], data: Any, classes: torch.Tensor,
                  epochs: int, seed: int, device: Any) -> TrainedClassifier:
    """The cached classifier of this training split and protocol, training (and caching) it when absent.

    The test accuracy is measured on the test images of ``classes`` at training
    time and stored with the weights.
    """
    num_classes = int(data.num_classes)
    path = cache_path(cache_dir, dataset, options, data.x, data.y, num_classes, epochs, seed)
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net = FeatureNet(data.x.shape[1], num_classes)
            net.load_state_dict(blob["state_dict"])
            return TrainedClassifier(net.to(device).eval(), float(blob["test_accuracy"]), path, False)
        except Exception as exc:  # a truncated or foreign file: retrain over it
            print(f"ganlab: feature classifier cache {path} unreadable ({type(exc).__name__}); retraining",
                  file=sys.stderr)
    net = train(data.x, data.y, num_classes, epochs, seed, device)
    keep = torch.isin(data.test_y.cpu(), classes)
    acc = accuracy(net, data.test_x[keep.to(data.test_x.device)], data.test_y.cpu()[keep], classes, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic: parallel sweep variants may train the same classifier at once, never read half a file
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "test_accuracy": acc,
                "arch": ARCH, "epochs": epochs, "seed": seed}, tmp)
    os.replace(tmp, path)
    return TrainedClassifier(net, acc, path, True)
