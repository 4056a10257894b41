"""Text architectures (lstm, conv) and G's token output mappings: shapes, exact one-hots, gradients, refusals."""

from __future__ import annotations

import math

import pytest
import torch
from ganlab_plugins.architectures.text import ConvTextArchitecture, LSTMTextArchitecture
from ganlab_plugins.architectures.token_outputs import OUTPUTS, make_output

from ganlab.errors import ComponentError

LATENT = 8
SHAPE = (6, 5)  # (L, V)
SMALL = {LSTMTextArchitecture: {"hidden": 16, "embedding": 8}, ConvTextArchitecture: {"dim": 16, "blocks": 2}}
ARCHS = list(SMALL)
# every output, plus entmax with an alpha that takes the bisection path
OUTPUT_OPTIONS = [{"output": name} for name in OUTPUTS] + [{"output": "entmax", "alpha": 1.3}]


def build(cls, data_shape=SHAPE, num_logits=2, **options):
    return cls(**{**SMALL[cls], **options}).build(data_shape, LATENT, num_logits)


def option_id(options: dict) -> str:
    return "-".join(str(v) for v in options.values())


def one_hots(batch: int, shape=SHAPE) -> torch.Tensor:
    length, vocab = shape
    return torch.nn.functional.one_hot(torch.randint(vocab, (batch, length)), vocab).float()


def assert_distributions(p: torch.Tensor) -> None:
    assert p.dtype == torch.float32
    assert torch.isfinite(p).all()
    assert (p >= 0).all()
    assert (p.sum(dim=-1) - 1).abs().max().item() <= 1e-5


def assert_exact_one_hots(p: torch.Tensor) -> None:
    assert ((p == 0) | (p == 1)).all()
    assert (p.sum(dim=-1) == 1).all()


# ---- shapes -------------------------------------------------------------------
@pytest.mark.parametrize("cls", ARCHS)
@pytest.mark.parametrize("num_logits", [1, 2, 11])
@pytest.mark.parametrize("shape", [SHAPE, (1, 2), (9, 3)])
def test_shapes(cls, num_logits, shape):
    torch.manual_seed(0)
    G, D = build(cls, shape, num_logits)
    fake = G(torch.randn(3, LATENT))
    assert fake.shape == (3, *shape)
    assert_distributions(fake)
    for x in (fake, one_hots(3, shape)):
        scores = D(x)
        assert scores.shape == (3, num_logits)
        assert scores.dtype == torch.float32
    assert cls.text is True


@pytest.mark.parametrize("cls", ARCHS)
def test_discriminator_takes_any_float_input(cls):
    torch.manual_seed(0)
    _, D = build(cls)
    x = one_hots(4)
    expected = D(x)
    torch.testing.assert_close(D(x.double()), expected)
    # a mixture of one-hots and soft vectors, as a gradient penalty builds it
    soft = torch.softmax(torch.randn(4, *SHAPE), dim=-1)
    assert torch.isfinite(D(0.3 * x + 0.7 * soft)).all()


@pytest.mark.parametrize("cls", ARCHS)
def test_discriminator_has_no_batch_statistics(cls):
    """The architectures declare samplewise_discriminator: one sample's score must not depend on the batch."""
    torch.manual_seed(0)
    _, D = build(cls)
    x = one_hots(5)
    torch.testing.assert_close(D(x)[:2], D(x[:2]))
    assert cls.samplewise_discriminator is True


@pytest.mark.parametrize("cls", ARCHS)
def test_features_feed_the_scores(cls):
    torch.manual_seed(0)
    _, D = build(cls, num_logits=3)
    x = one_hots(2)
    features = D.features(x)
    assert features.shape == (2, D.feature_dim)
    torch.testing.assert_close(D.out(features), D(x))


# ---- output mappings ------------------------------------------------------------
@pytest.mark.parametrize("options", OUTPUT_OPTIONS, ids=option_id)
def test_outputs_are_distributions(options):
    torch.manual_seed(0)
    mapping = make_output(options["output"], alpha=options.get("alpha", 1.5))
    for scale in (0.1, 1.0, 30.0):
        logits = scale * torch.randn(4, 7, 11)
        p = mapping(logits)
        assert p.shape == logits.shape
        assert_distributions(p)
    # low precision scores still give float32 distributions
    assert_distributions(mapping(torch.randn(3, 11).to(torch.bfloat16)))


@pytest.mark.parametrize("options", [{"output": "sparsemax"}, {"output": "entmax"},
                                     {"output": "entmax", "alpha": 1.3}], ids=option_id)
def test_sparse_outputs_reach_exact_one_hots_and_zeros(options):
    torch.manual_seed(0)
    vocab = 9
    base = 0.1 * torch.randn(2, 5, vocab)
    winner = torch.randint(vocab, (2, 5))
    logits = base + 5.0 * torch.nn.functional.one_hot(winner, vocab)
    mapping = make_output(options["output"], alpha=options.get("alpha", 1.5))
    p = mapping(logits)
    assert torch.equal(p, torch.nn.functional.one_hot(winner, vocab).float())
    # two leaders tied far ahead of the rest: a sparse mixture, exact zeros elsewhere
    tied = torch.tensor([[4.0, 4.0, 0.0, -1.0, 0.5]])
    q = mapping(tied)
    assert (q[0, 2:] == 0).all()
    torch.testing.assert_close(q[0, :2], torch.tensor([0.5, 0.5]))
    # softmax on the same scores is never exactly one-hot: every token keeps some mass
    soft = make_output("softmax")(logits)
    assert (soft > 0).all()
    assert not ((soft == 0) | (soft == 1)).all()


def test_gumbel_forward_is_an_exact_one_hot_sample_of_the_softmax():
    torch.manual_seed(0)
    mapping = make_output("gumbel", tau=0.5)
    probs = torch.tensor([0.1, 0.2, 0.7])
    logits = probs.log().expand(20000, 3)
    samples = mapping(logits)
    assert_exact_one_hots(samples)
    frequencies = samples.mean(dim=0)
    # binomial standard error at n = 20000 is at most 0.0035: allow ~4.5 of them
    assert (frequencies - probs).abs().max().item() < 0.016


def test_gumbel_backward_is_the_relaxed_samples_gradient():
    torch.manual_seed(0)
    tau = 0.7
    logits = torch.randn(4, 6, requires_grad=True)
    weights = torch.randn(4, 6)
    torch.manual_seed(1)
    (make_output("gumbel", tau=tau)(logits) * weights).sum().backward()
    straight_through = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(1)  # the same Gumbel noise as in the mapping
    gumbels = -torch.empty_like(logits).exponential_().log()
    (torch.softmax((logits + gumbels) / tau, dim=-1) * weights).sum().backward()
    torch.testing.assert_close(straight_through, logits.grad)
    assert straight_through.abs().sum() > 0


@pytest.mark.parametrize("cls", ARCHS)
def test_gumbel_generator_emits_one_hots_and_trains(cls):
    torch.manual_seed(0)
    G, D = build(cls, output="gumbel", tau=0.5)
    fake = G(torch.randn(8, LATENT))
    assert_exact_one_hots(fake)
    D(fake).sum().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


# ---- gradients ------------------------------------------------------------------
@pytest.mark.parametrize("cls", ARCHS)
@pytest.mark.parametrize("options", OUTPUT_OPTIONS, ids=option_id)
def test_gradients_flow_from_scores_to_generator(cls, options):
    torch.manual_seed(0)
    G, D = build(cls, **options)
    D(G(torch.randn(4, LATENT)))[:, 0].sum().backward()
    for name, parameter in G.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    # the noise's first layer sees the score: z really drives the samples through the mapping
    first = G.init_state if cls is LSTMTextArchitecture else G.project
    assert first.weight.grad.abs().sum() > 0
    if cls is LSTMTextArchitecture:
        # the fed-back distribution enters the next step: the feedback embedding is trained
        assert G.embed.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", ARCHS)
def test_gradient_penalty_double_backward(cls):
    """WGAN-GP differentiates ‖∇ₓD(x̂)‖ with respect to D's weights: D must be twice differentiable in x."""
    torch.manual_seed(0)
    G, D = build(cls, num_logits=1)
    real = one_hots(4)
    fake = G(torch.randn(4, LATENT)).detach()
    eps = torch.rand(4, 1, 1)
    interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(interp).sum(), interp, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    for name, parameter in D.named_parameters():
        if name == "out.bias":  # a constant shift of the score: no part of ∇ₓD
            continue
        if cls is ConvTextArchitecture and name.endswith("bias"):
            # a ReLU network is piecewise linear: a bias only moves the kinks, so ∇ₓD is locally
            # constant in it and its penalty gradient is exactly zero (ReLU's second derivative)
            continue
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lstm_gradient_penalty_on_cuda():
    """cuDNN's RNN backward is not differentiable: the LSTM D must run without it."""
    torch.manual_seed(0)
    _, D = build(LSTMTextArchitecture, num_logits=1)
    D = D.cuda()
    interp = torch.softmax(torch.randn(4, *SHAPE, device="cuda"), dim=-1).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(interp).sum(), interp, create_graph=True)
    grad.norm().backward()
    assert D.lstm.weight_hh_l0.grad is not None
    assert torch.isfinite(D.lstm.weight_hh_l0.grad).all() and D.lstm.weight_hh_l0.grad.abs().sum() > 0


# ---- determinism ----------------------------------------------------------------
@pytest.mark.parametrize("cls", ARCHS)
@pytest.mark.parametrize("output", ["softmax", "gumbel"])
def test_deterministic_given_seed(cls, output):
    def run():
        torch.manual_seed(123)
        G, D = build(cls, output=output)
        fake = G(torch.randn(3, LATENT))
        return fake, D(fake)

    first, second = run(), run()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    torch.manual_seed(124)
    G, _ = build(cls, output=output)
    assert not torch.equal(G(torch.randn(3, LATENT)), first[0])


# ---- refusals -------------------------------------------------------------------
@pytest.mark.parametrize("cls", ARCHS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (784,), (6, 1)])
def test_build_refuses_non_text_shapes(cls, shape):
    with pytest.raises(ComponentError) as info:
        cls().build(shape, LATENT, 2)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", ARCHS)
def test_build_refuses_bad_build_args(cls):
    with pytest.raises(ComponentError):
        cls().build(SHAPE, 0, 2)
    with pytest.raises(ComponentError):
        cls().build(SHAPE, LATENT, 0)


@pytest.mark.parametrize("cls", ARCHS)
@pytest.mark.parametrize("options, words", [
    ({"output": "tanh"}, "softmax, sparsemax, entmax, gumbel"),
    ({"output": "entmax", "alpha": 1.0}, "alpha"),
    ({"output": "entmax", "alpha": 2.5}, "alpha"),
    ({"output": "gumbel", "tau": 0.0}, "tau"),
    ({"output": "gumbel", "tau": -1.0}, "tau"),
    ({"output": "gumbel", "tau": math.nan}, "tau"),
])
def test_bad_output_options_refused(cls, options, words):
    with pytest.raises(ComponentError, match=words) as info:
        cls(**options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls, options", [
    (LSTMTextArchitecture, {"hidden": 0}),
    (LSTMTextArchitecture, {"embedding": 0}),
    (LSTMTextArchitecture, {"hidden": 2.5}),
    (ConvTextArchitecture, {"dim": 0}),
    (ConvTextArchitecture, {"blocks": -1}),
])
def test_bad_widths_refused(cls, options):
    with pytest.raises(ComponentError, match=next(iter(options))):
        cls(**options)


def test_make_output_refuses_unknown_names():
    with pytest.raises(ComponentError, match="gumbel"):
        make_output("relu")


def test_conv_follows_gulrajani_blocks():
    """Each residual block: ReLU, Conv1d(k=5, pad 2), ReLU, Conv1d(k=5, pad 2), and x + 0.3·block(x)."""
    torch.manual_seed(0)
    G, D = ConvTextArchitecture(dim=8, blocks=3).build(SHAPE, LATENT, 1)
    for net in (G, D):
        assert len(net.blocks) == 3
        for block in net.blocks:
            kinds = [type(m).__name__ for m in block.block]
            assert kinds == ["ReLU", "Conv1d", "ReLU", "Conv1d"]
            assert all(m.kernel_size == (5,) and m.padding == (2,) for m in block.block if hasattr(m, "kernel_size"))
            x = torch.randn(2, 8, SHAPE[0])
            torch.testing.assert_close(block(x), x + 0.3 * block.block(x))
    assert (D.embed.in_channels, D.embed.out_channels, D.embed.kernel_size) == (SHAPE[1], 8, (1,))
    assert (G.to_logits.in_channels, G.to_logits.out_channels, G.to_logits.kernel_size) == (8, SHAPE[1], (1,))
