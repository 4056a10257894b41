"""The seed article's §4 training loop, as the baseline of bench_article.py.

Trains the way the article's example does: torchvision's MNIST through a
DataLoader with per-sample ``ToTensor`` + ``Normalize`` transforms, batch 64,
shuffled, no workers; a discriminator that ends in ``nn.Sigmoid`` and losses
``-mean(log(D(x)))`` / ``-mean(log(1 - D(G(z))))``; the generator's fake batch
computed with gradients and detached for the D step; Adam(2e-4, betas 0.5/0.999).

Departures, all needed to benchmark it: a step limit instead of 100 epochs,
the data root and device as arguments, no download (the benchmark writes the
IDX files), and one line of timing output at the end. The numerically unsafe
``log(sigmoid)`` stays on purpose: it is what is being compared against.

    python benchmarks/article_loop.py --data-root DIR --steps 400 --device cpu
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn, optim
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 100) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(True),
            nn.Linear(256, 512), nn.ReLU(True),
            nn.Linear(512, 1024), nn.ReLU(True),
            nn.Linear(1024, 784), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z).view(-1, 1, 28, 28)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(512, 256), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(256, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.view(-1, 784))


def train(data_root: str, steps: int, device: torch.device) -> None:
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = MNIST(root=data_root, download=False, transform=transform)
    dataloader = DataLoader(dataset, batch_size=64, shuffle=True)

    generator = Generator().to(device)
    discriminator = Discriminator().to(device)
    g_optimizer = optim.Adam(generator.parameters(), lr=0.0002, betas=(0.5, 0.999))
    d_optimizer = optim.Adam(discriminator.parameters(), lr=0.0002, betas=(0.5, 0.999))

    step, images = 0, 0
    start = time.perf_counter()
    while step < steps:
        for i, (real_samples, _) in enumerate(dataloader):
            real_samples = real_samples.to(device)
            d_optimizer.zero_grad()
            real_output = discriminator(real_samples)
            real_loss = -torch.mean(torch.log(real_output))
            latent_samples = torch.randn(real_samples.size(0), 100, device=device)
            fake_samples = generator(latent_samples)
            fake_output = discriminator(fake_samples.detach())
            fake_loss = -torch.mean(torch.log(1 - fake_output))
            d_loss = real_loss + fake_loss
            d_loss.backward()
            d_optimizer.step()

            g_optimizer.zero_grad()
            latent_samples = torch.randn(real_samples.size(0), 100, device=device)
            fake_samples = generator(latent_samples)
            fake_output = discriminator(fake_samples)
            g_loss = -torch.mean(torch.log(fake_output))
            g_loss.backward()
            g_optimizer.step()

            images += real_samples.size(0)
            step += 1
            if (i + 1) % 100 == 0:
                print(f"Step [{step}/{steps}], D_loss: {d_loss.item():.4f}, G_loss: {g_loss.item():.4f}")
            if step >= steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    print(f"article-loop: {steps} steps, {images} images in {elapsed:.3f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    train(args.data_root, args.steps, torch.device(args.device))
