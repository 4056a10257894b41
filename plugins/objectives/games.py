"""GAN objectives written in terms of a head's proper losses (torch code).

Every objective uses only ``head.real_loss`` / ``head.fake_loss`` (and, when
semi-supervised, ``head.class_loss``), so each head works with each objective and
sparse heads automatically train with their Fenchel–Young losses. Each is written on the
step object (``discriminator_loss(step)`` / ``generator_loss(step)``, :class:`ganlab.train.step.Step`)
and reduces with ``step.mean``, so the same code trains a single run and a population.

Correct two-class game (docs/heads.md, "The seed article's formulas, corrected":
its §3.2 has the signs wrong): D minimises ``E_x ℓ(z(x); real) + E_z ℓ(z(G(z)); fake)``;
the non-saturating G minimises ``E_z ℓ(z(G(z)); real)``; the minimax G
maximises D's fake term, i.e. minimises ``−E_z ℓ(z(G(z)); fake)``.

Semi-supervised mode (``labeled = N > 0``; Salimans et al. 2016): D emits K + 1
scores; its loss adds the supervised K-way loss on a fixed, seeded, class-balanced
subset of N labelled training examples, drawn by the objective itself. The real
batch's own labels are never used, so only N labels reach training.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ganlab.errors import ComponentError


class Objective:
    """Shared discriminator loss and semi-supervised machinery."""

    name = "objective"

    def __init__(self, labeled: int = 0, class_weight: float = 1.0) -> None:
        self.labeled = int(labeled)
        self.class_weight = float(class_weight)
        self._discriminator: Any = None
        self._batches: Any = None
        self._pending_state: dict[str, Any] | None = None  # resume state that arrived before setup
        self._run: Any = None
        self.labeled_indices: torch.Tensor | None = None

    @property
    def semi_supervised(self) -> bool:
        return self.labeled > 0

    @property
    def vectorisable(self) -> bool:
        """A population stacks it, except semi-supervised: each run keeps a labelled subset of its own."""
        return not self.semi_supervised

    # -- the game ---------------------------------------------------------------
    def discriminator_loss(self, step: Any) -> torch.Tensor:
        """D's loss: real → "real", fake → "fake", each averaged over its batch.

        ``step.real_labels`` are ignored on purpose: in semi-supervised mode D sees
        labels only from the objective's fixed labelled subset.
        """
        head = step.head
        loss = step.mean(head.real_loss(step.scores(step.real))) + step.mean(head.fake_loss(step.scores(step.fake)))
        if self.semi_supervised:
            loss = loss + self.class_weight * self.supervised_loss(head)
        return loss

    def generator_loss(self, step: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- semi-supervised ---------------------------------------------------------
    def num_classes(self, data: Any) -> int:
        """Real classes D must tell apart: 1, or the dataset's K when semi-supervised."""
        if not self.semi_supervised:
            return 1
        k = int(getattr(data, "num_classes", 0) or 0)
        has_labels = getattr(data, "y", True) is not None  # StreamingData yields (x, y)
        if k < 2 or not has_labels:
            source = getattr(data, "source", "") or "this dataset"
            raise ComponentError(
                f"loss '{self.name}' with labeled={self.labeled} trains a K+1-class discriminator and "
                f"needs a labelled dataset, but {source} has no class labels; "
                "pick a labelled dataset (e.g. digits) or set loss.labeled=0"
            )
        return k

    def check(self, head_name: str, head: Any, data: Any) -> None:
        """Refuse combinations that cannot train, naming both components."""
        if not self.semi_supervised:
            return
        k = self.num_classes(data)
        why = ""
        try:
            head.num_logits(k)
        except ComponentError:
            why = "it has a single score"
        if not why and not callable(getattr(head, "class_loss", None)):
            why = "it has no class_loss"
        if why:
            raise ComponentError(
                f"head '{head_name}' cannot be used with loss '{self.name}' and loss.labeled={self.labeled}: "
                f"the semi-supervised discriminator needs K+1 = {k + 1} scores and a class loss, "
                f"but {why}; use --head softmax, sparsemax or entmax, or set loss.labeled=0"
            )
        n = len(data)
        if self.labeled > n:
            raise ComponentError(
                f"loss '{self.name}': labeled={self.labeled} exceeds the dataset's {n} training examples; "
                f"set loss.labeled to at most {n}"
            )

    def setup(self, run: Any) -> None:
        """Pick the labelled subset (seeded by the run's seed) and keep D to score it.

        Idempotent for one run: it may be called by the engine and again by this
        plugin's ``on_run_start`` fallback.
        """
        if not self.semi_supervised or self._run is run:
            return
        self._run = run
        from ganlab.data import ResidentBatches, TensorData

        seed = int(getattr(run.config, "seed", 0))
        k = self.num_classes(run.data)
        x, y, self.labeled_indices = _labelled_subset(run.data, self.labeled, k, seed)
        subset = TensorData(x.to(run.device), y.to(run.device), num_classes=k)
        batch_size = int(getattr(run.config, "batch_size", 64))
        # A separate stream (seed offset) so labelled draws never shift the main data order.
        self._batches = ResidentBatches(subset, batch_size, seed + 7919)
        # Outside torch.compile, or the sampler's Python counters would be specialised into the graph
        # and force a recompile every step. Only when compiling: torch.compiler.disable imports torch's
        # compiler front end, about 1.5 s of every run's start-up.
        self._next_batch = torch.compiler.disable(_next_batch) if getattr(run.config, "compile", False) else _next_batch
        self._discriminator = run.discriminator
        if self._pending_state is not None:
            self.load_state_dict(self._pending_state)
            self._pending_state = None

    def supervised_loss(self, head: Any) -> torch.Tensor:
        """Mean K-way class loss of D on one labelled batch."""
        if self._batches is None:
            raise RuntimeError(f"loss '{self.name}' is semi-supervised: call setup(run) before discriminator_loss")
        x, y = self._next_batch(self._batches)
        return head.class_loss(self._discriminator(x), y).mean()

    def state_dict(self) -> dict[str, Any]:
        """Labelled-batch order, for exact resume."""
        return {} if self._batches is None else {"batches": self._batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "batches" not in state:
            return
        if self._batches is None:  # resumed before setup: apply once the subset exists
            self._pending_state = dict(state)
        else:
            self._batches.load_state_dict(state["batches"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labeled={self.labeled})"


class NonSaturating(Objective):
    """Goodfellow et al. 2014's practical game: G minimises ``E_z ℓ(D(G(z)); real)``.

    G keeps a gradient when D confidently rejects its samples (cross-entropy:
    slope → 1; Fenchel–Young: constant slope once the margin passes 1/(α−1)).
    """

    name = "nonsaturating"

    def generator_loss(self, step: Any) -> torch.Tensor:
        return step.mean(step.head.real_loss(step.scores(step.fake)))


class Minimax(Objective):
    """The original saturating game: G maximises D's loss on fakes.

    With a sparse head G's gradient is exactly zero whenever D rejects its
    samples with margin ≥ 1/(α−1): the vanishing-gradient failure made exact.
    """

    name = "minimax"

    def generator_loss(self, step: Any) -> torch.Tensor:
        return -step.mean(step.head.fake_loss(step.scores(step.fake)))


class MarginObjective:
    """A game on D's raw score alone (Lim & Ye 2017's hinge; Mao et al. 2017's least squares).

    These losses use D's score s, not the head's probability map. For a two-class head
    the only score they could use is the margin z_real − z_fake, and then softmax, sparsemax
    and entmax would train the very same network (same initialisation, same losses, bit for bit): comparing
    them would compare a run with itself. So margin objectives take single-score heads
    (sigmoid) and refuse the others in one line (docs/heads.md, "Margin objectives").
    """

    name = "margin"
    vectorisable = True

    def check(self, head_name: str, head: Any, data: Any) -> None:
        try:
            single = head.num_logits(1) == 1
        except ComponentError:
            single = False
        if not single:
            raise ComponentError(
                f"loss '{self.name}' scores D's margin and never uses the head's map, so with head "
                f"'{head_name}' (two scores) it trains the same network as with softmax, sparsemax or entmax; "
                "use --head sigmoid (one score), or a loss that uses the head (nonsaturating, minimax)")
        if getattr(head, "scores", None) == 1:  # a map fed one score (head.scores=1): the margin is that score
            raise ComponentError(
                f"loss '{self.name}' scores D's margin and never uses the head's map, so head '{head_name}' with "
                "head.scores=1 trains the same network as --head sigmoid; use --head sigmoid, or a loss that uses "
                "the head (nonsaturating, minimax)")

    def num_classes(self, data: Any) -> int:
        return 1

    @staticmethod
    def score(step: Any, x: torch.Tensor) -> torch.Tensor:
        """D's single score of each sample of ``x`` (the first of its logits), in float32."""
        return step.scores(x).flatten(1)[:, 0].float()

    def generator_loss(self, step: Any) -> torch.Tensor:
        return -step.mean(self.score(step, step.fake))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Hinge(MarginObjective):
    """D: E relu(1 − s(x)) + E relu(1 + s(G(z))); G: −E s(G(z)) (SNGAN, BigGAN, StyleGAN-T)."""

    name = "hinge"

    def discriminator_loss(self, step: Any) -> torch.Tensor:
        return step.mean(torch.relu(1 - self.score(step, step.real))) + \
            step.mean(torch.relu(1 + self.score(step, step.fake)))


class LeastSquares(MarginObjective):
    """LSGAN with targets (a, b, c) = (0, 1, 1): D: ½E(s(x) − 1)² + ½E s(G(z))²; G: ½E(s(G(z)) − 1)²."""

    name = "least-squares"

    def discriminator_loss(self, step: Any) -> torch.Tensor:
        return 0.5 * step.mean((self.score(step, step.real) - 1).pow(2)) + \
            0.5 * step.mean(self.score(step, step.fake).pow(2))

    def generator_loss(self, step: Any) -> torch.Tensor:
        return 0.5 * step.mean((self.score(step, step.fake) - 1).pow(2))


class Wasserstein(MarginObjective):
    """WGAN's critic game on D's score: D minimises E s(G(z)) - E s(x); G minimises -E s(G(z)).

    The critic must be kept Lipschitz by a regulariser (``--reg gp`` or ``--reg weight-clip``);
    without one its scores grow without bound.
    """

    name = "wasserstein"

    def discriminator_loss(self, step: Any) -> torch.Tensor:
        return step.mean(self.score(step, step.fake)) - step.mean(self.score(step, step.real))

    def check_regularizers(self, names: list[str]) -> None:
        if not {"gp", "weight-clip"} & set(names):
            _warn_once("ganlab: warning: loss 'wasserstein' without a Lipschitz constraint on the critic "
                       "(--reg gp or --reg weight-clip): its scores can grow without bound")


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Once per process: a population builds every replica, a sweep every variant."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr)


class Relativistic:
    """The relativistic average game (RaGAN, Jolicoeur-Martineau 2019) through the head's own proper losses.

    D judges a real sample against the average fake and a fake against the average real:
    with raw scores z, D minimises ``E ℓ(z(x) - E z(G(z)); real) + E ℓ(z(G(z)) - E z(x); fake)``
    and G the same with the roles swapped. With the sigmoid head ℓ is the logistic loss and
    this is RaSGAN exactly; with a two-class head the difference of score vectors is a
    difference of margins, so each head trains with its own loss of it (softmax: the
    logistic loss again; sparsemax and entmax: their Fenchel–Young losses), and the heads
    differ. G's loss needs the real batch's scores too (of the last D update's batch; D is frozen
    in the G update, so they are constants), scored before the fakes.
    """

    name = "relativistic"
    vectorisable = True

    def discriminator_loss(self, step: Any) -> torch.Tensor:
        return self._game(step, step.scores(step.real), step.scores(step.fake))

    def generator_loss(self, step: Any) -> torch.Tensor:
        real = step.scores(step.real).detach()
        return self._game(step, step.scores(step.fake), real)

    @staticmethod
    def _game(step: Any, judged_real: torch.Tensor, judged_fake: torch.Tensor) -> torch.Tensor:
        """The loss of calling ``judged_real`` real and ``judged_fake`` fake, each against the other's mean."""
        real_rel = judged_real - step.batch_mean(judged_fake)
        fake_rel = judged_fake - step.batch_mean(judged_real)
        return step.mean(step.head.real_loss(real_rel)) + step.mean(step.head.fake_loss(fake_rel))

    def __repr__(self) -> str:
        return "Relativistic()"


def _next_batch(batches: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return batches.next()


def _labelled_subset(data: Any, n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, training-set indices) of ``n`` training examples, as class-balanced as the data allows."""
    generator = torch.Generator().manual_seed(seed)
    labels = _labels_of(data)
    if labels is None:  # a stream without a label list: a plain random subset
        index = torch.randperm(len(data), generator=generator)[:n]
    else:
        index = _balanced(labels.cpu().long(), n, num_classes, generator)
    if hasattr(data, "x"):
        at = index.to(data.x.device)
        return data.x[at], data.y[at].long(), index
    items = [data.dataset[int(i)] for i in index]
    x = torch.stack([torch.as_tensor(item[0]) for item in items]).float()
    y = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
    return x, y, index


def _labels_of(data: Any) -> torch.Tensor | None:
    if getattr(data, "y", None) is not None:
        return data.y
    targets = getattr(getattr(data, "dataset", None), "targets", None)
    return None if targets is None else torch.as_tensor(targets)


def _balanced(labels: torch.Tensor, n: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """n indices, n // K per class (the remainder to random classes), topped up at random
    from the unused examples where a class has too few."""
    quota = torch.full((num_classes,), n // num_classes, dtype=torch.long)
    quota[torch.randperm(num_classes, generator=generator)[: n % num_classes]] += 1
    chosen = []
    for c in range(num_classes):
        members = (labels == c).nonzero().squeeze(-1)
        members = members[torch.randperm(len(members), generator=generator)]
        chosen.append(members[: int(quota[c])])
    index = torch.cat(chosen)
    if len(index) < n:
        unused = torch.ones(len(labels), dtype=torch.bool)
        unused[index] = False
        rest = unused.nonzero().squeeze(-1)
        rest = rest[torch.randperm(len(rest), generator=generator)]
        index = torch.cat([index, rest[: n - len(index)]])
    return index.sort().values


class SemiSupervisedAccuracy:
    """D's classification accuracy over the K real classes (semi-supervised runs only).

    Uses the dataset's test split; without one, the training examples whose
    labels D never saw (reported under a different key, so the two never mix).
    """

    def __init__(self, max_examples: int = 10000, batch_size: int = 1000) -> None:
        self.max_examples = int(max_examples)
        self.batch_size = int(batch_size)

    def applies_to(self, run: Any) -> bool:
        return bool(getattr(run.objective, "semi_supervised", False))

    def evaluate(self, ctx: Any) -> dict[str, float]:
        data = ctx.data
        if data is None:
            return {}
        if data.test_x is not None and data.test_y is not None:
            x, y, key = data.test_x, data.test_y, "ssl.test_accuracy"
        elif data.y is not None:
            keep = torch.ones(len(data), dtype=torch.bool)
            labeled = getattr(ctx.objective, "labeled_indices", None)
            if labeled is not None:
                keep[labeled.cpu()] = False
            where = keep.nonzero().squeeze(-1).to(data.x.device)
            x, y, key = data.x[where], data.y[where], "ssl.unlabeled_accuracy"
        else:
            return {}
        x, y = x[: self.max_examples], y[: self.max_examples]
        if len(x) == 0:
            return {}
        ctx.params[f"{key}.examples"] = len(x)
        correct = 0
        for start in range(0, len(x), self.batch_size):
            logits = ctx.discriminate(x[start : start + self.batch_size].to(ctx.device))
            predicted = ctx.head.predict_class(logits)
            correct += int((predicted.cpu() == y[start : start + self.batch_size].cpu().long()).sum())
        return {key: correct / len(x)}
