"""ganlab.FenchelYoungHead: a head written as its mapping and regulariser alone matches the built-in
heads (losses, gradients, probabilities), computes in float32 under autocast, refuses wrong shapes in
one line, and trains through `ganlab run --plugin FILE --head NAME`."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import ganlab
from conftest import TINY, run_in_process
from ganlab.errors import ComponentError
from ganlab.heads import FenchelYoungHead


# The ten-line heads under test, as an author would write them: a plugin file.
PLUGIN = textwrap.dedent('''
    from ganlab import FenchelYoungHead, hookimpl


    class Entmax15(FenchelYoungHead):
        name = "my-entmax15"

        def mapping(self, z):
            from entmax import entmax15
            return entmax15(z, dim=-1)

        def regularizer(self, p):  # minus the Tsallis entropy, alpha = 1.5
            return (p.pow(1.5).sum(dim=-1) - 1) / 0.75


    class Sparsemax(FenchelYoungHead):
        name = "my-sparsemax"

        def mapping(self, z):
            from entmax import sparsemax
            return sparsemax(z, dim=-1)

        def regularizer(self, p):
            return 0.5 * (p * p).sum(dim=-1)


    @hookimpl
    def register_heads(register):
        register("my-entmax15", Entmax15, summary="1.5-entmax, ten lines")
        register("my-sparsemax", Sparsemax, summary="sparsemax, ten lines")
''')


@pytest.fixture(scope="module")
def authored() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(PLUGIN, "<ten-line heads>", "exec"), namespace)
    return namespace


def builtin(name: str) -> Any:
    from ganlab_plugins.heads.torch_heads import EntmaxHead, SparsemaxHead

    return {"sparsemax": SparsemaxHead(), "entmax": EntmaxHead(1.5)}[name]


PAIRS = [("Sparsemax", "sparsemax"), ("Entmax15", "entmax")]


def _value_and_grad(fn: Any, z: torch.Tensor, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    value = fn(z, *args)
    if not value.requires_grad:  # a constant (the class loss of a single real class is 0)
        return value.double(), torch.zeros_like(z, dtype=torch.float64)
    (grad,) = torch.autograd.grad(value.sum(), z)
    return value.double(), grad.double()


@pytest.mark.parametrize(("mine", "theirs"), PAIRS)
@pytest.mark.parametrize("classes", [1, 4])
def test_a_ten_line_head_matches_the_builtin(authored: dict[str, Any], mine: str, theirs: str, classes: int) -> None:
    head, reference = authored[mine](), builtin(theirs)
    assert head.num_logits(classes) == reference.num_logits(classes) == classes + 1
    gen = torch.Generator().manual_seed(classes)
    z = torch.randn(512, classes + 1, generator=gen, dtype=torch.float64) * 3  # exact 0s and 1s among them
    target = torch.randint(0, classes + 1, (512,), generator=gen)
    labels = torch.randint(0, classes, (512,), generator=gen)
    calls = {"probs": (), "p_real": (), "real_loss": (), "fake_loss": (), "loss": (target,), "class_loss": (labels,)}
    for method, args in calls.items():
        value, grad = _value_and_grad(getattr(head, method), z, *args)
        want_value, want_grad = _value_and_grad(getattr(reference, method), z, *args)
        # the built-in computes in float32, the base keeps float64 scores in float64: 1e-6 is float32's rounding
        torch.testing.assert_close(value, want_value, atol=1e-6, rtol=1e-6, msg=lambda m: f"{method}: {m}")
        torch.testing.assert_close(grad, want_grad, atol=1e-6, rtol=1e-6, msg=lambda m: f"grad of {method}: {m}")
    assert head.predict_class(z).tolist() == reference.predict_class(z).tolist()
    assert (head.probs(z) == 0).any(), "the scores never reach the sparse region: the test would prove little"


def test_in_float64_the_losses_are_the_closed_forms(authored: dict[str, Any]) -> None:
    """Two classes, margin t = z_real − z_fake: the sparsemax loss is a quarter of the modified Huber loss and
    the loss's gradient is p* − e_y; the 1.5-entmax p_real is (t + √(8 − t²))²/16 (docs/heads.md)."""
    t = torch.linspace(-3, 3, 601, dtype=torch.float64)
    z = torch.stack([t, torch.zeros_like(t)], dim=-1).requires_grad_(True)
    head = authored["Sparsemax"]()
    real = head.real_loss(z)
    huber = torch.where(t >= 1, 0.0, torch.where(t <= -1, -t, (1 - t) ** 2 / 4))
    assert real.dtype == torch.float64
    torch.testing.assert_close(real, huber, atol=1e-12, rtol=0)
    (grad,) = torch.autograd.grad(real.sum(), z)
    torch.testing.assert_close(grad[:, 0], head.p_real(z).detach() - 1, atol=1e-12, rtol=0)
    inside = t.abs() < 2
    p15 = authored["Entmax15"]().p_real(z.detach())
    torch.testing.assert_close(p15[inside], ((t + (8 - t * t).sqrt()) ** 2 / 16)[inside], atol=1e-12, rtol=0)
    assert p15[t >= 2].eq(1).all() and p15[t <= -2].eq(0).all()


def test_the_loss_adds_omega_of_the_target_itself(authored: dict[str, Any]) -> None:
    """Ω is defined up to a constant: the Fenchel–Young loss is not, so a shifted Ω gives the same losses."""

    class Shifted(authored["Sparsemax"]):  # type: ignore[misc, valid-type]
        def regularizer(self, p: torch.Tensor) -> torch.Tensor:
            return super().regularizer(p) + 7.0

    z = torch.randn(64, 5, dtype=torch.float64) * 2
    plain, shifted = authored["Sparsemax"](), Shifted()
    for method in ("real_loss", "fake_loss"):
        torch.testing.assert_close(getattr(shifted, method)(z), getattr(plain, method)(z), atol=1e-12, rtol=0)
    labels = torch.randint(0, 4, (64,))
    torch.testing.assert_close(shifted.class_loss(z, labels), plain.class_loss(z, labels), atol=1e-12, rtol=0)


def test_heads_compute_in_float32_under_autocast(authored: dict[str, Any]) -> None:
    head = authored["Entmax15"]()
    z = (torch.randn(16, 3) * 50).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for value in (head.probs(z), head.p_real(z), head.real_loss(z), head.fake_loss(z)):
            assert value.dtype == torch.float32 and torch.isfinite(value).all()
    torch.testing.assert_close(head.fake_loss(z), builtin("entmax").fake_loss(z), atol=1e-5, rtol=1e-6)


def test_wrong_shapes_are_refused_naming_the_head() -> None:
    class Flat(FenchelYoungHead):
        name = "flat"

        def mapping(self, z: torch.Tensor) -> torch.Tensor:
            return torch.softmax(z, dim=-1)[:, :1]  # one column: not a distribution over the C scores

        def regularizer(self, p: torch.Tensor) -> torch.Tensor:
            return torch.special.xlogy(p, p).sum(dim=-1)

    class Scalar(Flat):
        name = "scalar"

        def mapping(self, z: torch.Tensor) -> torch.Tensor:
            return torch.softmax(z, dim=-1)

        def regularizer(self, p: torch.Tensor) -> torch.Tensor:
            return torch.special.xlogy(p, p).sum()  # summed over the batch too

    z = torch.randn(8, 2)
    with pytest.raises(ComponentError, match=r"head 'flat': mapping\(z\) returned shape \(8, 1\)"):
        Flat().probs(z)
    with pytest.raises(ComponentError, match=r"head 'scalar': regularizer\(p\) returned shape \(\)"):
        Scalar().real_loss(z)
    with pytest.raises(ComponentError, match=r"head 'scalar' expects scores of shape \(B, C\) with C >= 2"):
        Scalar().fake_loss(torch.randn(8, 1))
    with pytest.raises(NotImplementedError, match="must define mapping"):
        FenchelYoungHead().probs(z)


def test_exported_from_ganlab_without_importing_torch() -> None:
    assert ganlab.FenchelYoungHead is FenchelYoungHead and "FenchelYoungHead" in ganlab.__all__
    probe = "import sys, ganlab; from ganlab.heads import FenchelYoungHead; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_ten_line_head_trains_through_ganlab_run(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "my_heads.py").write_text(PLUGIN, encoding="utf-8")
    result = run_in_process(["run", "--plugin", "my_heads.py", "--head", "my-entmax15", "--dataset", "ring8",
                             "--set", "arch.hidden_scale=0.125", "--device", "cpu", *TINY], cwd=workdir)
    assert result.returncode == 0, result.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["head.name"] == "my-entmax15" and run.data.tags["ganlab.head.plugin"] == "my_heads"
    assert math.isfinite(run.data.metrics["loss.d"]) and math.isfinite(run.data.metrics["loss.g"])


def test_the_losses_compile_in_one_graph(authored: dict[str, Any]) -> None:
    head = authored["Sparsemax"]()

    def game(z: torch.Tensor) -> torch.Tensor:
        return head.real_loss(z).mean() + head.fake_loss(z).mean() + head.class_loss(z, z.argmax(-1) % 4).mean()

    z = torch.randn(8, 5, requires_grad=True)
    compiled = torch.compile(game, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break raises
    torch.testing.assert_close(compiled(z), game(z))


def test_ten_line_heads_meet_the_contract_ganlab_checks_before_a_run(authored: dict[str, Any]) -> None:
    from ganlab.testing import assert_head_contract

    for name in ("Sparsemax", "Entmax15"):
        for classes in (1, 3):
            assert_head_contract(authored[name](), num_classes=classes)
