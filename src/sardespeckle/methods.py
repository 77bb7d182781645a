"""The method registry: one place mapping a method name to how it is built and run.

A *method* is a callable ``intensity -> intensity`` on a ``(rows, cols)`` float32 array of finite,
strictly positive values (see ``docs/architecture.md``). The registry knows, for every name, its
family, its parameters and their defaults, the halo (support radius in pixels) the tiled engine
must give it, and how to build it for a number of looks.

Importing this module is cheap: heavy dependencies (torch) are imported only when a method that
needs them is built.
"""

from __future__ import annotations

import inspect
import math
import numbers
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class BuiltMethod:
    """A method ready to run: the callable, its halo and the parameters actually used.

    ``weights`` identifies the weights of a network (name and sha256 prefix) for provenance.
    ``tile`` is the core tile side the method runs best with (``None``: the engine's default).
    ``decorrelate == "whiten"`` means the method expects whitened intensity: the caller must
    read the input through :class:`sardespeckle.decorrelate.WhitenedSource` (the api does).
    """

    name: str
    function: Callable
    halo: int
    parameters: dict[str, Any]
    looks: float
    weights: str | None = None
    batch_size: int = 1
    tile: int | None = None
    decorrelate: str = "none"
    #: For a network trained for one speckle: the looks of that speckle (None: any looks).
    trained_looks: float | None = None


@dataclass(frozen=True)
class MethodSpec:
    """How to build one method.

    ``build(looks, params) -> BuiltMethod``; ``defaults`` lists every accepted parameter.
    """

    name: str
    family: str
    description: str
    defaults: Mapping[str, Any]
    build: Callable[[float, dict[str, Any]], BuiltMethod] = field(repr=False)
    uses_looks: bool = True

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by ``params``, with unknown names refused and types coerced."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(
                f"method {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {known}"
            )
        resolved = dict(self.defaults)
        for key, value in params.items():
            resolved[key] = _coerce(key, value, self.defaults[key])
        return resolved


def _coerce(key: str, value: Any, default: Any) -> Any:
    if default is None or not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise UsageError(
            f"parameter {key!r} expects {_TYPE_WORDS.get(type(default), type(default).__name__)}, "
            f"got {value!r}"
        ) from None
    return value


#: How a parameter's type is named in messages.
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a text"}

_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name`` (a :class:`UsageError` lists the others)."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name (a list...)
        names = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown method {name!r}; available methods: {names}") from None


def list_methods() -> list[MethodSpec]:
    """Every registered method, sorted by family then name."""
    _load_builtin()
    return sorted(_REGISTRY.values(), key=lambda s: (s.family != "cnn", s.family, s.name))


def build_method(name: str, *, looks: float, params: Mapping[str, Any] | None = None) -> BuiltMethod:
    """Build method ``name`` for ``looks`` looks with ``params`` overriding its defaults.

    Besides its own parameters, every method takes ``keep_targets``: a false-alarm rate in
    ``(0, 0.01]`` (or None/0: off, the default) with which strong scatterers keep their input
    value (:class:`sardespeckle.keep_targets.KeepTargets`).
    """
    from .keep_targets import KEEP_TARGETS, KeepTargets, false_alarm_rate

    spec = get_method(name)
    if isinstance(looks, bool) or not isinstance(looks, numbers.Real) or not (
            math.isfinite(looks) and looks > 0):
        raise UsageError(f"expected a number of looks > 0, got {looks!r}")
    if params is not None and not isinstance(params, Mapping):
        raise UsageError(f"expected params as a mapping NAME -> value, got {params!r}")
    params = dict(params or {})
    false_alarm = false_alarm_rate(params.pop(KEEP_TARGETS, None))
    built = spec.build(float(looks), spec.resolve(params))
    if false_alarm is None:
        return built
    keep = KeepTargets(built.function, looks=float(looks), false_alarm=false_alarm)
    return replace(built, function=keep, halo=built.halo + keep.radius,
                   parameters={**built.parameters, KEEP_TARGETS: false_alarm})


# --- built-in methods -----------------------------------------------------------------------

_loaded = False
_loading = threading.Lock()


def _load_builtin() -> None:
    """Register the built-in methods once. Thread-safe: the flag is set only once they are all
    registered, under a lock, so that concurrent first calls (a thread pool over a batch of
    scenes) never see a half-filled registry."""
    global _loaded
    if _loaded:
        return
    with _loading:
        if _loaded:
            return
        before = set(_REGISTRY)
        try:
            _register_filters()
            _register_networks()
            _register_mulog()
        except BaseException:  # (an import error, a Ctrl-C): the next call starts afresh
            for name in set(_REGISTRY) - before:
                del _REGISTRY[name]
            raise
        _loaded = True


def _register_filters() -> None:
    from .filters import FILTERS

    for filter_spec in FILTERS.values():
        takes_looks = "looks" in inspect.signature(filter_spec.function).parameters

        def build(looks: float, params: dict[str, Any], _fs=filter_spec, _looks=takes_looks):
            kwargs = dict(params)
            if _looks:
                kwargs["looks"] = looks
            function = _bind(_fs.function, kwargs)
            _validate_parameters(_fs.name, function)
            return BuiltMethod(
                name=_fs.name,
                function=function,
                halo=int(_fs.halo(params)),
                parameters=dict(params),
                looks=looks,
            )

        register(
            MethodSpec(
                name=filter_spec.name,
                family="filter",
                description=filter_spec.description,
                # looks is an argument of every build, not a parameter of the method.
                defaults={k: v for k, v in filter_spec.defaults.items() if k != "looks"},
                build=build,
                uses_looks=takes_looks,
            )
        )


def _validate_parameters(name: str, function: Callable) -> None:
    """Run a filter once on a tiny image so that a bad parameter fails before any file is opened."""
    import numpy as np

    from .errors import InvalidInputError

    try:
        function(np.ones((3, 3), np.float32))
    except InvalidInputError as error:
        raise UsageError(f"method {name!r}: {error}") from None


def _bind(function: Callable, kwargs: dict[str, Any]) -> Callable:
    def run(intensity):
        return function(intensity, **kwargs)

    run.__name__ = getattr(function, "__name__", "method")
    run.__doc__ = function.__doc__
    return run


# --- networks -------------------------------------------------------------------------------

#: Tiles handed to a network method at once (the network splits them into forward passes of
#: bounded memory, see ``sardespeckle.models.inference.BatchLimit``).
NETWORK_BATCH_TILES = 4
#: Core tile side for networks: the halo costs (1 + 2·halo/tile)² more pixels, 16 % for
#: 512-px tiles and a halo of 19, 8 % for 1024-px tiles (benchmarks/bench_sarcnn.py).
NETWORK_TILE = 1024


def _register_networks() -> None:
    register(
        MethodSpec(
            name="sarcnn",
            family="cnn",
            description=(
                "SAR-CNN (Dalsasso et al. 2020): DnCNN-19 on log-amplitude, for single-look and "
                "multilooked speckle (weights per looks; single-look and 4.4-look input with "
                "correlated speckle gets weights trained on it, at full resolution); weights from "
                "the registry "
                "(sardespeckle weights) or a file; "
                "ensemble=8 averages the 8 flips/rotations (8x slower, sharper estimate); "
                "level=auto|none|NUMBER: the scene brought to the level the network was trained "
                "at (auto: measured on the input, so the result scales with it), none: as given."
            ),
            defaults={
                "weights": None,
                "precision": "auto",
                "device": "auto",
                "decorrelate": "auto",
                "threads": 0,
                "ensemble": 1,
                "level": "auto",
            },
            build=_build_sarcnn,
            uses_looks=False,
        )
    )


def _register_mulog() -> None:
    from .mulog.method import MULOG_DEFAULTS, build_mulog

    register(
        MethodSpec(
            name="mulog",
            family="plug-and-play",
            description=(
                "MuLoG (Deledalle et al. 2017): ADMM in the log domain with a Gaussian denoiser "
                "(denoiser=bm3d|dncnn-natural|dncnn-natural-blind|dncnn-sar|dncnn-sar-blind), any looks; decorrelate=subsample|auto for "
                "correlated single-look speckle; lam=auto|NUMBER, the prior weight (auto: 1 for "
                "BM3D and blind networks, less at low looks for the fixed-noise DnCNNs)."
            ),
            defaults=dict(MULOG_DEFAULTS),
            build=build_mulog,
        )
    )


def sarcnn_level(value: Any) -> float | None:
    """SAR-CNN's ``level`` parameter as the denoiser takes it: a positive intensity, or ``None``
    for ``"none"`` and (unresolved) ``"auto"``; anything else is a :class:`UsageError`."""
    if isinstance(value, str) and value in ("auto", "none"):
        return None
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if (isinstance(number, bool) or not isinstance(number, numbers.Real)
            or not (math.isfinite(number) and number > 0)):
        raise UsageError(f"expected level to be 'auto', 'none' or an intensity > 0, got {value!r}")
    return float(number)


def _build_sarcnn(looks: float, params: dict[str, Any]) -> BuiltMethod:
    """Load the weights once, then wrap the network for the engine (and for decorrelation).

    ``decorrelate="auto"`` and ``level="auto"`` are resolved per input by
    :mod:`sardespeckle.api`; reaching here unresolved (a direct ``build_method`` call) they mean
    ``"none"``.
    """
    from .decorrelate import DECORRELATIONS, Subsampled

    decorrelate = params["decorrelate"]
    if decorrelate == "auto":
        decorrelate = "none"
    if decorrelate not in DECORRELATIONS:
        raise UsageError(
            f"expected decorrelate in ('auto', {', '.join(map(repr, DECORRELATIONS))}), got {decorrelate!r}"
        )
    threads = params["threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UsageError(f"expected threads to be an integer >= 0 (0: torch's default), got {threads!r}")

    level = sarcnn_level(params["level"])

    from .models.inference import BatchLimit, load_sarcnn

    loaded = load_sarcnn(
        params["weights"], precision=params["precision"], device=params["device"], threads=threads or None,
        ensemble=params["ensemble"], looks=looks, level=level,
    )
    network = BatchLimit(loaded.denoiser)
    function, halo = network, network.halo
    if decorrelate == "subsample":
        function = Subsampled(network, halo=network.halo)
        halo = function.halo
    return BuiltMethod(
        name="sarcnn",
        function=function,
        halo=halo,
        parameters={
            "weights": loaded.weights,
            "precision": loaded.precision,
            "device": loaded.device,
            "decorrelate": decorrelate,
            "threads": threads,
            "ensemble": loaded.denoiser.ensemble,
            "level": "none" if level is None else level,
        },
        looks=looks,
        weights=loaded.weights_id,
        batch_size=NETWORK_BATCH_TILES,
        tile=NETWORK_TILE,
        decorrelate=decorrelate,
        trained_looks=loaded.denoiser.looks,
    )
