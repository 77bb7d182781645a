"""Typed training configuration, read from and written to JSON (one copy in every run folder)."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..decorrelate import speckle_band_problem
from ..errors import InputFileError, UsageError
from .data import ReferenceSpec
from .targets import MAX_RATE

#: What a run trains: SAR-CNN (speckle, log-amplitude) or a Gaussian denoiser of [0, 1] images.
TASKS = ("sarcnn", "gaussian")
#: Defaults of the Gaussian task: DnCNN-B's blind noise range on the [0, 1] scale, ℓ2, and the
#: share of [0, 1] that a SAR log-image's robust range fills (as ``DnCNNDenoiser`` does).
GAUSSIAN_SIGMA_RANGE = (0.0, 55.0 / 255.0)
GAUSSIAN_SPAN = 0.8
#: Kind of a training source that is an 8-bit grey image (PNG...), for the Gaussian task.
GREY = "grey"
#: Stems of a run folder's own files (``checkpoint.pt``, ``config.json``, ``log.csv``): a run's
#: ``name`` may not be one of them, or its final ``NAME.pt`` could replace the checkpoint.
RESERVED_NAMES = ("checkpoint", "config", "log")
#: A run's ``name`` (its weights are ``RUN/NAME.pt``): letters, digits, ``. _ + -``, starting with
#: a letter or digit (no hidden files, no path separators).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
#: Training losses (:mod:`sardespeckle.training.losses`); ``amplitude`` is SAR-CNN only.
LOSSES = ("l1", "l2", "amplitude")
#: Learning-rate schedules (see :class:`TrainConfig`).
SCHEDULES = ("step", "cosine")
#: Integer options and their smallest value.
INTEGER_OPTIONS = {"depth": 3, "features": 1, "patch_size": 8, "batch_size": 1, "steps": 1,
                   "validate_every": 1, "checkpoint_every": 1, "log_every": 1,
                   "validation_draws": 1, "seed": 0, "warmup_steps": 0}


class _RepeatedKey(ValueError):
    """A key given twice in one JSON object of a config file."""


def _object_without_repeated_keys(pairs: list) -> dict:
    values: dict = {}
    for key, value in pairs:
        if key in values:
            raise _RepeatedKey(key)
        values[key] = value
    return values


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run: SAR-CNN or a Gaussian DnCNN for MuLoG.

    ``task`` is ``"sarcnn"`` (speckle on references, the default) or ``"gaussian"``: white
    Gaussian noise of a std drawn per patch uniformly in ``sigma_range`` (the ``[0, 1]`` image
    scale; ``low == high`` trains a fixed-σ network) on ``[0, 1]`` images, which are 8-bit grey
    images (sources of kind ``"grey"``: a file, a folder of PNGs or a glob) or SAR references
    (kind ``intensity``/``amplitude``/``db``) whose log-intensity is mapped so that its 0.5–99.5 %
    range fills ``span`` of ``[0, 1]`` around ½ (see :mod:`sardespeckle.training.gaussian`).
    ``loss`` defaults to ``"l1"`` for SAR-CNN and ``"l2"`` for the Gaussian task; SAR-CNN also
    takes ``"amplitude"``, the relative squared error of the despeckled amplitude (the error the
    PSNR counts, bright pixels weighing as there; :func:`sardespeckle.training.losses.training_loss`);
    ``sigma_range`` and ``span`` belong to the Gaussian task only. ``gain_range`` (SAR-CNN only)
    multiplies each clean patch by a gain drawn log-uniformly in ``[low, high]`` before the
    speckle: the network then meets every scene level, not only the references' (which are
    digital numbers of one processor), and learns to leave flat areas at their level whatever it is.
    ``bright_targets`` (SAR-CNN, and the Gaussian task with ``log_sigma_range``) adds bright point
    and line targets to each clean patch at that rate (targets per pixel, ≤ 0.01;
    :mod:`sardespeckle.training.targets`): references made from clipped 8-bit series lack the
    strong scatterers of real scenes. ``bright_oversample`` (SAR-CNN; a number ``k ≥ 0``) draws
    patches rich in the references' own bright pixels more often (weight ``1 + k · b / b̄``, ``b``
    the patch's pixels above the 99th percentile of its reference; an experiment: the brightest
    1 % of pixels hold most of SAR-CNN's remaining error against the hybrid).
    ``uncap_clipped`` (SAR-CNN; a Pareto tail index, 4 measured on unclipped stacks) lifts the
    pixels at a reference's clipping level (its maximum, held by ≥ 10 pixels) per connected
    group and patch by a random amplitude factor above 1: a clipped reference's bright
    structures are only known to be at least that bright (:mod:`sardespeckle.training.targets`).
    ``speckle_band`` (SAR-CNN, ``looks`` ≥ 1; ``[low, high]`` within ``(0, 1]``) gives a share
    ``speckle_band_share`` (default 1) of the patches spatially correlated speckle, as a SAR
    processor's weighted band makes it, with each axis's band fraction drawn uniformly in
    ``[low, high]`` (:func:`sardespeckle.decorrelate.correlated_speckle`): a network that meets
    detected SLC data at full resolution instead of through ``decorrelate=subsample``; with
    ``looks`` above 1, the mean of ``⌈looks⌉`` such looks weighted to ``looks`` equivalent looks
    (multilooked products whose speckle stays correlated, e.g. GRD).

    ``log_sigma_range`` (Gaussian task on SAR references) trains the network MuLoG calls with a
    noise level: instead of mapping each log-image's range to ``span``, each patch of
    log-intensity is scaled by ``t/σ`` with ``t`` the fixed ``sigma_range`` (``[t, t]``) and
    ``σ`` drawn log-uniformly in ``log_sigma_range`` (a noise std in log-intensity units), as
    :class:`sardespeckle.mulog.DnCNNDenoiser` scales MuLoG's log-images for a fixed-σ network.

    ``precision`` ``"auto"`` (the default) trains with bf16 autocast where the device computes
    bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU with bf16), else in fp32; like
    ``device`` (default ``"auto"``: CUDA when torch sees it) it is resolved when the run starts.

    With ``schedule`` ``"step"`` (the default) the learning rate is ``learning_rate`` until
    ``decay_at`` × ``steps``, then ``learning_rate × decay`` (the DnCNN lineage: 1e-3 then 1e-4).
    With ``"cosine"`` it is ``learning_rate`` until ``decay_at`` × ``steps`` too, then falls along
    a half cosine to ``learning_rate × decay`` at the last step (``decay_at`` near 0 makes the
    whole run one cosine). ``warmup_steps`` > 0 ramps the rate up linearly over the first steps:
    Adam's first updates are about ``learning_rate`` on every weight whatever the gradient, which
    from trained weights (``init_from``) undoes much of the training (one step at 3e-4 took
    ``sarcnn-s1-l1-v2`` from 25.0 to 18.1 dB on its validation draw).

    ``init_from`` starts the network from existing weights instead of a random initialisation:
    a weights file or registered name (``sardespeckle weights``), or a run's ``checkpoint.pt``
    (the model only; the optimiser starts afresh). It is how a run continues another with a new
    schedule, and how users fine-tune the shipped weights on their own references.
    """

    references: tuple[ReferenceSpec, ...]
    validation: tuple[ReferenceSpec, ...] = ()
    looks: float = 1.0
    depth: int = 19
    features: int = 64
    patch_size: int = 40
    batch_size: int = 64
    steps: int = 20000
    learning_rate: float = 1e-3
    decay_at: float = 0.6
    decay: float = 0.1
    schedule: str = "step"
    warmup_steps: int = 0
    precision: str = "auto"
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    validation_draws: int = 3
    validate_every: int = 500
    checkpoint_every: int = 100
    log_every: int = 10
    name: str = "sarcnn"
    init_from: str | None = None
    notes: str = field(default="")
    task: str = "sarcnn"
    loss: str | None = None
    sigma_range: tuple[float, float] | None = None
    span: float | None = None
    gain_range: tuple[float, float] | None = None
    log_sigma_range: tuple[float, float] | None = None
    bright_targets: float | None = None
    bright_oversample: float | None = None
    uncap_clipped: float | None = None
    speckle_band: tuple[float, float] | None = None
    speckle_band_share: float | None = None

    def __post_init__(self) -> None:
        for option in ("references", "validation"):  # one path alone is a list of one
            if isinstance(getattr(self, option), (str, os.PathLike, ReferenceSpec, dict)):
                object.__setattr__(self, option, (getattr(self, option),))
        object.__setattr__(self, "references",
                           tuple(ReferenceSpec.from_dict(r) if not isinstance(r, ReferenceSpec) else r
                                 for r in self.references))
        object.__setattr__(self, "validation",
                           tuple(ReferenceSpec.from_dict(r) if not isinstance(r, ReferenceSpec) else r
                                 for r in self.validation))
        if not self.references:
            raise UsageError("expected at least one training reference in the config, got none")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UsageError(f"expected precision auto, fp32 or bf16, got {self.precision!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise UsageError(f"expected device cpu, cuda or auto, got {self.device!r}")
        for option, minimum in INTEGER_OPTIONS.items():
            object.__setattr__(self, option, _integer(getattr(self, option), option, minimum))
        if self.seed >= 2**63:
            raise UsageError(f"expected seed as an integer in [0, 2**63), got {self.seed!r}")
        if self.warmup_steps >= self.steps:
            raise UsageError(f"expected warmup_steps (--warmup-steps) below steps ({self.steps}), "
                             f"got {self.warmup_steps}: the learning rate would never reach its "
                             "peak")
        if self.threads is not None:
            object.__setattr__(self, "threads", _integer(self.threads, "threads", 1))
        for option in ("looks", "learning_rate", "decay"):
            object.__setattr__(self, option, _positive_float(getattr(self, option), option))
        decay_at = _positive_float(self.decay_at, "decay_at")
        if decay_at > 1:
            raise UsageError(f"expected decay_at in (0, 1] (the share of the steps before the "
                             f"learning rate decays), got {self.decay_at!r}")
        object.__setattr__(self, "decay_at", decay_at)
        if self.schedule not in SCHEDULES:
            raise UsageError(f"expected schedule in {SCHEDULES}, got {self.schedule!r}")
        check_name(self.name)
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise UsageError(f"expected init_from as a weights name or path (a string), got "
                             f"{self.init_from!r}")
        if not isinstance(self.notes, str):
            raise UsageError(f"expected notes as a string, got {self.notes!r}")
        self._resolve_task_options()

    def _resolve_speckle_band(self, gaussian: bool) -> None:
        """Check ``speckle_band`` and ``speckle_band_share`` (the share defaults to 1 with a band)."""
        if self.speckle_band is None:
            if self.speckle_band_share is not None:
                raise UsageError("speckle_band_share needs speckle_band; set both or neither")
            return
        if gaussian:
            raise UsageError("speckle_band is an option of task 'sarcnn'; remove it")
        if self.looks < 1:
            raise UsageError(f"speckle_band simulates correlated speckle of one look or more; got "
                             f"looks {self.looks:g}: remove speckle_band or train with looks >= 1")
        share = 1.0 if self.speckle_band_share is None else self.speckle_band_share
        problem = speckle_band_problem(self.speckle_band, share)
        if problem:
            raise UsageError(problem)
        object.__setattr__(self, "speckle_band", tuple(float(v) for v in self.speckle_band))
        object.__setattr__(self, "speckle_band_share", float(share))

    def _resolve_task_options(self) -> None:
        """Check ``task`` and its options; fill the task's defaults (written to config.json)."""
        if self.task not in TASKS:
            raise UsageError(f"expected task in {TASKS}, got {self.task!r}")
        gaussian = self.task == "gaussian"
        loss = self.loss if self.loss is not None else ("l2" if gaussian else "l1")
        if loss not in LOSSES:
            raise UsageError(f"expected loss in {LOSSES}, got {self.loss!r}")
        if gaussian and loss == "amplitude":
            raise UsageError("loss 'amplitude' (the squared error of the despeckled amplitude) is "
                             "an option of task 'sarcnn'; use 'l2' or 'l1' for task 'gaussian'")
        object.__setattr__(self, "loss", loss)
        kinds = [spec.kind for spec in (*self.references, *self.validation)]
        if gaussian and self.gain_range is not None:
            raise UsageError("gain_range is an option of task 'sarcnn' (speckle), got it with task "
                             "'gaussian'; remove it")
        if gaussian and self.bright_targets is not None and self.log_sigma_range is None:
            raise UsageError("bright_targets is an option of task 'sarcnn' and of task 'gaussian' "
                             "with log_sigma_range (SAR references); remove it")
        object.__setattr__(self, "bright_targets", _bright_targets(self.bright_targets))
        if gaussian and self.bright_oversample is not None:
            raise UsageError("bright_oversample is an option of task 'sarcnn'; remove it")
        object.__setattr__(self, "bright_oversample", _bright_oversample(self.bright_oversample))
        if gaussian and self.uncap_clipped is not None:
            raise UsageError("uncap_clipped is an option of task 'sarcnn'; remove it")
        object.__setattr__(self, "uncap_clipped", _uncap_clipped(self.uncap_clipped))
        self._resolve_speckle_band(gaussian)
        if not gaussian:
            object.__setattr__(self, "gain_range", _gain_range(self.gain_range))
            for option in ("sigma_range", "span", "log_sigma_range"):
                if getattr(self, option) is not None:
                    raise UsageError(f"{option} is an option of task 'gaussian', got it with task "
                                     f"{self.task!r}; remove it or set \"task\": \"gaussian\"")
            if GREY in kinds:
                raise UsageError(f"sources of kind {GREY!r} (8-bit images) need task 'gaussian'; "
                                 "SAR-CNN trains on SAR references (intensity, amplitude or db)")
            from ..io.kinds import KINDS

            wrong = [kind for kind in kinds if kind is not None and kind not in KINDS]
            if wrong:
                raise UsageError(f"expected the kind of every reference to be one of {KINDS} (or "
                                 f"null: detected), got {wrong[0]!r}")
            return
        from ..io.kinds import KINDS

        wrong = [kind for kind in kinds if kind not in (GREY, *KINDS)]
        if wrong:
            raise UsageError(f"expected every source of task 'gaussian' to give its kind ({GREY!r} "
                             f"for 8-bit grey images, or a SAR kind among {KINDS}), got {wrong[0]!r}")
        object.__setattr__(self, "sigma_range", _sigma_range(self.sigma_range))
        if self.log_sigma_range is not None:
            self._resolve_log_scaling(kinds)
            return
        span = GAUSSIAN_SPAN if self.span is None else self.span
        if isinstance(span, bool) or not isinstance(span, (int, float)) or not 0 < span <= 1:
            raise UsageError(f"expected span in (0, 1], got {self.span!r}")
        object.__setattr__(self, "span", float(span))

    def _resolve_log_scaling(self, kinds: list[str]) -> None:
        """Checks of ``log_sigma_range``: SAR sources, a fixed ``sigma_range``, no ``span``."""
        low, high = _positive_range(self.log_sigma_range, "log_sigma_range")
        if GREY in kinds:
            raise UsageError("log_sigma_range scales SAR log-intensities; it needs SAR references "
                             f"(kind intensity, amplitude or db), got a source of kind {GREY!r}")
        if self.sigma_range[0] != self.sigma_range[1]:
            raise UsageError("log_sigma_range trains a fixed-noise network: give sigma_range "
                             f"[t, t] (e.g. [{25 / 255:.6f}, {25 / 255:.6f}]), got "
                             f"{list(self.sigma_range)}")
        if self.span is not None:
            raise UsageError("span and log_sigma_range exclude each other (the scale of a patch "
                             "comes from its noise level); remove span")
        object.__setattr__(self, "log_sigma_range", (low, high))

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based) under ``schedule``."""
        start = self.decay_at * self.steps
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "step":
            return warmup * self.learning_rate * (self.decay if step >= start else 1.0)
        if step < start:
            return warmup * self.learning_rate
        progress = min(1.0, (step - start) / max(1.0, self.steps - 1 - start))
        factor = self.decay + (1.0 - self.decay) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warmup * self.learning_rate * factor

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["references"] = [r.as_dict() for r in self.references]
        values["validation"] = [r.as_dict() for r in self.validation]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        if not isinstance(values, dict):
            raise UsageError(f"expected the training options as a JSON object {{\"references\": "
                             f"[...], ...}}, got {type(values).__name__} {_short(values)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known, key=str)
        if unknown:
            import difflib

            guesses = [f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)
                       for key in unknown
                       for close in [difflib.get_close_matches(str(key), known, n=1)]]
            raise UsageError(f"unknown training option(s) {', '.join(guesses)}; known: "
                             f"{', '.join(sorted(known))}")
        values = dict(values)
        if values.get("task") == "gaussian" and "name" not in values:
            values["name"] = "dncnn"  # RUN_DIR/dncnn.pt: not named like a SAR-CNN
        for option in ("references", "validation"):
            specs = values.get(option)
            specs = () if specs is None else specs
            if not isinstance(specs, (list, tuple)):
                raise UsageError(f"expected {option} as a list of reference paths or objects "
                                 f"{{\"path\": ..., \"kind\": ...}}, got {_short(specs)}")
            values[option] = tuple(ReferenceSpec.from_dict(r) for r in specs)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            text = Path(path).read_bytes().decode("utf-8")
            values = json.loads(text, object_pairs_hook=_object_without_repeated_keys)
        except _RepeatedKey as repeated:
            raise UsageError(f"training config {path} gives {repeated.args[0]!r} twice (JSON "
                             "would keep the last); keep one") from None
        except FileNotFoundError:
            raise InputFileError(f"no such training config: {path}") from None
        except IsADirectoryError:
            raise InputFileError(f"expected a training config file (JSON), got the folder "
                                 f"{path}") from None
        except UnicodeDecodeError as error:
            raise UsageError(f"training config {path} is not UTF-8 text (a JSON file): {error}") from None
        except json.JSONDecodeError as error:
            raise UsageError(f"training config {path} is not valid JSON: {error}") from None
        except OSError as error:
            raise InputFileError(f"cannot read the training config {path}: "
                                 f"{error.strerror or error}") from None
        if not isinstance(values, dict):
            raise UsageError(f"expected the training config {path} to hold a JSON object "
                             f"{{\"references\": [...], ...}}, got a JSON {type(values).__name__}")
        try:
            return cls.from_dict(values)
        except UsageError as error:
            raise UsageError(f"training config {path}: {error}") from None

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically (a temporary file renamed onto ``path``)."""
        from ..io.base import atomic_output

        with atomic_output(path) as temp:
            Path(temp).write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")


def check_name(name) -> str:
    """``name`` if it is usable as a run's weights name (``RUN/NAME.pt``), else a UsageError."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"expected name as a non-empty string (the weights are RUN_DIR/NAME.pt), "
                         f"got {name!r}")
    if "/" in name or "\\" in name or ".." in name:
        raise UsageError(f"expected name as a plain file name, without '/', '\\' or '..' (the "
                         f"weights are RUN_DIR/NAME.pt), got {name!r}")
    if name.lower() in RESERVED_NAMES:
        raise UsageError(f"expected a name other than {', '.join(RESERVED_NAMES)} (the run folder's "
                         f"own checkpoint.pt, config.json and log.csv), got {name!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"expected name of at most 100 letters, digits, '.', '_', '+' or '-', "
                         f"starting with a letter or digit (the weights are RUN_DIR/NAME.pt), got "
                         f"{name!r}")
    return name


def _integer(value, option: str, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (an integral float such as ``2e4`` is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"expected {option} as an integer ≥ {minimum}, got {_short(value)}")
    return value


def _positive_float(value, option: str) -> float:
    """``value`` as a finite float > 0."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not value > 0):
        raise UsageError(f"expected {option} as a finite number > 0, got {_short(value)}")
    return float(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."



def _sigma_range(value) -> tuple[float, float]:
    """``(low, high)`` with ``0 ≤ low ≤ high < 1`` and ``high > 0`` (default DnCNN-B's range)."""
    if value is None:
        return GAUSSIAN_SIGMA_RANGE
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UsageError(f"expected sigma_range as [low, high] on the [0, 1] scale, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not 0 <= low <= high < 1 or high == 0:
        raise UsageError(f"expected 0 <= low <= high < 1 and high > 0 for sigma_range (the [0, 1] "
                         f"scale: 55/255 = {55 / 255:.4f}), got {value!r}")
    return (low, high)


def _gain_range(value) -> tuple[float, float] | None:
    """``gain_range`` checked: ``None`` or ``(low, high)`` with ``0 < low ≤ high``."""
    return None if value is None else _positive_range(value, "gain_range")


def _bright_targets(value) -> float | None:
    """``bright_targets`` checked: ``None`` or a rate in ``[0, MAX_RATE]`` (targets per pixel)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_RATE:
        raise UsageError(f"expected bright_targets as a rate in [0, {MAX_RATE}] (targets per "
                         f"pixel, e.g. 5e-4), got {value!r}")
    return float(value)


def _bright_oversample(value) -> float | None:
    """``bright_oversample`` checked: ``None`` or a finite number ``k ≥ 0``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise UsageError(f"expected bright_oversample as a number >= 0 (e.g. 4), got {value!r}")
    return float(value)


def _uncap_clipped(value) -> float | None:
    """``uncap_clipped`` checked: ``None`` or a finite tail index ``> 0``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise UsageError(f"expected uncap_clipped as a Pareto tail index > 0 (e.g. 4), got "
                         f"{value!r}")
    return float(value)


def _positive_range(value, option: str) -> tuple[float, float]:
    """``(low, high)`` with ``0 < low ≤ high < ∞``, or a UsageError naming ``option``."""
    if isinstance(value, (str, bytes)):
        raise UsageError(f"expected {option} [low, high], got {value!r}")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"expected {option} [low, high], got {value!r}") from None
    if not (0 < low <= high < float("inf")):
        raise UsageError(f"expected {option} with 0 < low ≤ high (finite), got {value!r}")
    return (low, high)
