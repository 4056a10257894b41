"""Text architectures: generators of token distributions and discriminators on them.

Text data has shape (L, V): L positions, a vocabulary of V tokens. A real sample
is L exact one-hot vectors; G maps noise z (B, latent_dim) to (B, L, V), one
probability distribution per position (float32), through the output mapping of
:mod:`ganlab_plugins.architectures.token_outputs` (``output``: softmax, sparsemax,
entmax or straight-through gumbel). D maps any float (B, L, V) — one-hots,
G's distributions, or interpolates of both as a gradient penalty makes them — to
raw scores (B, num_logits); the engine's head turns them into probabilities.

* ``lstm`` (:class:`LSTMTextArchitecture`): an autoregressive LSTM generator fed
  back its own output distributions through a token embedding, and an LSTM
  discriminator over embedded positions.
* ``conv`` (:class:`ConvTextArchitecture`): the 1-D residual convolutional G and D
  of Gulrajani et al. 2017's character-level WGAN-GP language model ("Improved
  Training of Wasserstein GANs", section 5.3), narrower by default.

Both discriminators are twice differentiable with respect to their input, as the
WGAN-GP gradient penalty needs (it differentiates ‖∇ₓD(x̂)‖ with respect to D's
weights). For the LSTM that rules out cuDNN, whose RNN backward cannot itself be
differentiated: see :class:`LSTMTextDiscriminator`.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ComponentError
from ganlab_plugins.architectures.common import check_build_args
from ganlab_plugins.architectures.token_outputs import check_output_options, make_output


def check_text_shape(arch: str, data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(L, V) of a text data shape; refuse anything else in one line."""
    if len(data_shape) != 2:
        raise ComponentError(f"architecture '{arch}' is for text data of shape (length, vocabulary), "
                             f"not {tuple(data_shape)}; use an image or vector architecture such as mlp or dcgan")
    length, vocab = data_shape
    if vocab < 2:
        raise ComponentError(f"architecture '{arch}' needs a vocabulary of at least 2 tokens, not {vocab}")
    return int(length), int(vocab)


def _check_width(arch: str, name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ComponentError(f"architecture '{arch}': {name} must be an integer >= 1, not {value!r}")
    return int(value)


# ---- lstm -------------------------------------------------------------------
class LSTMTextGenerator(nn.Module):
    """z → (h0, c0) by a linear layer, then L steps of an LSTM cell.

    The input at position t is the output distribution of position t − 1 times a
    (V × embedding) matrix — the embedding of a token when it is one-hot, the
    expected embedding when it is a mixture — and a learned start vector at t = 0.
    Each step's hidden state goes through a linear layer to V scores and the
    output mapping; the result is fed back (for ``gumbel``, the sampled one-hot,
    whose gradient is the straight-through one).
    """

    def __init__(self, latent_dim: int, length: int, vocab: int, hidden: int, embedding: int,
                 output: nn.Module) -> None:
        super().__init__()
        self.length, self.vocab, self.hidden = length, vocab, hidden
        self.init_state = nn.Linear(latent_dim, 2 * hidden)
        self.start = nn.Parameter(torch.zeros(embedding))
        self.embed = nn.Linear(vocab, embedding, bias=False)
        self.cell = nn.LSTMCell(embedding, hidden)
        self.to_logits = nn.Linear(hidden, vocab)
        self.output = output
        nn.init.normal_(self.start, std=0.1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, c = self.init_state(z).chunk(2, dim=-1)
        x = self.start.expand(z.shape[0], -1)
        steps: list[torch.Tensor] = []
        for _ in range(self.length):
            h, c = self.cell(x, (h, c))
            p = self.output(self.to_logits(h))
            steps.append(p)
            x = self.embed(p)
        return torch.stack(steps, dim=1).float()


class LSTMTextDiscriminator(nn.Module):
    """(B, L, V) @ embedding → LSTM → mean of the hidden states over positions → num_logits.

    Pooling: the mean over positions, not the last hidden state. With the last
    state only, the score reaches position t's input through L − t recurrent steps,
    so G's early positions get a weak, vanishing signal; with the mean every
    position's hidden state is one step from the score, while the last state (the
    whole sequence) is still one of the averaged terms.

    cuDNN: its RNN backward is not differentiable (PyTorch raises "double backward
    ... not supported" for cuDNN RNNs), but the WGAN-GP penalty differentiates the
    gradient ‖∇ₓD(x̂)‖ once more. On CUDA the LSTM therefore runs with cuDNN
    disabled (``torch.backends.cudnn.flags(enabled=False)``), i.e. PyTorch's own
    kernels, whose backward is differentiable when the graph is kept
    (``create_graph=True``); slower, but correct for every objective. On CPU
    nothing changes.
    """

    def __init__(self, vocab: int, hidden: int, embedding: int, num_logits: int) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab, embedding, bias=False)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.out = nn.Linear(hidden, num_logits)
        #: the width of ``features``: what an objective's own head on D reads (InfoGAN's Q)
        self.feature_dim = hidden

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled hidden state (B, hidden)."""
        e = self.embed(x.to(self.embed.weight.dtype))
        if e.is_cuda:
            with torch.backends.cudnn.flags(enabled=False):
                states, _ = self.lstm(e)
        else:
            states, _ = self.lstm(e)
        return states.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class TextArchitecture:
    """What the engine reads off every text architecture here."""

    text = True  # serves token sequences (L, V) only
    convolutional = False  # channels_last applies to 4-D tensors; these are 3-D
    samplewise_discriminator = True  # no batch statistics in D: real and fake can share one D call
    vectorisable = False  # an LSTM and Gumbel sampling under vmap are not verified: populations run seeds in turn


class LSTMTextArchitecture(TextArchitecture):
    """The ``lstm`` text architecture: autoregressive LSTM G, LSTM D (module docstring)."""

    def __init__(self, hidden: int = 128, embedding: int = 64, output: str = "softmax", alpha: float = 1.5,
                 tau: float = 1.0) -> None:
        check_output_options("lstm", output, alpha, tau)
        self.hidden = _check_width("lstm", "hidden", hidden)
        self.embedding = _check_width("lstm", "embedding", embedding)
        self.output, self.alpha, self.tau = output, float(alpha), float(tau)

    def build(self, data_shape: tuple[int, ...], latent_dim: int,
              num_logits: int) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        check_build_args("lstm", data_shape, latent_dim, num_logits)
        length, vocab = check_text_shape("lstm", data_shape)
        generator = LSTMTextGenerator(latent_dim, length, vocab, self.hidden, self.embedding,
                                      make_output(self.output, self.alpha, self.tau))
        discriminator = LSTMTextDiscriminator(vocab, self.hidden, self.embedding, num_logits)
        return generator, discriminator


# ---- conv (Gulrajani et al. 2017) ------------------------------------------
class ResBlock1d(nn.Module):
    """ReLU, Conv1d(k=5), ReLU, Conv1d(k=5); ``x + 0.3 · block(x)`` (Gulrajani et al. 2017's text ResBlock)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv1d(dim, dim, 5, padding=2),
                                   nn.ReLU(), nn.Conv1d(dim, dim, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * self.block(x)


class ConvTextGenerator(nn.Module):
    """Linear z → dim·L, reshape (B, dim, L), residual blocks, Conv1d(dim, V, 1), output mapping per position."""

    def __init__(self, latent_dim: int, length: int, vocab: int, dim: int, blocks: int, output: nn.Module) -> None:
        super().__init__()
        self.length, self.dim = length, dim
        self.project = nn.Linear(latent_dim, dim * length)
        self.blocks = nn.Sequential(*(ResBlock1d(dim) for _ in range(blocks)))
        self.to_logits = nn.Conv1d(dim, vocab, 1)
        self.output = output

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], self.dim, self.length)
        logits = self.to_logits(self.blocks(h)).transpose(1, 2)  # (B, L, V)
        return self.output(logits).float()


class ConvTextDiscriminator(nn.Module):
    """Conv1d(V, dim, 1) on (B, V, L), residual blocks, flatten, linear dim·L → num_logits."""

    def __init__(self, length: int, vocab: int, dim: int, blocks: int, num_logits: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(vocab, dim, 1)
        self.blocks = nn.Sequential(*(ResBlock1d(dim) for _ in range(blocks)))
        self.out = nn.Linear(dim * length, num_logits)
        #: the width of ``features``: what an objective's own head on D reads (InfoGAN's Q)
        self.feature_dim = dim * length

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual block's output, flattened (B, dim·L)."""
        h = self.embed(x.to(self.embed.weight.dtype).transpose(1, 2))
        return self.blocks(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class ConvTextArchitecture(TextArchitecture):
    """The ``conv`` text architecture: Gulrajani et al. 2017's residual Conv1d G and D (module docstring).

    The paper's networks have dim = 512, 5 residual blocks in each of G and D and
    softmax outputs; ``dim`` defaults to 128 here.
    """

    def __init__(self, dim: int = 128, blocks: int = 5, output: str = "softmax", alpha: float = 1.5,
                 tau: float = 1.0) -> None:
        check_output_options("conv", output, alpha, tau)
        self.dim = _check_width("conv", "dim", dim)
        if isinstance(blocks, bool) or int(blocks) != blocks or blocks < 0:
            raise ComponentError(f"architecture 'conv': blocks must be an integer >= 0, not {blocks!r}")
        self.blocks = int(blocks)
        self.output, self.alpha, self.tau = output, float(alpha), float(tau)

    def build(self, data_shape: tuple[int, ...], latent_dim: int,
              num_logits: int) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        check_build_args("conv", data_shape, latent_dim, num_logits)
        length, vocab = check_text_shape("conv", data_shape)
        generator = ConvTextGenerator(latent_dim, length, vocab, self.dim, self.blocks,
                                      make_output(self.output, self.alpha, self.tau))
        discriminator = ConvTextDiscriminator(length, vocab, self.dim, self.blocks, num_logits)
        return generator, discriminator
