"""Typed training configuration, read from and written to JSON (one copy in every run folder)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .data import ReferenceSpec


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a SAR-CNN training run.

    The learning rate is ``learning_rate`` until ``decay_at`` × ``steps``, then
    ``learning_rate × decay`` (the DnCNN lineage: 1e-3 then 1e-4).

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
    precision: str = "bf16"
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    validation_draws: int = 3
    validate_every: int = 500
    checkpoint_every: int = 100
    log_every: int = 10
    name: str = "sarcnn"
    init_from: str | None = None
    notes: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "references",
                           tuple(ReferenceSpec.from_dict(r) if not isinstance(r, ReferenceSpec) else r
                                 for r in self.references))
        object.__setattr__(self, "validation",
                           tuple(ReferenceSpec.from_dict(r) if not isinstance(r, ReferenceSpec) else r
                                 for r in self.validation))
        if not self.references:
            raise UsageError("expected at least one training reference in the config, got none")
        if self.precision not in ("fp32", "bf16"):
            raise UsageError(f"expected precision fp32 or bf16, got {self.precision!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise UsageError(f"expected device cpu, cuda or auto, got {self.device!r}")
        for name in ("depth", "features", "patch_size", "batch_size", "steps", "validate_every",
                     "checkpoint_every", "log_every", "validation_draws"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"expected {name} ≥ 1, got {getattr(self, name)!r}")
        if not self.looks > 0:
            raise UsageError(f"expected looks > 0, got {self.looks!r}")
        if self.depth < 3:
            raise UsageError(f"expected depth ≥ 3, got {self.depth}")

    def learning_rate_at(self, step: int) -> float:
        return self.learning_rate * (self.decay if step >= self.decay_at * self.steps else 1.0)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["references"] = [r.as_dict() for r in self.references]
        values["validation"] = [r.as_dict() for r in self.validation]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        values["references"] = tuple(ReferenceSpec.from_dict(r) for r in values.get("references", ()))
        values["validation"] = tuple(ReferenceSpec.from_dict(r) for r in values.get("validation", ()))
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"no such training config: {path}") from None
        except json.JSONDecodeError as error:
            raise UsageError(f"training config {path} is not valid JSON: {error}") from None
        return cls.from_dict(values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n")
