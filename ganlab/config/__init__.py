"""Run configuration: TOML files, CLI flags, ``--set`` overrides, validation.

A configuration file has training settings at the top level and one table per
component, holding its name and its options::

    steps = 2000
    seed = 1
    [head]
    name = "entmax"
    alpha = 1.25
    [arch]
    name = "dcgan"
    ngf = 32

Precedence: defaults < file < CLI flags < ``--set`` (applied in order given).
Component options are checked against what the component declared; the
result is a fully resolved, flat mapping that becomes the MLflow run's params.

Over 400 lines on purpose: every setting is declared here once (``SETTINGS``), beside the builder
that layers and checks them.
"""

from __future__ import annotations

import dataclasses
import stat
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError, did_you_mean
from ganlab.options import Option, resolve_options
from ganlab.train.schedule import SCHEDULES

#: config-file section -> registry kind
SECTIONS = {"arch": "architecture", "head": "head", "loss": "loss", "dataset": "dataset", "latent": "latent"}

DEFAULT_COMPONENTS = {"arch": "mlp", "head": "sigmoid", "loss": "nonsaturating", "dataset": "digits",
                      "latent": "gaussian"}

#: Components a run uses several of, by name: the setting that lists them (comma-separated, "none" for
#: none), and the per-name option tables (``[regularizer.gp]``, ``--set regularizer.gp.weight=5``).
#: ``metric`` tables also hold per-name options, but metrics are chosen by the ``metrics`` setting.
MULTI = {"reg": "regularizer", "augment": "augmentation"}
TABLE_KINDS = ("metric", *MULTI.values(), "optimizer", "plugins")


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _decay(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "must be in [0, 1) (0: no average; e.g. 0.999)"




#: More seeds than this in one population is refused: every replica is a child run in the store.
MAX_POPULATION = 1024


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"0,3,5"`` or ``"0-3,8"`` -> the seeds, in the order given; ValueError says what is wrong."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(f"'{part}' is not a seed (N) or a range of seeds (A-B)")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"the range '{part}' runs backwards")
        if len(seeds) + last - first + 1 > MAX_POPULATION:
            raise ValueError(f"a population has at most {MAX_POPULATION} seeds")
        seeds.extend(range(first, last + 1))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed {repeated[0]} is listed twice")
    return seeds


def _seeds_check(text: str) -> str | None:
    if not text:
        return None
    try:
        parse_seeds(text)
    except ValueError as exc:
        return f"{exc} (write e.g. 0-7 or 0,3,5)"
    return None


#: Longest names MLflow keeps. An experiment's: the ``experiments.name`` column is VARCHAR(256)
#: (MLflow's own check allows 500, which MySQL and PostgreSQL stores then refuse), and a local
#: store makes the name a directory, which Linux and macOS allow 255 bytes.
MAX_EXPERIMENT_NAME = 255
#: A run's: the ``runs.name`` column is VARCHAR(250).
MAX_RUN_NAME = 250


def _name_check(what: str, limit: int, required: bool, directory: bool = False) -> Any:
    """A check for an MLflow name: not empty (where required), at most ``limit`` characters (and, for a
    name that becomes a directory, UTF-8 bytes), no control characters (a newline or NUL breaks the
    store's listings, the UI and file names)."""

    def check(name: str) -> str | None:
        if required and not name:
            return f"an MLflow {what} name cannot be empty"
        if len(name) > limit:
            return f"an MLflow {what} name has at most {limit} characters; this one has {len(name)}"
        size = len(name.encode("utf-8", "surrogatepass"))
        if directory and size > limit:
            return (f"an MLflow {what} name has at most {limit} bytes in UTF-8 (it names a directory "
                    f"in the store); this one has {size}")
        control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
        if control is not None:
            return (f"an MLflow {what} name cannot contain control characters "
                    f"(found {control!r} at position {name.index(control)})")
        return None

    return check


#: The training settings every run has, with their declared types and ranges.
SETTINGS: dict[str, Option] = {
    "steps": Option(int, 1000, "generator updates", min=1),
    "batch_size": Option(int, 64, "samples per batch (per process when distributed)", min=1),
    "latent_dim": Option(int, 100, "size of the generator's noise input", min=1),
    "lr_g": Option(float, 2e-4, "generator learning rate", check=_positive),
    "lr_d": Option(float, 2e-4, "discriminator learning rate", check=_positive),
    "optimizer_g": Option(str, "adam", "generator optimiser: adam, adamw, sgd, rmsprop or one a plugin registers "
                          "(`ganlab components optimizer`)"),
    "optimizer_d": Option(str, "adam", "discriminator optimiser (as optimizer_g)"),
    "beta1": Option(float, 0.5, "Adam/AdamW beta1 for both networks", min=0.0, max=0.999999),
    "beta2": Option(float, 0.999, "Adam/AdamW beta2 for both networks", min=0.0, max=0.999999),
    "momentum": Option(float, 0.0, "SGD/RMSprop momentum for both networks", min=0.0, max=0.999999),
    "weight_decay": Option(float, 0.0, "weight decay for both networks (AdamW: decoupled; others: L2 in the "
                           "gradient)", min=0.0),
    "lr_schedule": Option(str, "constant", "learning rate over training, both networks: "
                          + "; ".join(f"{k}: {v}" for k, v in SCHEDULES.items()), choices=tuple(SCHEDULES)),
    "schedule_steps": Option(int, 0, "the step at which lr_schedule reaches its end (0: steps); with steps below "
                             "it a run trains the first steps of that longer run, e.g. to read its early phase "
                             "at a fraction of the cost (`ganlab resume --steps` continues it)", min=0),
    "ema": Option(float, 0.0, "decay of an exponential moving average of G's weights; samples, evaluation and "
                  "generator.pt use the average (0: off; e.g. 0.999)", check=_decay),
    "ema_start": Option(int, 0, "generator steps during which the average is a plain copy of G", min=0),
    "d_steps": Option(int, 1, "discriminator updates per generator update", min=1),
    "reg": Option(str, "none", "regularisers of D, comma-separated, e.g. gp or r1,weight-clip (see `ganlab "
                  "components regularizer`; options: --set regularizer.NAME.OPTION=VALUE)"),
    "augment": Option(str, "none", "augmentations applied to every input of D in training, e.g. diffaugment "
                      "(options: --set augmentation.NAME.OPTION=VALUE)"),
    "pack": Option(int, 1, "PacGAN packing: D scores this many samples jointly (1: no packing; must "
                   "divide batch_size)", min=1),
    "fake_labels": Option(str, "uniform", "conditional runs: the fakes' classes, drawn uniformly (uniform) or "
                          "taken from the real batch (real: the same class histogram)", choices=("uniform", "real")),
    "seed": Option(int, 0, "random seed", min=0),
    "device": Option(str, "auto", "auto, cpu, cuda, cuda:N or mps"),
    "precision": Option(str, "fp32", "network precision", choices=("fp32", "bf16", "fp16")),
    "compile": Option(bool, False, "torch.compile the D and G steps"),
    "deterministic": Option(bool, False, "use deterministic algorithms (bitwise-reproducible on CPU)"),
    "sync_batchnorm": Option(bool, False, "distributed runs: BatchNorm statistics over the global batch "
                             "(torch SyncBatchNorm, CUDA only); no effect in one process"),
    "log_every": Option(int, 50, "steps between metric logging (and host syncs)", min=1),
    "sample_every": Option(int, 250, "steps between sample grids (0: only at the end)", min=0),
    "eval_every": Option(int, 500, "steps between evaluations (0: only at the end)", min=0),
    "eval_samples": Option(int, 2500, "generated samples per evaluation", min=1),
    "pictures": Option(bool, True, "log the metrics' pictures at each evaluation (D's field on 2-D data, the head "
                       "histograms, a plugin's own) and their animations at the end"),
    "checkpoint_every": Option(int, 0, "steps between checkpoints (0: only at the end)", min=0),
    "keep_checkpoints": Option(int, 2, "how many recent checkpoints to keep", min=1),
    "experiment": Option(str, "ganlab", f"MLflow experiment name (at most {MAX_EXPERIMENT_NAME} characters)",
                         check=_name_check("experiment", MAX_EXPERIMENT_NAME, required=True, directory=True)),
    "run_name": Option(str, "", f"MLflow run name (default: built from the components; at most {MAX_RUN_NAME} "
                       "characters)", check=_name_check("run", MAX_RUN_NAME, required=False)),
    "tracking_uri": Option(str, "", "MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)"),
    "tracking": Option(bool, True, "record the run in MLflow"),
    "run_dir": Option(str, "", "untracked runs (--no-tracking): keep checkpoints and networks in this directory, "
                      "so `ganlab resume DIR` can continue the run"),
    "data_root": Option(str, "data", "where datasets' files live"),
    "download": Option(bool, False, "allow datasets to download missing files, and metrics the weights "
                       "they need"),
    "metrics": Option(str, "auto", "comma-separated metric names, 'auto' (all that apply) or 'none'"),
    "parent_run_id": Option(str, "", "MLflow run this run is nested under (set by `ganlab sweep`)"),
    "seeds": Option(str, "", "train these seeds as one population, e.g. 0-7 or 0,3,5: one vectorised model, "
                    "each seed recorded as a child run (default: one run with --seed)", check=_seeds_check),
}

#: The settings that also have a flag of their own on ``ganlab run`` (the rest: ``--set KEY=VALUE``).
#: Their type, default and help come from SETTINGS: the flags are generated from it (ganlab.cli.flags).
FLAG_SETTINGS = (
    "steps", "batch_size", "latent_dim", "lr_g", "lr_d", "optimizer_g", "optimizer_d", "lr_schedule", "ema", "d_steps", "reg", "augment", "pack", "seed", "device",
    "precision", "compile", "deterministic", "eval_every", "sample_every", "log_every", "checkpoint_every", "experiment", "run_name",
    "tracking_uri", "tracking", "run_dir", "data_root", "download", "seeds",
)

_DEVICE_PREFIXES = ("auto", "cpu", "cuda", "mps")


@dataclass
class RunConfig:
    """A validated configuration. ``components[section]`` = {"name": ..., **options}."""

    settings: dict[str, Any]
    components: dict[str, dict[str, Any]]
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the regularisers and augmentations in use, in the order given, with their resolved options
    regularizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    augmentations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the options of every plugin that declares some (``plugin_options`` hook), resolved
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the options of the plugin-registered optimisers in use (the built-in ones take settings)
    optimizer_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(name)

    def name_of(self, section: str) -> str:
        return self.components[section]["name"]

    def options_of(self, section: str) -> dict[str, Any]:
        return {k: v for k, v in self.components[section].items() if k != "name"}

    @property
    def metric_names(self) -> list[str] | None:
        """Explicit metric names, or None for 'auto'."""
        value = self.settings["metrics"].strip()
        if value == "auto":
            return None
        if value in {"", "none"}:
            return []
        return [part.strip() for part in value.split(",") if part.strip()]

    def default_run_name(self) -> str:
        return "-".join(self.name_of(s) for s in ("arch", "head", "loss", "dataset"))

    def flat(self) -> dict[str, Any]:
        """The fully resolved configuration as flat params (``head.alpha`` = 1.25)."""
        flat: dict[str, Any] = dict(self.settings)
        for section, table in self.components.items():
            for key, value in table.items():
                flat[f"{section}.{key}"] = value
        for kind, tables in self._tables().items():
            for name, table in tables.items():
                for key, value in table.items():
                    flat[f"{kind}.{name}.{key}"] = value
        return flat

    def _tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {"metric": self.metric_options, "regularizer": self.regularizers,
                "augmentation": self.augmentations, "optimizer": self.optimizer_options,
                "plugins": self.plugin_options}

    def to_toml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.settings.items()}
        for section, table in self.components.items():
            out[section] = dict(table)
        for kind, tables in self._tables().items():
            if kind == "plugins":  # an opt-in plugin this run leaves off: nothing of it to resume or sample
                tables = {k: v for k, v in tables.items() if v.get("enabled") is not False}
            if tables:
                out[kind] = {k: dict(v) for k, v in tables.items()}
        return out

    def to_toml(self) -> str:
        """The configuration as a TOML file's text (what a run records as config.toml)."""
        import tomli_w

        return tomli_w.dumps(_without_none(self.to_toml_dict()))

    def replace(self, **settings: Any) -> RunConfig:
        return dataclasses.replace(self, settings={**self.settings, **settings})


def _without_none(mapping: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: unset values are left out."""
    return {k: (_without_none(v) if isinstance(v, dict) else v) for k, v in mapping.items() if v is not None}


#: The largest TOML file ganlab reads from a user (a run configuration, a sweep). Real ones are a few KiB;
#: without a bound, a wrong path (/dev/zero, a dataset, a log) is read until memory runs out.
MAX_TOML_BYTES = 1 << 20

#: The tail of the line for TOML that Python's recursive parser cannot descend (a RecursionError).
TOO_DEEP = "arrays or tables nested too deeply"

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a character device" for /dev/zero)."""
    return next((words for test, words in _FILE_KINDS if test(mode)), "not a regular file")


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused in one line when it is anything else or over ``limit``.

    The type is checked with stat() before opening, since opening a named pipe blocks until someone writes
    to it; at most ``limit + 1`` bytes are read, so a file that grows after the check is still bounded.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path} is {file_kind(info.st_mode)}, not a regular file; "
                              "give the path of a TOML file")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        size = f"{info.st_size:,} bytes" if info.st_size > limit else "grew while read"
        raise ConfigError(f"{what} {path} is too large ({size}); ganlab reads TOML files of at most "
                          f"{limit:,} bytes ({limit / 2**20:g} MiB): is it the right file?")
    return data


def loads_toml(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads``, with each way it fails on bad text as one ConfigError naming ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{where} is not valid TOML: {TOO_DEEP} for the parser") from None


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file from the user (``run --config``, a sweep file, a run's config.toml): every TOML file ganlab
    reads goes through here, so each is bounded in size and depth and fails in one line."""
    path = Path(path)
    data = read_bounded(path, MAX_TOML_BYTES, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return loads_toml(text, str(path))


def parse_assignment(text: str) -> tuple[list[str], str]:
    """``head.alpha=1.25`` -> (["head", "alpha"], "1.25")."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. head.alpha=1.25), got '{text}'")
    key, value = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set has an empty key in '{text}'")
    return parts, value.strip()


class ConfigBuilder:
    """Collects layers (file, flags, --set) into a raw nested mapping, then validates."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        self.source: dict[str, str] = {}

    def add_mapping(self, mapping: Mapping[str, Any], source: str) -> ConfigBuilder:
        for key, value in mapping.items():
            if key in SECTIONS:
                table = self.raw.setdefault(key, {})
                if isinstance(value, str):
                    table["name"] = value
                elif isinstance(value, Mapping):
                    table.update(value)
                else:
                    raise ConfigError(f"{source}: '{key}' must be a component name or a table, not {value!r}")
            elif key in TABLE_KINDS:
                if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
                    raise ConfigError(f"{source}: [{key}.NAME] tables expected for {key} options")
                for name, table in value.items():
                    self.raw.setdefault(key, {}).setdefault(name, {}).update(table)
            elif key in ("metrics", *MULTI) and isinstance(value, list):
                self.raw[key] = ",".join(str(v) for v in value) or "none"
            else:
                self.raw[key] = value
            self.source[key] = source
        return self

    def add_file(self, path: str | Path) -> ConfigBuilder:
        return self.add_mapping(read_toml(path), str(path))

    def add_flags(self, flags: Mapping[str, Any]) -> ConfigBuilder:
        """CLI flags; None means 'not given'. Component flags set the component's name."""
        given = {k: v for k, v in flags.items() if v is not None}
        return self.add_mapping(given, "command line")

    def add_sets(self, assignments: Iterable[str]) -> ConfigBuilder:
        for text in assignments:
            parts, value = parse_assignment(text)
            if parts[0] in SECTIONS:
                if len(parts) != 2:
                    raise ConfigError(f"--set {'.'.join(parts)}: expected {parts[0]}.OPTION=VALUE")
                self.raw.setdefault(parts[0], {})[parts[1]] = value
            elif parts[0] in TABLE_KINDS:
                if len(parts) != 3:
                    raise ConfigError(f"--set {'.'.join(parts)}: expected {parts[0]}.NAME.OPTION=VALUE")
                self.raw.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = value
            elif len(parts) == 1:
                self.raw[parts[0]] = value
            else:
                raise ConfigError(f"unknown setting '{'.'.join(parts)}'{did_you_mean(parts[0], [*SETTINGS, *SECTIONS])}")
        return self

    def build(self, registry: Any) -> RunConfig:
        """Validate everything against SETTINGS and the components' declared options."""
        settings: dict[str, Any] = {}
        known = {*SETTINGS, *SECTIONS, *TABLE_KINDS}
        for key in self.raw:
            if key not in known:
                raise ConfigError(
                    f"unknown setting '{key}'{did_you_mean(key, known)} (see `ganlab run --help`)"
                )
        for key, option in SETTINGS.items():
            value = option.coerce(key, self.raw[key]) if key in self.raw else option.default
            settings[key] = option.default if value is None else value
        _check_device(settings["device"])
        _check_schedule(settings)
        components: dict[str, dict[str, Any]] = {}
        for section, kind in SECTIONS.items():
            table = dict(self.raw.get(section, {}))
            name = table.pop("name", None) or DEFAULT_COMPONENTS[section]
            if not isinstance(name, str):
                raise ConfigError(f"{section}.name must be a string, not {name!r}")
            if section == "latent" and name == DEFAULT_COMPONENTS[section] and not table \
                    and name not in registry.names(kind):
                components[section] = {"name": name}  # the engine's own noise (ganlab.train.noise)
                continue
            component = registry.get(kind, name)
            components[section] = {"name": name, **component.resolve(table)}
        metric_options: dict[str, dict[str, Any]] = {}
        for metric, table in self.raw.get("metric", {}).items():
            component = registry.get("metric", metric)
            metric_options[metric] = {
                k: v for k, v in component.resolve(table).items()
            }
        in_use = {}
        for setting, kind in MULTI.items():
            names = _names(settings[setting])
            settings[setting] = ",".join(names) or "none"
            tables = self.raw.get(kind, {})
            for name in [*tables, *names]:
                registry.get(kind, name)  # unknown names: one line listing the valid ones
            in_use[kind] = {name: registry.get(kind, name).resolve(tables.get(name, {})) for name in names}
        declared = getattr(registry, "plugin_options", {})
        for name in self.raw.get("plugins", {}):
            if name not in declared:
                raise ConfigError(f"plugin '{name}' takes no options{did_you_mean(name, declared)} "
                                  f"(plugins with options: {', '.join(sorted(declared)) or 'none'})")
        plugin_options = {name: resolve_options(f"plugins.{name}", options, self.raw.get("plugins", {}).get(name, {}))
                          for name, options in sorted(declared.items())}
        registered = registry.names("optimizer")

        def takes_settings(name: str) -> Any:  # a built-in: its options are the run's shared settings
            return registry.get("optimizer", name).metadata.get("settings")

        for name in self.raw.get("optimizer", {}):
            if name not in registered:
                raise ConfigError(f"unknown optimiser '{name}' in [optimizer.{name}]{did_you_mean(name, registered)} "
                                  f"(valid: {', '.join(registered)})")
            if takes_settings(name):
                raise ConfigError(f"[optimizer.{name}]: '{name}' takes its options as settings "
                                  f"({', '.join(takes_settings(name))}), not an optimizer table")
        optimizer_options = {}
        for key in ("optimizer_g", "optimizer_d"):
            name = settings[key]
            if name not in registered:
                raise ConfigError(f"{key}: unknown optimiser '{name}'{did_you_mean(name, registered)} "
                                  f"(valid: {', '.join(registered)})")
            if not takes_settings(name):  # a table's options are recorded as params; settings already are
                optimizer_options[name] = registry.get("optimizer", name).resolve(self.raw.get("optimizer", {}).get(name, {}))
        config = RunConfig(settings, components, metric_options, in_use["regularizer"], in_use["augmentation"],
                           plugin_options, optimizer_options)
        for metric in config.metric_names or []:
            registry.get("metric", metric)
        return config


def _check_schedule(settings: Mapping[str, Any]) -> None:
    horizon, steps, kind = settings["schedule_steps"], settings["steps"], settings["lr_schedule"]
    if not horizon:
        return
    if kind == "constant":
        raise ConfigError(f"schedule_steps={horizon} has no effect with lr_schedule=constant "
                          "(set lr_schedule to linear or cosine, or leave schedule_steps out)")
    if horizon < steps:
        raise ConfigError(f"schedule_steps={horizon} is below steps={steps}: the rate would be 0 after step "
                          f"{horizon} (schedule_steps is where the schedule ends; 0 means steps)")


def _names(text: str) -> list[str]:
    """``"gp, r1"`` -> ["gp", "r1"]; "none" or "" -> []; a name given twice counts once."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["none"]:
        return []
    if "none" in names:
        raise ConfigError(f"'none' cannot be listed with other names: {text!r}")
    return list(dict.fromkeys(names))


def _check_device(device: str) -> None:
    base = device.split(":", 1)[0]
    if base not in _DEVICE_PREFIXES or (":" in device and (base != "cuda" or not device.split(":", 1)[1].isdigit())):
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, not '{device}'")
