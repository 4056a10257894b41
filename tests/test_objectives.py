"""GAN objectives: the sign of the game for every head, saturation, semi-supervised K+1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ganlab.data import TensorData
from ganlab.errors import ComponentError, ConfigError
from conftest import _registry, make
from ganlab.train.step import Step


def d_loss_of(objective, head, real_logits, fake_logits, real_labels=None):
    """The objective's D loss on given scores (hookspec 2.0: written on the step object)."""
    return objective.discriminator_loss(Step.of_scores(head, real_logits, fake_logits, real_labels=real_labels))


def g_loss_of(objective, head, fake_logits, real_logits=None):
    """The objective's G loss on given scores of its samples (and of a real batch, which most ignore)."""
    real = real_logits if real_logits is not None else fake_logits.detach()
    return objective.generator_loss(Step.of_scores(head, real, fake_logits, phase="g"))




HEADS = [("sigmoid", {}), ("softmax", {}), ("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.25})]
OBJECTIVES = ["nonsaturating", "minimax"]


def _hid(spec) -> str:
    return spec[0] + "".join(f"-{k}{v}" for k, v in spec[1].items())


def hand_set_discriminator(head, slope: float) -> torch.nn.Linear:
    """A linear D on 2-D inputs whose real-vs-fake margin is t = slope · x₀."""
    net = torch.nn.Linear(2, head.num_logits(1))
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[0, 0] = slope  # the real score (or the sigmoid's only score); fake score 0
    return net


def two_blobs(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 2, generator=g) * 0.1 + torch.tensor([1.0, 0.0])
    fake = torch.randn(n, 2, generator=g) * 0.1 + torch.tensor([-1.0, 0.0])
    return real, fake


def d_steps(head, d_loss, steps: int = 5, lr: float = 0.5) -> tuple[float, float, float, float]:
    """Train a zero-initialised linear D; p_real on real and fake, before and after."""
    real, fake = two_blobs()
    net = hand_set_discriminator(head, 0.0)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    with torch.no_grad():
        before = head.p_real(net(real)).mean().item(), head.p_real(net(fake)).mean().item()
    for _ in range(steps):
        opt.zero_grad()
        d_loss(head, net(real), net(fake), None).backward()
        opt.step()
    with torch.no_grad():
        after = head.p_real(net(real)).mean().item(), head.p_real(net(fake)).mean().item()
    return (*before, *after)


def g_steps(head, g_loss, steps: int = 5, lr: float = 0.5) -> tuple[float, float]:
    """Move generated samples against a fixed D (margin t ≈ −0.5, inside every head's
    support); p_real on them before and after."""
    _, fake = two_blobs()
    net = hand_set_discriminator(head, 0.5).requires_grad_(False)
    x = fake.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    before = head.p_real(net(x)).mean().item()
    for _ in range(steps):
        opt.zero_grad()
        (g_loss(head, net(x)) * len(x)).backward()  # a mean: scale to per-sample steps
        opt.step()
    return before, head.p_real(net(x)).mean().item()


def game_is_right(d: tuple[float, float, float, float], g: tuple[float, float]) -> bool:
    real0, fake0, real1, fake1 = d
    return real1 > real0 + 0.02 and fake1 < fake0 - 0.02 and g[1] > g[0] + 0.02


# --------------------------------------------------------------------------------------
# the sign of the game
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("objective_name", OBJECTIVES)
@pytest.mark.parametrize("spec", HEADS, ids=_hid)
def test_sign_of_the_game(spec, objective_name):
    head, objective = make("head", *spec[:1], **spec[1]), make("loss", objective_name)
    d = d_steps(head, lambda *a: d_loss_of(objective, *a))
    g = g_steps(head, lambda *a: g_loss_of(objective, *a))
    assert d[2] > d[0] + 0.02, f"D did not raise p_real on real: {d}"
    assert d[3] < d[1] - 0.02, f"D did not lower p_real on fake: {d}"
    assert g[1] > g[0] + 0.02, f"G did not raise p_real on its samples: {g}"
    assert game_is_right(d, g)


@pytest.mark.parametrize("spec", HEADS[1:], ids=_hid)
def test_seed_article_formulas_fail_the_sign_test(spec):
    """The article's §3.2: L_D = −log p_real(x) − log(1 − p_fake(G(z))), L_G = −log p_fake(G(z)).

    Since 1 − p_fake = p_real, its D loss is "real" on both batches and its G loss
    asks G to look fake. The check above must catch that.
    """
    head = make("head", spec[0], **spec[1])

    def article_d_loss(head, real_logits, fake_logits, _labels):
        return head.real_loss(real_logits).mean() + head.real_loss(fake_logits).mean()

    def article_g_loss(head, fake_logits):
        return head.fake_loss(fake_logits).mean()

    d, g = d_steps(head, article_d_loss), g_steps(head, article_g_loss)
    assert d[3] >= d[1]  # D now calls fakes *more* real
    assert g[1] < g[0]  # G learns to look fake
    assert not game_is_right(d, g)


def test_sigmoid_losses_match_bce_with_logits():
    head = make("head", "sigmoid")
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 1, generator=g) * 5, torch.randn(16, 1, generator=g) * 5
    bce = F.binary_cross_entropy_with_logits
    ns, mm = make("loss", "nonsaturating"), make("loss", "minimax")
    expected_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    torch.testing.assert_close(d_loss_of(ns, head, real, fake, None), expected_d)
    torch.testing.assert_close(d_loss_of(mm, head, real, fake, None), expected_d)
    torch.testing.assert_close(g_loss_of(ns, head, fake), bce(fake, torch.ones_like(fake)))
    torch.testing.assert_close(g_loss_of(mm, head, fake), -bce(fake, torch.zeros_like(fake)))


@pytest.mark.parametrize("spec", [("sparsemax", {}), ("entmax", {}), ("entmax", {"alpha": 1.25})], ids=_hid)
def test_minimax_generator_gradient_vanishes_exactly_with_sparse_heads(spec):
    """Once D rejects fakes with margin ≥ 1/(α−1), the minimax G gets exactly zero
    gradient; the non-saturating G keeps the constant slope of a confidently wrong FY loss."""
    head = make("head", spec[0], **spec[1])
    slope = 1.0
    net = hand_set_discriminator(head, slope).requires_grad_(False)
    x = torch.tensor([[-5.0, 0.0], [-6.0, 1.0]], requires_grad=True)  # t = −5, −6: beyond every margin here
    (grad_mm,) = torch.autograd.grad(g_loss_of(make("loss", "minimax"), head, net(x)), x)
    (grad_ns,) = torch.autograd.grad(g_loss_of(make("loss", "nonsaturating"), head, net(x)), x)
    assert (grad_mm == 0).all()
    # ∂ℓ/∂t = −1 per sample on the linear tail; g_loss is a mean over 2 samples
    torch.testing.assert_close(grad_ns[:, 0], torch.full((2,), -slope / 2))


@pytest.mark.parametrize("spec", [("sigmoid", {}), ("softmax", {})], ids=_hid)
def test_minimax_generator_gradient_decays_but_never_vanishes_with_cross_entropy(spec):
    head = make("head", spec[0], **spec[1])
    net = hand_set_discriminator(head, 1.0).requires_grad_(False)
    x = torch.tensor([[-5.0, 0.0]], requires_grad=True)
    (grad_mm,) = torch.autograd.grad(g_loss_of(make("loss", "minimax"), head, net(x)), x)
    (grad_ns,) = torch.autograd.grad(g_loss_of(make("loss", "nonsaturating"), head, net(x)), x)
    assert 0 < -grad_mm[0, 0] < 0.01 < 0.99 < -grad_ns[0, 0]


# --------------------------------------------------------------------------------------
# semi-supervised K+1
# --------------------------------------------------------------------------------------
CENTRES = torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6]])


def labelled_data(n_per_class: int = 20, seed: int = 0, test: bool = True) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per_class)
    x = CENTRES[y] + 0.3 * torch.randn(len(y), 2, generator=g)
    ty = torch.arange(3).repeat(10)
    tx = CENTRES[ty] + 0.3 * torch.randn(len(ty), 2, generator=g)
    return TensorData(x, y, num_classes=3, source="blobs", test_x=tx if test else None, test_y=ty if test else None)


def run_context(data, discriminator, seed: int = 0, batch_size: int = 8, compile: bool = False):
    return SimpleNamespace(
        config=SimpleNamespace(seed=seed, batch_size=batch_size, compile=compile), data=data, device=torch.device("cpu"),
        discriminator=discriminator, num_classes=data.num_classes,
    )


def test_labeled_option_is_declared_on_both_objectives():
    for name in OBJECTIVES:
        component = _registry().get("loss", name)
        assert component.options["labeled"].default == 0
        assert make("loss", name, labeled="25").labeled == 25
        with pytest.raises(ConfigError, match="loss.labeled"):
            make("loss", name, labeled=-1)


def test_plain_objective_needs_one_class_and_accepts_sigmoid():
    objective = make("loss", "nonsaturating")
    assert not objective.semi_supervised
    assert objective.num_classes(labelled_data()) == 1
    objective.check("sigmoid", make("head", "sigmoid"), labelled_data())  # no error


@pytest.mark.parametrize("objective_name", OBJECTIVES)
def test_semi_supervised_refuses_sigmoid_naming_both(objective_name):
    objective = make("loss", objective_name, labeled=12)
    with pytest.raises(ComponentError) as info:
        objective.check("sigmoid", make("head", "sigmoid"), labelled_data())
    message = str(info.value)
    assert "head 'sigmoid'" in message and f"loss '{objective_name}'" in message
    assert "softmax" in message and "loss.labeled=0" in message  # what would work


def test_semi_supervised_refuses_unlabelled_data_and_too_many_labels():
    objective = make("loss", "nonsaturating", labeled=12)
    unlabelled = TensorData(torch.zeros(30, 2), source="ring8")
    with pytest.raises(ComponentError, match="labeled=12.*ring8 has no class labels"):
        objective.num_classes(unlabelled)
    with pytest.raises(ComponentError, match="ring8 has no class labels"):
        objective.check("softmax", make("head", "softmax"), unlabelled)
    with pytest.raises(ComponentError, match="labeled=500 exceeds"):
        make("loss", "nonsaturating", labeled=500).check("softmax", make("head", "softmax"), labelled_data())
    assert objective.num_classes(labelled_data()) == 3


def test_labelled_subset_is_seeded_balanced_and_the_only_label_source():
    data = labelled_data()
    seen: list[torch.Tensor] = []
    head = make("head", "softmax")
    net = torch.nn.Linear(2, head.num_logits(3))

    def recording(x):
        seen.append(x)
        return net(x)

    objective = make("loss", "nonsaturating", labeled=10)
    with pytest.raises(RuntimeError, match="setup"):
        d_loss_of(objective, head, net(data.x[:4]), net(data.x[:4]), None)
    objective.setup(run_context(data, recording))
    index = objective.labeled_indices
    assert len(index) == 10 and len(set(index.tolist())) == 10
    counts = torch.bincount(data.y[index], minlength=3)
    assert counts.max() - counts.min() <= 1
    again = make("loss", "nonsaturating", labeled=10)
    again.setup(run_context(data, net))
    other = make("loss", "nonsaturating", labeled=10)
    other.setup(run_context(data, net, seed=1))
    assert torch.equal(again.labeled_indices, index) and not torch.equal(other.labeled_indices, index)
    # real_labels are never used: an invalid class would crash cross-entropy
    bogus = torch.full((8,), 99)
    for _ in range(4):
        d_loss_of(objective, head, net(data.x[:8]), net(data.x[:8]), bogus)
    allowed = {tuple(row.tolist()) for row in data.x[index]}
    assert len(seen) == 4 and all(tuple(row.tolist()) in allowed for batch in seen for row in batch)


@pytest.mark.slow
def test_compiled_labelled_batches_compile_once_not_every_step():
    # Under torch.compile the labelled sampler is left out of the graph: traced, its Python counters
    # would be constants of the graph and every step would compile a new one.
    import torch._dynamo
    from torch._dynamo.utils import counters

    data, head = labelled_data(), make("head", "softmax")
    net = torch.nn.Linear(2, 4)
    objective = make("loss", "nonsaturating", labeled=9)
    objective.setup(run_context(data, net, batch_size=4, compile=True))
    step = torch.compile(lambda: objective.supervised_loss(head), backend="eager")
    torch._dynamo.reset()
    counters.clear()
    try:
        losses = [step() for _ in range(6)]
        graphs = counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    assert all(torch.isfinite(loss) for loss in losses)
    assert 1 <= graphs <= 2, graphs  # the loss around the sampler, compiled once


def test_labelled_batches_resume_from_state_dict():
    data, head = labelled_data(), make("head", "softmax")
    net = torch.nn.Linear(2, 4)
    seen: list[torch.Tensor] = []
    objective = make("loss", "minimax", labeled=9)
    objective.setup(run_context(data, lambda x: seen.append(x) or net(x), batch_size=4))
    objective.supervised_loss(head)
    state = objective.state_dict()
    objective.supervised_loss(head)
    objective.load_state_dict(state)
    objective.supervised_loss(head)
    assert torch.equal(seen[1], seen[2]) and not torch.equal(seen[0], seen[1])
    # a resume restores the state before the engine sets the objective up: it waits for setup
    resumed = make("loss", "minimax", labeled=9)
    resumed.load_state_dict(state)
    resumed.setup(run_context(data, lambda x: seen.append(x) or net(x), batch_size=4))
    resumed.supervised_loss(head)
    assert torch.equal(seen[3], seen[1])


@pytest.mark.parametrize("objective_name", OBJECTIVES)
@pytest.mark.parametrize("spec", HEADS[1:], ids=_hid)
def test_semi_supervised_game_and_classes(spec, objective_name):
    """K+1 D steps: p_real rises on real, falls on fake, and D learns the classes
    from the labelled subset; G steps raise p_real on generated samples."""
    torch.manual_seed(0)
    head = make("head", spec[0], **spec[1])
    data = labelled_data()
    objective = make("loss", objective_name, labeled=6)
    objective.check(spec[0], head, data)
    net = torch.nn.Linear(2, head.num_logits(objective.num_classes(data)))
    with torch.no_grad():
        net.weight.mul_(0.01)
        net.bias.zero_()
    objective.setup(run_context(data, net))
    fake = 0.1 * torch.randn(60, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    with torch.no_grad():
        real0, fake0 = head.p_real(net(data.x)).mean().item(), head.p_real(net(fake)).mean().item()
    for _ in range(40):
        opt.zero_grad()
        d_loss_of(objective, head, net(data.x), net(fake), None).backward()
        opt.step()
    with torch.no_grad():
        real1, fake1 = head.p_real(net(data.x)).mean().item(), head.p_real(net(fake)).mean().item()
        accuracy = (head.predict_class(net(data.test_x)) == data.test_y).float().mean().item()
    assert real1 > real0 + 0.05 and fake1 < fake0 - 0.05, (real0, real1, fake0, fake1)
    assert accuracy >= 0.9
    # G against the trained, frozen D: samples move towards "real"
    net.requires_grad_(False)
    x = (fake[:16] + torch.tensor([1.0, 0.0])).requires_grad_(True)  # off-centre: D's gradient is not symmetric
    before = head.p_real(net(x)).mean().item()
    opt_g = torch.optim.SGD([x], lr=0.2)
    for _ in range(10):
        opt_g.zero_grad()
        (g_loss_of(objective, head, net(x)) * len(x)).backward()
        opt_g.step()
    assert head.p_real(net(x)).mean().item() > before + 0.02


def test_ssl_metric_reports_test_accuracy_or_unlabelled_accuracy():
    head = make("head", "softmax")
    metric = make("metric", "ssl")
    assert metric.applies_to(SimpleNamespace(objective=make("loss", "nonsaturating", labeled=5)))
    assert not metric.applies_to(SimpleNamespace(objective=make("loss", "nonsaturating")))
    net = torch.nn.Linear(2, 4)
    with torch.no_grad():  # class k scores ⟨centre_k, x⟩: right on well-separated blobs
        net.weight.zero_()
        net.bias.zero_()
        net.weight[:3] = CENTRES
    data = labelled_data()
    objective = make("loss", "nonsaturating", labeled=6)
    objective.setup(run_context(data, net))

    def context(d, discriminate):
        return SimpleNamespace(data=d, head=head, device=torch.device("cpu"), objective=objective,
                               discriminate=discriminate, params={})

    with torch.no_grad():
        assert metric.evaluate(context(data, net)) == {"ssl.test_accuracy": 1.0}
        shuffled = lambda x: net(x)[:, [1, 2, 0, 3]]  # noqa: E731 - every class wrong
        assert metric.evaluate(context(data, shuffled)) == {"ssl.test_accuracy": 0.0}
        ctx = context(labelled_data(test=False), net)
        assert metric.evaluate(ctx) == {"ssl.unlabeled_accuracy": 1.0}
        assert ctx.params["ssl.unlabeled_accuracy.examples"] == 60 - 6


# --------------------------------------------------------------------------------------
# margin objectives: hinge and least squares on D's score
# --------------------------------------------------------------------------------------
MARGIN = ["hinge", "least-squares", "wasserstein"]


def margin_reference(name: str, s_real: torch.Tensor, s_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D loss, G loss) in float64, from the papers' formulas."""
    r, f = s_real.double(), s_fake.double()
    if name == "hinge":
        return (1 - r).clamp(min=0).mean() + (1 + f).clamp(min=0).mean(), -f.mean()
    if name == "wasserstein":
        return f.mean() - r.mean(), -f.mean()
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(), 0.5 * ((f - 1) ** 2).mean()


@pytest.mark.parametrize("name", MARGIN)
def test_margin_objectives_are_their_closed_forms(name):
    head, objective = make("head", "sigmoid"), make("loss", name)
    g = torch.Generator().manual_seed(3)
    s_real, s_fake = torch.randn(64, 1, generator=g) * 2, torch.randn(64, 1, generator=g) * 2
    d_expected, g_expected = margin_reference(name, s_real[:, 0], s_fake[:, 0])
    torch.testing.assert_close(d_loss_of(objective, head, s_real, s_fake).double(), d_expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_loss_of(objective, head, s_fake).double(), g_expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", MARGIN)
def test_sign_of_the_margin_games(name):
    """D raises its score on real samples and G on its own; on fakes hinge D pushes the score below
    −1, while least-squares D aims it at its fake target 0, where a zero-initialised D already is."""
    head, objective = make("head", "sigmoid"), make("loss", name)
    real0, fake0, real1, fake1 = d_steps(head, lambda *a: d_loss_of(objective, *a))
    g0, g1 = g_steps(head, lambda *a: g_loss_of(objective, *a))
    assert real1 > real0 + 0.02 and g1 > g0 + 0.02
    if name in ("hinge", "wasserstein"):
        assert fake1 < fake0 - 0.02
    else:
        assert abs(fake1 - fake0) < 0.02


def test_hinge_generator_keeps_its_gradient_when_d_rejects_confidently():
    """Unlike the minimax game, hinge G's gradient is −1/B per sample however far D pushes its samples."""
    objective = make("loss", "hinge")
    s_fake = torch.full((8, 1), -50.0, requires_grad=True)
    g_loss_of(objective, make("head", "sigmoid"), s_fake).backward()
    torch.testing.assert_close(s_fake.grad, torch.full((8, 1), -1 / 8))


@pytest.mark.parametrize("name", MARGIN)
@pytest.mark.parametrize("head_name", ["softmax", "sparsemax", "entmax"])
def test_margin_objectives_refuse_two_score_heads_in_one_line(workdir, name, head_name):
    from conftest import run_in_process

    done = run_in_process(["run", "--loss", name, "--head", head_name, "--steps", "1", "--no-tracking"], workdir)
    assert done.returncode == 2 and "use --head sigmoid" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_wasserstein_without_a_lipschitz_regulariser_warns_and_with_gp_does_not(workdir, monkeypatch):
    from conftest import run_in_process
    from ganlab_plugins.objectives import games

    monkeypatch.setattr(games, "_WARNED", set())  # the warning is once per process: this test's process

    bare = run_in_process(["run", "--loss", "wasserstein", "--dataset", "ring8", "--steps", "1", "--no-tracking"],
                          workdir)
    assert bare.returncode == 0 and "without a Lipschitz constraint" in bare.stderr
    with_gp = run_in_process(["run", "--loss", "wasserstein", "--reg", "gp", "--dataset", "ring8", "--steps", "1",
                              "--no-tracking"], workdir)
    assert with_gp.returncode == 0 and "Lipschitz" not in with_gp.stderr


# --------------------------------------------------------------------------------------
# the relativistic average game, through each head's own losses
# --------------------------------------------------------------------------------------
def test_relativistic_with_sigmoid_is_rasgan_in_closed_form():
    """Jolicoeur-Martineau's RaSGAN: D minimises −E log σ(C(x_r) − E C(x_f)) − E log(1 − σ(C(x_f) − E C(x_r)));
    G the same with real and fake swapped."""
    objective, head = make("loss", "relativistic"), make("head", "sigmoid")
    g = torch.Generator().manual_seed(5)
    c_real, c_fake = torch.randn(32, 1, generator=g, dtype=torch.float64), torch.randn(32, 1, generator=g, dtype=torch.float64)

    def rasgan(a, b):
        return -torch.log(torch.sigmoid(a - b.mean())).mean() - torch.log(1 - torch.sigmoid(b - a.mean())).mean()

    torch.testing.assert_close(d_loss_of(objective, head, c_real, c_fake).double(), rasgan(c_real, c_fake), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_loss_of(objective, head, c_fake, c_real).double(), rasgan(c_fake, c_real),
                               rtol=1e-6, atol=1e-7)


def test_relativistic_with_two_class_heads_is_each_heads_loss_of_the_margin_difference():
    """(Heads compute their losses in float32; the references are float64.) Softmax on a difference of score vectors is the logistic loss of the margin difference (RaSGAN
    again); sparsemax's Fenchel–Young loss of it is a quarter of the modified Huber loss: the heads differ."""
    g = torch.Generator().manual_seed(6)
    z_real, z_fake = torch.randn(16, 2, generator=g, dtype=torch.float64) * 2, torch.randn(16, 2, generator=g, dtype=torch.float64) * 2
    m_real, m_fake = z_real[:, 0] - z_real[:, 1], z_fake[:, 0] - z_fake[:, 1]
    a, b = m_real - m_fake.mean(), m_fake - m_real.mean()
    objective = make("loss", "relativistic")
    softmax = d_loss_of(objective, make("head", "softmax"), z_real, z_fake).double()
    torch.testing.assert_close(softmax, F.softplus(-a).mean() + F.softplus(b).mean(), rtol=1e-6, atol=1e-7)
    sparsemax = d_loss_of(objective, make("head", "sparsemax"), z_real, z_fake).double()
    torch.testing.assert_close(sparsemax, (modified_huber(a).mean() + modified_huber(-b).mean()) / 4,
                               rtol=1e-6, atol=1e-7)
    assert abs(float(softmax - sparsemax)) > 1e-3


@pytest.mark.parametrize("spec", HEADS, ids=_hid)
def test_sign_of_the_relativistic_game(spec):
    head, objective = make("head", spec[0], **spec[1]), make("loss", "relativistic")
    d = d_steps(head, lambda *a: d_loss_of(objective, *a))
    real, _ = two_blobs()
    net = hand_set_discriminator(head, 0.5).requires_grad_(False)
    g = g_steps(head, lambda h, fake_logits: g_loss_of(objective, h, fake_logits, net(real)))
    assert game_is_right(d, g), (d, g)


def test_relativistic_g_loss_sees_the_real_batch_in_training():
    """The G update scores the last D step's real batch (step.real): a G step with another real
    batch would give another loss."""
    from ganlab.testing import run_steps

    values = run_steps(loss="relativistic", head="entmax", dataset="tiny-vectors", steps=3)
    assert all(v > 0 for v in values["loss.g"]) and len(values["loss.g"]) == 3


def modified_huber(m: torch.Tensor) -> torch.Tensor:
    """Zhang (2004): max(0, 1 − m)² for m ≥ −1, −4m below."""
    return torch.where(m >= -1, (1 - m).clamp(min=0) ** 2, -4 * m)


def test_the_wasserstein_warning_is_said_once_per_process_not_per_replica(workdir, monkeypatch):
    from conftest import run_in_process
    from ganlab_plugins.objectives import games

    monkeypatch.setattr(games, "_WARNED", set())
    done = run_in_process(["run", "--loss", "wasserstein", "--dataset", "ring8", "--steps", "1", "--seeds", "0-2",
                           "--batch-size", "8", "--no-tracking"], workdir)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("without a Lipschitz constraint") == 1
