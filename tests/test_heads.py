"""Output heads: numerics, closed forms, Fenchel–Young losses vs float64 references, compile.

References are computed independently in float64 (numpy bisection for α-entmax,
logsumexp for softmax, the entmax package's loss classes) — never with the code
under test.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import _registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganlab.errors import ComponentError, ConfigError


def make_head(name: str, **options):
    return _registry().get("head", name).create(options)


# (name, options, alpha of its regulariser; 1.0 = Shannon / softmax, None = sigmoid)
HEADS = [
    ("sigmoid", {}, None),
    ("softmax", {}, 1.0),
    ("sparsemax", {}, 2.0),
    ("entmax", {}, 1.5),
    ("entmax", {"alpha": 1.25}, 1.25),
    ("entmax", {"alpha": 2.0}, 2.0),
]
MULTI = [h for h in HEADS if h[0] != "sigmoid"]
SPARSE = [h for h in HEADS if h[2] is not None and h[2] > 1.0]


def _id(spec) -> str:
    name, options, _ = spec
    return name + "".join(f"-{k}{v}" for k, v in options.items())


# --------------------------------------------------------------------------------------
# float64 references
# --------------------------------------------------------------------------------------
def ref_map(z: np.ndarray, alpha: float) -> np.ndarray:
    """α-entmax of one score vector in float64 by bisection on the threshold (α=1: softmax)."""
    z = np.asarray(z, dtype=np.float64)
    if alpha == 1.0:
        e = np.exp(z - z.max())
        return e / e.sum()
    x = (alpha - 1.0) * (z - z.max())
    lo, hi = -1.0, 0.0  # Σ p(τ) ≥ 1 at τ = max − 1, ≤ 1 at τ = max

    def p_of(tau: float) -> np.ndarray:
        return np.clip(x - tau, 0.0, None) ** (1.0 / (alpha - 1.0))

    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if p_of(mid).sum() >= 1.0:
            lo = mid
        else:
            hi = mid
    p = p_of(lo)
    return p / p.sum()


def ref_conjugate(z: np.ndarray, alpha: float) -> float:
    """Ω*(z) = max_p ⟨p, z⟩ − Ω(p) in float64."""
    z = np.asarray(z, dtype=np.float64)
    if alpha == 1.0:
        m = z.max()
        return float(m + np.log(np.exp(z - m).sum()))
    p = ref_map(z, alpha)
    return float(p @ z + (1.0 - (p**alpha).sum()) / (alpha * (alpha - 1.0)))


def ref_fy_loss(z: np.ndarray, y: int, alpha: float) -> float:
    return ref_conjugate(z, alpha) - float(z[y])


def finite_diff(f, z: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(z, dtype=np.float64)
    for i in range(len(z)):
        up, down = z.astype(np.float64).copy(), z.astype(np.float64).copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


# --------------------------------------------------------------------------------------
# registration and options
# --------------------------------------------------------------------------------------
def test_plugin_modules_import_no_torch():
    code = (
        "import sys, ganlab_plugins.heads, ganlab_plugins.objectives, ganlab_plugins.metrics;"
        "heavy = [m for m in ('torch', 'entmax', 'mlflow') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_heads_registered_with_metadata():
    registry = _registry()
    assert {"sigmoid", "softmax", "sparsemax", "entmax"} <= set(registry.names("head"))
    entmax = registry.get("head", "entmax")
    assert entmax.options["alpha"].default == 1.5
    assert entmax.provenance.plugin == "heads"
    assert entmax.metadata["sparse"] is True and registry.get("head", "softmax").metadata["sparse"] is False


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5, -1.0])
def test_entmax_refuses_alpha_outside_range(alpha):
    with pytest.raises(ConfigError, match=r"head\.alpha.*1 < alpha <= 2"):
        make_head("entmax", alpha=alpha)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf")])
def test_entmax_refuses_a_non_finite_alpha(alpha):
    # every float option refuses nan and inf before its own range check
    with pytest.raises(ConfigError, match=r"head\.alpha must be a finite number"):
        make_head("entmax", alpha=alpha)


def test_entmax_alpha_from_cli_string_changes_mapping():
    default, custom = make_head("entmax"), make_head("entmax", alpha="1.25")
    assert custom.alpha == 1.25 and default.alpha == 1.5
    z = torch.tensor([[1.0, 0.0, -0.5]])
    assert not torch.allclose(default.probs(z), custom.probs(z))


def test_entmax15_uses_exact_mapping_others_bisection(monkeypatch):
    import entmax

    calls = []
    monkeypatch.setattr(entmax, "entmax15", lambda z, dim=-1: calls.append("15") or torch.softmax(z, dim))
    monkeypatch.setattr(entmax, "entmax_bisect", lambda z, alpha, dim=-1: calls.append(alpha) or torch.softmax(z, dim))
    z = torch.zeros(2, 3)
    make_head("entmax").probs(z)
    make_head("entmax", alpha=1.75).probs(z)
    assert calls == ["15", 1.75]


def test_num_logits():
    assert make_head("sigmoid").num_logits(1) == 1
    with pytest.raises(ComponentError, match="sigmoid.*softmax, sparsemax or entmax"):
        make_head("sigmoid").num_logits(10)
    for name, options, _ in MULTI:
        head = make_head(name, **options)
        assert head.num_logits() == 2 and head.num_logits(10) == 11
        assert head.sparse == (name != "softmax")


def test_wrong_score_shape_is_refused_clearly():
    with pytest.raises(ComponentError, match="num_logits"):
        make_head("softmax").probs(torch.zeros(4, 1))


# --------------------------------------------------------------------------------------
# property tests: every head, many shapes and magnitudes, fp32 and bf16 autocast
# --------------------------------------------------------------------------------------
def _exercise(head, z: torch.Tensor, bf16: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    z = (z.to(torch.bfloat16) if bf16 else z).detach().requires_grad_(True)
    batch, classes = z.shape
    target = torch.arange(batch) % max(classes, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = {
            "probs": head.probs(z),
            "p_real": head.p_real(z),
            "real_loss": head.real_loss(z),
            "fake_loss": head.fake_loss(z),
            "loss": head.loss(z, target),
        }
        if classes >= 3:
            out["class_loss"] = head.class_loss(z, torch.arange(batch) % (classes - 1))
    total = sum(v.sum() for k, v in out.items() if k != "probs") + out["probs"][:, 0].sum()
    (grad,) = torch.autograd.grad(total, z)
    return out, grad


@pytest.mark.parametrize("spec", HEADS, ids=_id)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_head_numerics_property(spec, data):
    name, options, _ = spec
    head = make_head(name, **options)
    batch = data.draw(st.integers(1, 4), label="batch")
    classes = 1 if name == "sigmoid" else data.draw(st.integers(2, 6), label="classes")
    values = data.draw(
        st.lists(st.floats(-1e4, 1e4, width=32), min_size=batch * classes, max_size=batch * classes),
        label="scores",
    )
    scale = data.draw(st.sampled_from([1.0, 1e-2, 1e-5]), label="scale")
    z = torch.tensor(values, dtype=torch.float32).reshape(batch, classes) * scale
    for bf16 in (False, True):
        out, grad = _exercise(head, z, bf16)
        for key, value in out.items():
            assert value.dtype == torch.float32, (key, bf16)  # heads compute in float32
            assert torch.isfinite(value).all(), (key, bf16, value)
        assert torch.isfinite(grad).all(), (bf16, grad)
        probs = out["probs"]
        assert probs.shape == (batch, max(classes, 2))
        assert (probs >= 0).all()
        torch.testing.assert_close(probs.sum(-1), torch.ones(batch), atol=2e-5, rtol=0)
        torch.testing.assert_close(out["p_real"], 1 - probs[:, -1], atol=2e-5, rtol=0)
        # proper losses are non-negative (up to float32 rounding of the inputs' magnitude)
        slack = 1e-6 * (1.0 + float(z.abs().max()))
        for key in ("real_loss", "fake_loss", "loss", "class_loss"):
            if key in out:
                assert (out[key] >= -slack).all(), (key, out[key])


def test_head_methods_run_in_float32_with_autocast_off():
    """Defensive: no head op may be autocast to bf16, even ones added later (matmul, einsum)."""
    from ganlab_plugins.heads.torch_heads import float32_head

    seen = []

    class Probe:
        @float32_head
        def method(self, logits):
            seen.append((torch.is_autocast_enabled("cpu"), logits.dtype))
            return logits

    with torch.autocast("cpu", dtype=torch.bfloat16):
        Probe().method(torch.zeros(2, 2, dtype=torch.bfloat16))
    assert seen == [(False, torch.float32)]


# --------------------------------------------------------------------------------------
# two-class closed forms (docs/heads.md, "The heads") for every head
# --------------------------------------------------------------------------------------
T = torch.tensor([-1e4, -50.0, -3.0, -2.0, -1.5, -1.0, -0.7, -0.2, 0.0, 0.3, 0.99, 1.0, 1.7, 2.0, 2.5, 40.0, 1e4])


def _two(t: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    return torch.stack([t + offset, torch.full_like(t, offset)], dim=-1)


def closed_p_real(name: str, alpha: float | None, t: torch.Tensor) -> torch.Tensor:
    t = t.double()
    if name in ("sigmoid", "softmax"):
        return torch.sigmoid(t)
    if alpha == 2.0:
        return ((t + 1) / 2).clamp(0, 1)
    assert alpha == 1.5
    inside = (t + torch.sqrt((8 - t**2).clamp(min=0))) ** 2 / 16
    return torch.where(t >= 2, torch.ones_like(t), torch.where(t <= -2, torch.zeros_like(t), inside))


@pytest.mark.parametrize("spec", [h for h in HEADS if h[2] in (None, 1.0, 1.5, 2.0)], ids=_id)
@pytest.mark.parametrize("offset", [0.0, 7.0])
def test_two_class_closed_forms(spec, offset):
    name, options, alpha = spec
    head = make_head(name, **options)
    z = T.unsqueeze(-1) if name == "sigmoid" else _two(T, offset)
    expected = closed_p_real(name, alpha, T)
    p_real = head.p_real(z).double()
    torch.testing.assert_close(p_real, expected, atol=1e-6, rtol=1e-6)
    if head.sparse:  # exact saturation outside the margin, not merely close
        margin = 1.0 / (alpha - 1.0)
        assert (p_real[T >= margin] == 1).all() and (p_real[T <= -margin] == 0).all()
    probs = head.probs(z).double()
    torch.testing.assert_close(probs[:, 0], expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(probs[:, 1], 1 - expected, atol=1e-6, rtol=1e-6)


def test_two_class_closed_form_losses():
    t = T.double()
    cross_entropy = torch.nn.functional.softplus(-t)  # −log σ(t) for target real
    huber = torch.where(t >= 1, torch.zeros_like(t), torch.where(t > -1, (1 - t) ** 2 / 4, -t))
    for name, expected in [("softmax", cross_entropy), ("sparsemax", huber)]:
        head = make_head(name)
        torch.testing.assert_close(head.real_loss(_two(T, 3.0)).double(), expected, atol=1e-5, rtol=1e-6)
        # fake loss is the mirror image: swap the scores
        torch.testing.assert_close(head.fake_loss(_two(-T, 3.0)).double(), expected, atol=1e-5, rtol=1e-6)
    sigmoid = make_head("sigmoid")
    torch.testing.assert_close(sigmoid.real_loss(T.unsqueeze(-1)).double(), cross_entropy, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(sigmoid.fake_loss(-T.unsqueeze(-1)).double(), cross_entropy, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("alpha", [1.25, 1.5, 1.75, 2.0])
def test_entmax_saturates_exactly_at_margin(alpha):
    margin = 1.0 / (alpha - 1.0)
    head = make_head("entmax", alpha=alpha)
    t = torch.tensor([margin, margin + 0.5, margin * 0.9, -margin, -margin * 0.9])
    p = head.p_real(_two(t))
    assert p[0] == 1 and p[1] == 1 and 0.5 < p[2] < 1
    assert p[3] == 0 and 0 < p[4] < 0.5
    # the FY loss (and so its gradient) is exactly zero past the margin
    z = _two(t).requires_grad_(True)
    loss = head.real_loss(z)
    loss.sum().backward()
    assert loss[0] == 0 and loss[1] == 0 and loss[2] > 0
    assert (z.grad[:2] == 0).all() and (z.grad[2] != 0).all()


def test_softmax_of_score_and_zero_is_sigmoid():
    s = torch.linspace(-30, 30, 241)
    softmax, sigmoid = make_head("softmax"), make_head("sigmoid")
    z = _two(s)
    torch.testing.assert_close(softmax.probs(z)[:, 0], torch.sigmoid(s), atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(softmax.p_real(z), sigmoid.p_real(s.unsqueeze(-1)), atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(softmax.real_loss(z), sigmoid.real_loss(s.unsqueeze(-1)), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(softmax.fake_loss(z), sigmoid.fake_loss(s.unsqueeze(-1)), atol=1e-6, rtol=1e-6)


def test_entmax_alpha_2_is_sparsemax():
    z = torch.randn(64, 5, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.arange(64) % 5
    entmax2, sparsemax = make_head("entmax", alpha=2.0), make_head("sparsemax")
    torch.testing.assert_close(entmax2.probs(z), sparsemax.probs(z), atol=1e-5, rtol=0)
    torch.testing.assert_close(entmax2.loss(z, y), sparsemax.loss(z, y), atol=1e-5, rtol=0)


def test_entmax_approaches_softmax_as_alpha_goes_to_1():
    z = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)) * 2
    softmax = make_head("softmax").probs(z)
    distances = [
        (make_head("entmax", alpha=a).probs(z) - softmax).abs().max().item() for a in (1.5, 1.2, 1.05, 1.01, 1.001)
    ]
    assert all(a > b for a, b in zip(distances, distances[1:])), distances
    assert distances[-1] < 2e-3


# --------------------------------------------------------------------------------------
# Fenchel–Young losses vs independent float64 references
# --------------------------------------------------------------------------------------
def _scores(seed: int, batch: int = 6, classes: int = 4, scale: float = 2.0) -> torch.Tensor:
    z = torch.randn(batch, classes, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    z[0, :2] = z[0, 0]  # a tie
    z[1] = torch.linspace(-12, 12, classes, dtype=torch.float64)  # far apart: one class only
    return z


@pytest.mark.parametrize("spec", MULTI, ids=_id)
def test_loss_value_and_gradient_match_float64_finite_differences(spec):
    name, options, alpha = spec
    head = make_head(name, **options)
    z64 = _scores(2)
    batch, classes = z64.shape
    y = torch.arange(batch) % classes
    z = z64.float().requires_grad_(True)
    loss = head.loss(z, y)
    loss.sum().backward()
    for i in range(batch):
        zi = z64[i].numpy()
        value = ref_fy_loss(zi, int(y[i]), alpha)
        grad = finite_diff(lambda v: ref_fy_loss(v, int(y[i]), alpha), zi)
        assert loss[i].item() == pytest.approx(value, abs=2e-5, rel=1e-5)
        np.testing.assert_allclose(z.grad[i].double().numpy(), grad, atol=2e-5)
        # and the gradient is p* − e_y of the head's own mapping (FY heads: bit for bit)
        expected = head.probs(z.detach()[i : i + 1])[0].clone()
        expected[y[i]] -= 1
        if head.sparse:
            assert torch.equal(z.grad[i], expected)
        else:
            torch.testing.assert_close(z.grad[i], expected, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("spec", MULTI, ids=_id)
def test_k_plus_1_losses_match_float64_references(spec):
    """real_loss = Ω*(z) − Ω*(z_1..K); fake_loss = Ω*(z) − z_fake; class_loss = Ω*(z_1..K) − z_y."""
    name, options, alpha = spec
    head = make_head(name, **options)
    z64 = _scores(3, classes=5)  # K = 4 real classes + fake
    batch, classes = z64.shape
    labels = torch.arange(batch) % (classes - 1)
    z = z64.float().requires_grad_(True)
    real, fake, cls = head.real_loss(z), head.fake_loss(z), head.class_loss(z, labels)
    (real.sum()).backward()
    for i in range(batch):
        zi = z64[i].numpy()

        def real_ref(v):
            return ref_conjugate(v, alpha) - ref_conjugate(v[:-1], alpha)

        assert real[i].item() == pytest.approx(real_ref(zi), abs=2e-5, rel=1e-5)
        np.testing.assert_allclose(z.grad[i].double().numpy(), finite_diff(real_ref, zi), atol=2e-5)
        assert fake[i].item() == pytest.approx(ref_fy_loss(zi, classes - 1, alpha), abs=2e-5, rel=1e-5)
        assert cls[i].item() == pytest.approx(ref_fy_loss(zi[:-1], int(labels[i]), alpha), abs=2e-5, rel=1e-5)
        if alpha == 1.0:  # softmax: −log(1 − p_fake), in float64 from probabilities (reference only)
            p = ref_map(zi, 1.0)
            assert real[i].item() == pytest.approx(-math.log(1 - p[-1]), abs=2e-5, rel=1e-5)
        else:  # zero exactly when the head gives the fake class no mass
            assert (real[i].item() == 0) == (head.probs(z.detach()[i : i + 1])[0, -1].item() == 0)


@pytest.mark.parametrize(
    "spec,loss_class",
    [
        (("sparsemax", {}, 2.0), "SparsemaxLoss"),
        (("entmax", {}, 1.5), "Entmax15Loss"),
        (("entmax", {"alpha": 1.25}, 1.25), "EntmaxBisectLoss"),
    ],
    ids=["sparsemax", "entmax15", "entmax-bisect"],
)
def test_loss_matches_entmax_package_in_float64(spec, loss_class):
    import entmax

    name, options, alpha = spec
    head = make_head(name, **options)
    kwargs = {"alpha": alpha} if loss_class == "EntmaxBisectLoss" else {}
    reference = getattr(entmax, loss_class)(reduction="none", **kwargs)
    z64 = _scores(4, batch=8, classes=6).requires_grad_(True)
    y = torch.arange(8) % 6
    expected = reference(z64, y)
    expected.sum().backward()
    z = z64.detach().float().requires_grad_(True)
    got = head.loss(z, y)
    got.sum().backward()
    torch.testing.assert_close(got.double(), expected.detach(), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(z.grad.double(), z64.grad, atol=2e-5, rtol=1e-5)


def test_softmax_loss_is_cross_entropy_in_float64():
    z64 = _scores(5)
    y = torch.arange(6) % 4
    expected = torch.nn.functional.cross_entropy(z64, y, reduction="none")
    got = make_head("softmax").loss(z64.float(), y)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-6)


def test_no_log_of_probability_saturated_scores_keep_gradients():
    """A confidently wrong sample keeps a finite, non-zero gradient for every head."""
    for name, options, _ in HEADS:
        head = make_head(name, **options)
        z = (torch.tensor([[-80.0]]) if name == "sigmoid" else torch.tensor([[-40.0, 40.0]])).requires_grad_(True)
        loss = head.real_loss(z)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and loss.item() > 10
        assert torch.isfinite(z.grad).all() and z.grad.abs().max() > 0.5, (name, z.grad)


# --------------------------------------------------------------------------------------
# torch.compile of a full discriminator step
# --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("spec", HEADS[:5], ids=_id)
def test_discriminator_step_compiles(spec):
    """Forward, head losses and backward through Dynamo with fullgraph=True (no graph break).

    backend="aot_eager" traces exactly what inductor would receive (Dynamo graph plus
    AOTAutograd forward/backward), which is where the entmax package's loss classes
    break; it skips inductor's C++ code generation, which on a 2-core CPU takes
    25–60 s per head (the 50-step bisection of entmax_bisect is unrolled).
    """
    name, options, _ = spec
    head = make_head(name, **options)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.LeakyReLU(0.2), torch.nn.Linear(8, head.num_logits(1)))
    real, fake = torch.randn(16, 3) + 1, torch.randn(16, 3) - 1

    def d_loss(x_real, x_fake):
        return head.real_loss(net(x_real)).mean() + head.fake_loss(net(x_fake)).mean()

    torch._dynamo.reset()
    compiled = torch.compile(d_loss, backend="aot_eager", fullgraph=True)
    eager_loss = d_loss(real, fake)
    eager_grads = torch.autograd.grad(eager_loss, list(net.parameters()))
    compiled_loss = compiled(real, fake)
    compiled_grads = torch.autograd.grad(compiled_loss, list(net.parameters()))
    torch.testing.assert_close(compiled_loss, eager_loss)
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b)
