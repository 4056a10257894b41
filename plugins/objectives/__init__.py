"""Built-in GAN objectives (nonsaturating, minimax, hinge, least-squares, wasserstein, relativistic, acgan,
infogan) and their metrics: the semi-supervised accuracy and InfoGAN's code recovery.

Registration only: the factories are ``"module:attr"`` strings into
:mod:`ganlab_plugins.objectives.games`, imported when a run builds them. Both
objectives take ``labeled`` (0 = off): with N > 0, D becomes a K+1-class
discriminator trained on N labelled examples (Salimans et al. 2016), and the
``ssl`` metric logs its test-set accuracy. See docs/heads.md.
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl

_TORCH = "ganlab_plugins.objectives.games"

_SSL_OPTIONS = {
    "labeled": Option(
        int, 0,
        "semi-supervised: keep N labels and train D as a K+1-class classifier (0 = off)", min=0,
    ),
    "class_weight": Option(float, 1.0, "weight of D's supervised class loss when labeled > 0", min=0.0),
}


@hookimpl
def register_losses(register: Any) -> None:
    register(
        "nonsaturating", f"{_TORCH}:NonSaturating",
        summary="non-saturating GAN game: G minimises the head's loss for 'real' on its samples",
        options=dict(_SSL_OPTIONS),
    )
    register(
        "minimax", f"{_TORCH}:Minimax",
        summary="original minimax game: G maximises D's loss for 'fake' (saturates)",
        options=dict(_SSL_OPTIONS),
    )
    register(
        "hinge", f"{_TORCH}:Hinge",
        summary="hinge game on D's score (SNGAN, BigGAN); single-score heads (sigmoid) only",
    )
    register(
        "least-squares", f"{_TORCH}:LeastSquares",
        summary="LSGAN (targets 0, 1, 1) on D's score; single-score heads (sigmoid) only",
    )
    register(
        "wasserstein", f"{_TORCH}:Wasserstein",
        summary="WGAN critic game on D's score (pair with --reg gp or weight-clip); single-score heads only",
    )
    register(
        "relativistic", f"{_TORCH}:Relativistic",
        summary="relativistic average game (RaGAN) through the head's own losses; every head",
    )
    register(
        "acgan", "ganlab_plugins.objectives.acgan:ACGAN",
        summary="AC-GAN: the non-saturating game plus the K+1 head's own class loss on real samples and on "
                "fakes for their requested class; conditional generators, heads with class scores",
        options={
            "class_weight": Option(float, 1.0, "weight of the auxiliary class loss (D's and G's)", min=0.0),
            "fake_class_loss": Option(bool, True, "D also learns the requested classes of fakes (Odena et "
                                      "al.'s AC-GAN); false: D's class loss on real samples only"),
        },
    )


    register(
        "infogan", "ganlab_plugins.objectives.infogan:InfoGAN",
        summary="InfoGAN: the non-saturating game plus Q's recovery of G's latent codes from D's features "
                "(--latent infogan; Q's categorical map softmax, sparsemax or entmax)",
        options={
            "info_weight": Option(float, 1.0, "weight of the information loss (lambda), for D and G", min=0.0),
            "continuous_weight": Option(float, 0.1, "extra weight of the continuous codes' loss", min=0.0),
            "q_map": Option(str, "softmax", "Q's posterior over each categorical code: softmax (the paper: "
                            "-log Q), sparsemax or entmax (their Fenchel-Young losses)",
                            choices=("softmax", "sparsemax", "entmax")),
            "q_hidden": Option(int, 128, "width of Q's hidden layer on D's features", min=1),
        },
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "ssl", f"{_TORCH}:SemiSupervisedAccuracy",
        summary="semi-supervised D's class accuracy on the test split (runs with loss.labeled > 0)",
        options={"max_examples": Option(int, 10000, "test examples to classify", min=1)},
    )
    register(
        "infogan", "ganlab_plugins.objectives.infogan:CodeRecovery",
        summary="InfoGAN runs: Q's recovery of the codes of generated samples (accuracy, continuous MSE)",
        options={"samples": Option(int, 1000, "generated samples per evaluation", min=1)},
    )
