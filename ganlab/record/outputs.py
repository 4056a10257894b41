"""What a run's record holds beyond its metrics, and how the record names things for people.

The resolved configuration and the exported networks (``write_outputs``), the
data card, params as strings, a text run's samples as text, and the store or a
path as a message shows it. Used by the tracker (ganlab.record.tracker), a run
without a store (ganlab.record.local) and the commands that read runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError
from ganlab.record.store import sqlite_path
from ganlab.redact import mask_credentials


def shown_path(path: Path) -> str:
    """A path as a person would type it here: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def store_label(uri: str) -> str:
    """The store in a message: ``mlruns/mlflow.db`` for a local SQLite store, else its URI."""
    path = sqlite_path(uri)
    return shown_path(path) if path is not None else uri


def param_value(value: Any) -> str:
    """A value as the record stores a param: JSON for lists and dicts, else ``str``; at most 6000 characters."""
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]


#: Tags on a run whose exported networks are not its final ones (they were not finite):
#: what was exported instead, in words, and the step it is from ("none": nothing exported).
EXPORT_TAG = "ganlab.export"
EXPORT_STEP_TAG = "ganlab.export.step"
#: ctx.extras key: (note, step) when write_outputs exported something other than the final networks
EXPORT_NOTE = "export_note"


def write_outputs(ctx: Any, workdir: Path) -> list[str]:
    """A run's resolved configuration and final networks, written into ``workdir``; returns the file names.

    With ``ema``, generator.pt holds the average (what samples) and generator_trained.pt the trained G.
    Non-finite networks (a diverged run) are never exported: see ``exported_networks``.
    """
    import sys

    import torch

    (workdir / "config.toml").write_text(mask_credentials(ctx.config.to_toml()))  # tracking_uri may hold one
    names = ["config.toml"]
    vocab = getattr(ctx.data, "vocab", None)
    if vocab is not None:  # what `ganlab sample` needs to print a text run's samples as text
        (workdir / VOCAB_FILE).write_text(json.dumps({"vocab": list(vocab), "joiner": ctx.data.text_joiner}))
        names.append(VOCAB_FILE)
    networks, step = exported_networks(ctx, workdir / "checkpoints")
    for name, state in networks.items():
        torch.save(state, workdir / name)
        names.append(name)
    if step is not None:
        note = export_note(ctx.step, step, list(networks))
        ctx.extras[EXPORT_NOTE] = (note, str(step) if networks else "none")
        print(f"ganlab: note: {note}", file=sys.stderr, flush=True)
    return names


def exported_networks(ctx: Any, checkpoints: Path) -> tuple[dict[str, Any], int | None]:
    """File name -> state dict of the networks to export, and the checkpoint step they come from.

    The final networks (step None) when they are finite. Otherwise (the run diverged) those
    of the newest checkpoint whose networks are finite: weights full of NaN would make
    ``ganlab sample`` and anything else that loads generator.pt produce NaN. No finite
    checkpoint: nothing (step -1).
    """
    from ganlab.train import checkpoint

    averaged = ctx.generator_average is not None
    final = {"generator.pt": (ctx.generator_average if averaged else ctx.generator).state_dict(),
             "discriminator.pt": ctx.discriminator.state_dict()}
    if averaged:
        final["generator_trained.pt"] = ctx.generator.state_dict()
    if all(finite_state(state) for state in final.values()):
        return final, None
    for path in reversed(checkpoint.list_checkpoints(checkpoints)):
        try:
            state = checkpoint.load(path)
        except GanlabError:
            continue  # damaged: an older one may still do
        kept = {"generator.pt": state.get("generator_average", state["generator"]) if averaged else state["generator"],
                "discriminator.pt": state["discriminator"]}
        if averaged:
            kept["generator_trained.pt"] = state["generator"]
        if all(finite_state(s) for s in kept.values()):
            return kept, int(state["step"])
    return {}, -1


def finite_state(state: dict[str, Any]) -> bool:
    """Whether every floating-point tensor of a state dict is finite (integer buffers always are)."""
    import torch

    return all(bool(torch.isfinite(t).all()) for t in state.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())


def export_note(final_step: int, step: int, names: list[str]) -> str:
    """What was exported instead of non-finite networks, in one line."""
    if not names:
        return (f"the networks at step {final_step} are not finite and no checkpoint holds finite ones; "
                f"no generator.pt or discriminator.pt exported")
    return (f"the networks at step {final_step} are not finite; {' and '.join(names)} hold those of the "
            f"last finite checkpoint, step {step}")


def data_card(ctx: Any) -> dict[str, Any]:
    config, data = ctx.config, ctx.data
    dataset = ctx.extras.get("dataset")
    declared = getattr(dataset, "labelled", None)  # mode indices of a mixture are not annotations
    labelled = declared if declared is not None else (getattr(data, "y", None) is not None)
    return {
        "name": config.name_of("dataset"),
        "size": len(data),
        "shape": list(ctx.data_shape),
        "num_classes": int(getattr(data, "num_classes", 0) or 0),
        "labelled": bool(labelled),
        "source": getattr(data, "source", ""),
        "options": config.options_of("dataset"),
        "storage": "resident tensor" if hasattr(data, "x") else "streamed",
        "test_size": len(data.test_x) if getattr(data, "test_x", None) is not None else 0,
    }


def data_card_params(ctx: Any) -> dict[str, Any]:
    card = data_card(ctx)
    return {f"data.{key}": card[key] for key in ("size", "shape", "num_classes", "source", "storage")}


def data_preview(ctx: Any) -> Any:
    data = ctx.data if hasattr(ctx.data, "x") else getattr(ctx.data, "preview", None)
    if data is None:
        return None
    if getattr(data, "vocab", None) is not None:
        return data.x[:64].cpu()  # token ids: the first 64 lines
    n = 64 if len(ctx.data_shape) == 3 else min(len(data), 2000)
    return data.x[:n].float().cpu()


#: a text run's vocabulary, beside generator.pt: {"vocab": [...], "joiner": ""}
VOCAB_FILE = "vocab.json"


def samples_as_text(ctx: Any, samples: Any) -> str | None:
    """A text run's samples (distributions or token ids) as decoded lines; None for other data."""
    vocab = getattr(ctx.data, "vocab", None)
    if vocab is None:
        return None
    from ganlab.text import as_text_block, decode_samples

    return as_text_block(decode_samples(samples, vocab, ctx.data.text_joiner))
