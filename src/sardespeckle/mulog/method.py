"""MuLoG as a registry method: ``intensity -> intensity`` with bound looks, denoiser and halo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sardespeckle.errors import UsageError, WeightsError

__all__ = [
    "DENOISER_NAMES",
    "DENOISER_SETS",
    "DNCNN_SIGMA_RANGE",
    "MULOG_DEFAULTS",
    "MULOG_HALO",
    "build_mulog",
    "denoiser_from_name",
    "make_mulog_method",
    "prepare_mulog_denoiser",
    "resolve_mulog_device",
    "resolve_mulog_precision",
]

#: Denoisers that can be named in the registry / CLI.
DENOISER_NAMES = ("bm3d", "dncnn-natural", "dncnn-natural-blind", "dncnn-sar", "dncnn-sar-blind")

#: Denoiser names made of several fixed-σ weights (registry names), one picked per call
#: (:class:`~sardespeckle.mulog.denoisers.DnCNNSetDenoiser`).
DENOISER_SETS: dict[str, tuple[str, ...]] = {
    "dncnn-natural": ("dncnn-natural-s35", "dncnn-natural-s70"),
}

#: Denoiser names served by registry weights of another name.
_WEIGHTS_OF = {"dncnn-natural-blind": "dncnn-natural", "dncnn-sar": "dncnn-sar-s25",
               "dncnn-sar-blind": "dncnn-sar"}

#: Parameters of the registered ``mulog`` method and their defaults.
MULOG_DEFAULTS: dict[str, Any] = {"denoiser": "bm3d", "iterations": 6, "precision": "auto",
                                  "device": "auto", "decorrelate": "none", "lam": "auto"}

#: Arithmetic choices of the DnCNN denoisers; ``auto`` is bf16 where the device has it natively.
MULOG_PRECISIONS = ("auto", "fp32", "bf16")

#: Halo (pixels) for tiled processing (MuLoG+BM3D, L = 1, 512² image; ``docs/mulog.md``). MuLoG
#: is not strictly local and bm3d 4.0.3 is not translation-equivariant, so no halo makes tiled
#: and whole-image results equal: from 64 px on, full-width strips (row origins ≡ 0 mod 3) differ
#: from the whole image about as much as the whole image differs from itself when its input is
#: perturbed by 1e-7 (median 0.15 %, p99 2.2 % vs 0.14 %, 1.4 %); larger halos do not help.
MULOG_HALO = 64

#: Core tile side: with the 64-px halo a 512-px tile costs (1 + 128/512)² = 1.56× its pixels.
MULOG_TILE = 512

#: Noise range (std on the [0, 1] image scale) assumed for the blind DnCNN weights when their
#: file does not say otherwise: the DnCNN-B training range, σ ∈ [0, 55]/255.
DNCNN_SIGMA_RANGE = (0.0, 55.0 / 255.0)


def denoiser_from_name(name: str, *, precision: str = "fp32", threads: int | None = None,
                       device: str = "cpu"):
    """The Gaussian denoiser called ``name`` (one of :data:`DENOISER_NAMES`).

    ``dncnn-natural`` is the set of fixed-σ natural-image networks of :data:`DENOISER_SETS`
    (one picked per call); ``dncnn-natural-blind`` the blind natural-image network (registry
    name ``dncnn-natural``); ``dncnn-sar`` the SAR-trained fixed-noise network (the hybrid,
    registry name ``dncnn-sar-s25``); ``dncnn-sar-blind`` the blind SAR-trained network it was
    fine-tuned from (registry name ``dncnn-sar``). Any other registry name of Gaussian-denoiser
    weights (``dncnn-sar-s25``, ``dncnn-natural-s35``, weights a user registered) and a path to a
    ``.pt`` file of them (``sardespeckle train`` with task ``gaussian``) are DnCNN denoisers as
    well. ``precision``, ``threads`` and ``device`` reach the DnCNN denoisers only
    (:class:`~sardespeckle.mulog.denoisers.DnCNNDenoiser`).

    Raises
    ------
    UsageError
        Unknown name.
    MissingDependencyError
        ``"bm3d"`` without the optional ``bm3d`` package.
    WeightsError
        A ``.pt`` path that is not a file (as SAR-CNN's ``--weights``), a DnCNN name while its
        weights are not registered in :data:`sardespeckle.models.weights.REGISTRY`, or
        weights that fail their checks.
    """
    from sardespeckle.mulog.denoisers import DnCNNSetDenoiser, bm3d_denoiser

    if name == "bm3d":
        return bm3d_denoiser()
    if name in DENOISER_SETS:
        members = [_dncnn_denoiser(member, precision=precision, threads=threads, device=device,
                                   label=name)
                   for member in DENOISER_SETS[name]]
        return DnCNNSetDenoiser(members)
    if name in _WEIGHTS_OF:
        return _dncnn_denoiser(_WEIGHTS_OF[name], precision=precision, threads=threads,
                               device=device, label=name)
    if _is_weights_path(name):
        if not Path(name).is_file():
            # As for SAR-CNN's --weights: a weights problem, exit 1.
            raise WeightsError(f"MuLoG denoiser: no such weights file: {name}")
        return _dncnn_denoiser(name, precision=precision, threads=threads, device=device,
                               label=name)
    if _registered_gaussian(name):
        return _dncnn_denoiser(name, precision=precision, threads=threads, device=device,
                               label=name)
    from sardespeckle.models.weights import REGISTRY

    if name in REGISTRY and REGISTRY[name].domain == "log-amplitude":
        raise UsageError(
            f"{name!r} is SAR-CNN weights (a despeckler of its own, not a Gaussian denoiser for "
            f"MuLoG): use method 'sarcnn' with weights={name!r} (CLI --method sarcnn --weights "
            f"{name}); MuLoG takes one of "
            f"{', '.join(DENOISER_NAMES)} or Gaussian-denoiser weights")
    raise UsageError(
        f"unknown MuLoG denoiser {name!r}; expected one of {', '.join(DENOISER_NAMES)}, "
        "the registry name of Gaussian-denoiser weights (sardespeckle weights), a "
        "Gaussian-denoiser weights file (.pt), or in Python a callable f(v, sigma)"
    )


def _registered_gaussian(name: str) -> bool:
    """Whether ``name`` is a :data:`~sardespeckle.models.weights.REGISTRY` entry of Gaussian
    denoiser weights (e.g. ``dncnn-sar-s25``, or weights a user registered)."""
    from sardespeckle.models.weights import GAUSSIAN_DOMAINS, REGISTRY

    return name in REGISTRY and REGISTRY[name].domain in GAUSSIAN_DOMAINS


def _is_weights_path(name: str) -> bool:
    """Whether a denoiser name is meant as a weights file (``*.pt``)."""
    return name.endswith(".pt")


def _is_dncnn(denoiser) -> bool:
    """Whether ``denoiser`` names a DnCNN denoiser (``dncnn*``, registered Gaussian weights or a
    weights file)."""
    return isinstance(denoiser, str) and (denoiser.startswith("dncnn") or _is_weights_path(denoiser)
                                          or _registered_gaussian(denoiser))


def _dncnn_denoiser(weights: str, *, precision: str, threads: int | None, device: str,
                    label: str):
    """A :class:`DnCNNDenoiser` on the Gaussian weights ``weights`` (registry name or file)."""
    from sardespeckle.models.weights import GAUSSIAN_DOMAINS, REGISTRY, load_weights
    from sardespeckle.mulog.denoisers import DnCNNDenoiser

    if weights not in REGISTRY and not _is_weights_path(weights):
        raise WeightsError(
            f"MuLoG denoiser {label!r}: weights {weights!r} are not installed (no entry "
            f"{weights!r} in sardespeckle.models.weights.REGISTRY); use denoiser='bm3d' meanwhile"
        )
    network, meta = load_weights(weights)
    if meta.get("domain") == "log-amplitude":
        raise WeightsError(
            f"weights {weights!r} are SAR-CNN log-amplitude weights, expected a Gaussian denoiser"
        )
    if meta.get("domain") not in GAUSSIAN_DOMAINS:
        raise WeightsError(f"weights {weights!r} have domain {meta.get('domain')!r}, expected a "
                           f"Gaussian denoiser (domain in {GAUSSIAN_DOMAINS})")
    # Files written by `sardespeckle train` (task gaussian) state their noise, and SAR-trained
    # ones their span; older Gaussian files fall back to the DnCNN-B range and the wrapper's
    # default span. SAR-trained networks (their files state a span) read the range of their
    # input as it is; natural-image networks the range of its 7×7 local mean. Chosen on six
    # 256² crops of the training references (MuLoG PSNR, one draw each): dncnn-sar 25.87 vs
    # 25.81 dB, dncnn-natural (blind) 24.23 vs 23.42 dB (the validation references were not
    # used).
    span = ({"span": float(meta["span"]), "range_window": 1} if meta.get("span") is not None
            else {})
    trained = meta.get("trained_sigma")
    if trained is not None:
        return DnCNNDenoiser(network, trained_sigma=float(trained), precision=precision,
                             threads=threads, log_sigma_range=meta.get("log_sigma_range"),
                             device=device, **span)
    sigma_range = tuple(meta.get("sigma_range") or DNCNN_SIGMA_RANGE)
    return DnCNNDenoiser(network, sigma_range=sigma_range, precision=precision,
                         threads=threads, device=device, **span)


def mulog_log_sigmas(looks: float, iterations: int, lam: float = 1.0) -> tuple[float, float]:
    """Bounds of the noise std, in log-intensity units, that MuLoG asks its denoiser to remove
    at ``looks`` in ``iterations`` iterations with prior weight ``lam``: ``√ψ₁(L)`` first, then
    ``√ψ₁(L)·√(λ/β)`` with ``β`` from ``β₀ = 1 + 2/L`` up to ``β₀·1.05^(T−2)`` (when every
    iteration stalls)."""
    from sardespeckle.mulog.admm import BETA_GROWTH, default_beta0
    from sardespeckle.speckle import log_speckle_std

    unit = log_speckle_std(looks)
    beta0 = default_beta0(looks)
    most_beta = beta0 * BETA_GROWTH ** max(iterations - 2, 0)
    later = (float(np.sqrt(lam / most_beta)), float(np.sqrt(lam / beta0)))
    if iterations < 2:  # the first denoising only
        later = (1.0, 1.0)
    return unit * min(1.0, later[0]), unit * max(1.0, later[1])


def _check_trained_log_sigmas(denoiser, label: str, looks: float, iterations: int,
                              lam: float) -> None:
    """Warn when MuLoG at ``looks`` asks a fixed-noise SAR network for noise levels far outside
    those it was trained on (its ``log_sigma_range``)."""
    trained = getattr(denoiser, "log_sigma_range", None)  # fixed-noise SAR networks only
    if trained is None:
        return
    low, high = mulog_log_sigmas(looks, iterations, lam)
    if low < trained[0] / 1.1 or high > trained[1] * 1.1:
        import warnings

        warnings.warn(
            f"MuLoG denoiser {label!r} was trained for log-intensity noise std in "
            f"[{trained[0]:g}, {trained[1]:g}]; at L = {looks:g} MuLoG asks for "
            f"[{low:.3g}, {high:.3g}], so results may be degraded; consider denoiser='bm3d'",
            UserWarning, stacklevel=3,
        )


def denoiser_weights_id(denoiser) -> str | None:
    """Provenance of a named DnCNN denoiser's weights: ``"NAME sha256:<16 hex>"`` per registry
    file (comma-separated for a set) or weights file; ``None`` for BM3D and callables."""
    from sardespeckle.models.weights import REGISTRY, sha256_file

    if isinstance(denoiser, str) and _is_weights_path(denoiser) and Path(denoiser).is_file():
        return f"{Path(denoiser).name} sha256:{sha256_file(denoiser)[:16]}"
    if not isinstance(denoiser, str) or not (denoiser.startswith("dncnn")
                                             or _registered_gaussian(denoiser)):
        return None  # BM3D, a callable (any registered Gaussian weights are named below)
    names = DENOISER_SETS.get(denoiser, (_WEIGHTS_OF.get(denoiser, denoiser),))
    return ", ".join(f"{name} sha256:{REGISTRY[name].sha256[:16]}" if name in REGISTRY else name
                     for name in names)


def resolve_mulog_device(device: str, denoiser) -> str:
    """Where MuLoG's denoiser runs: for a DnCNN denoiser (a ``dncnn*`` name, registered Gaussian
    weights or a ``.pt`` file) ``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``;
    BM3D and callables run where they run (``"cpu"`` in the records), so ``"cuda"`` is refused
    for them rather than silently ignored."""
    from sardespeckle.models.inference import resolve_device
    from sardespeckle.models.sarcnn import DEVICES

    if device not in DEVICES:
        raise UsageError(f"expected device in {DEVICES} for MuLoG, got {device!r}")
    if _is_dncnn(denoiser):
        return resolve_device(device)
    if device == "cuda":
        label = denoiser if isinstance(denoiser, str) else "a callable denoiser"
        raise UsageError(f"MuLoG with {label} runs on the CPU only; device='cuda' is for the "
                         "DnCNN denoisers (e.g. denoiser='dncnn-sar'), use device='auto' or 'cpu'")
    return "cpu"


def resolve_mulog_precision(precision: str, denoiser, device: str = "cpu") -> str:
    """``"auto"`` → ``"bf16"`` for a DnCNN denoiser (a ``dncnn*`` name or a ``.pt`` file) on a
    device that computes bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU with bf16),
    else ``"fp32"``; BM3D and callables are ``"fp32"`` (the setting does not reach them). bf16
    cost ≤ 0.05 dB inside MuLoG (validation references: dncnn-sar 24.94 vs 24.95 dB,
    dncnn-natural 22.69 vs 22.74; training crops at L = 4 and 16 ≤ 0.02 dB) for half the time
    on the CPU."""
    if precision not in MULOG_PRECISIONS:
        raise UsageError(f"expected precision in {MULOG_PRECISIONS} for MuLoG, got {precision!r}")
    if precision != "auto":
        return precision
    if not _is_dncnn(denoiser):
        return "fp32"
    from sardespeckle.models.inference import resolve_precision

    return resolve_precision("auto", device)


@dataclass(frozen=True)
class PreparedDenoiser:
    """A denoiser ready for MuLoG: the callable, its label for messages and records, the
    prior weight λ, the arithmetic (``fp32``/``bf16``) and the device it runs with."""

    function: Callable[[np.ndarray, float], np.ndarray]
    label: str
    lam: float
    precision: str
    device: str = "cpu"


def prepare_mulog_denoiser(denoiser, *, looks: float, precision: str = "auto",
                           threads: int | None = None, lam: float | None = None,
                           device: str = "auto") -> PreparedDenoiser:
    """Build (and check) a denoiser for MuLoG at ``looks``: a name or weights file through
    :func:`denoiser_from_name` with ``device`` resolved by :func:`resolve_mulog_device` and
    ``precision`` by :func:`resolve_mulog_precision`, or a callable; ``lam`` resolved by
    :func:`~sardespeckle.mulog.admm.resolve_prior_weight`."""
    from sardespeckle.mulog.admm import resolve_prior_weight
    from sardespeckle.mulog.denoisers import check_denoiser

    device = resolve_mulog_device(device, denoiser)
    precision = resolve_mulog_precision(precision, denoiser, device)
    if isinstance(denoiser, str):
        function = denoiser_from_name(denoiser, precision=precision, threads=threads,
                                      device=device)
        label = denoiser
    else:
        function = check_denoiser(denoiser)
        label = getattr(denoiser, "__name__", type(denoiser).__name__)
    return PreparedDenoiser(function, label, resolve_prior_weight(function, looks, lam), precision,
                            device)


def make_mulog_method(
    *,
    looks: float,
    denoiser="bm3d",
    iterations: int = 6,
    precision: str = "auto",
    threads: int | None = None,
    lam: float | None = None,
    device: str = "auto",
) -> Callable[[np.ndarray], np.ndarray]:
    """Build MuLoG as an engine method ``f(intensity) -> intensity``.

    Parameters
    ----------
    looks : float, keyword-only
        Number of looks of the data.
    denoiser : {"bm3d", "dncnn-natural", "dncnn-natural-blind", "dncnn-sar", "dncnn-sar-blind"} or callable, keyword-only
        The Gaussian denoiser; a callable ``f(v, sigma)`` is used as is.
    iterations : int, keyword-only
        ADMM iterations.
    precision, threads : keyword-only
        Passed to :class:`~sardespeckle.mulog.DnCNNDenoiser` for the DnCNN denoisers;
        ``precision="auto"`` is resolved by :func:`resolve_mulog_precision`.
    lam : float, optional, keyword-only
        Prior weight λ; by default the denoiser's (``mulog``'s ``lam``).
    device : {"auto", "cpu", "cuda"}, keyword-only
        Where a DnCNN denoiser runs (:func:`resolve_mulog_device`; ``"cuda"`` is refused for
        BM3D and callables).

    Returns
    -------
    callable
        ``method(intensity)``: ``(rows, cols)`` intensity → float32 despeckled intensity. The
        denoiser is built (and its weights checked) here, so errors come before any data is
        read. Tile it with a halo of :data:`MULOG_HALO` pixels. Its attributes ``lam``,
        ``precision`` and ``device`` are the prior weight, the arithmetic and the device it uses.

    Raises
    ------
    UsageError, WeightsError, MissingDependencyError
        See :func:`denoiser_from_name`; bad ``iterations`` or ``looks``.
    """
    from sardespeckle.mulog.admm import mulog
    from sardespeckle.speckle import _check_looks

    looks = _check_looks(looks)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UsageError(f"expected iterations to be an integer >= 1, got {iterations!r}")
    prepared = prepare_mulog_denoiser(denoiser, looks=looks, precision=precision, threads=threads,
                                      lam=lam, device=device)
    function, label, weight = prepared.function, prepared.label, prepared.lam
    if isinstance(denoiser, str):
        _check_trained_log_sigmas(function, label, looks, iterations, weight)

    def method(intensity: np.ndarray) -> np.ndarray:
        out = mulog(np.asarray(intensity, dtype=np.float32), looks=looks, denoiser=function,
                    iterations=iterations, lam=weight)
        return out.astype(np.float32, copy=False)

    method.__name__ = f"mulog[{label}]"
    method.__doc__ = f"MuLoG with {label}, L = {looks}, T = {iterations}, λ = {weight:.4g}."
    method.lam = weight
    method.precision = prepared.precision
    method.device = prepared.device
    return method


def build_mulog(looks: float, params: dict[str, Any]):
    """Registry builder: a :class:`~sardespeckle.methods.BuiltMethod` named ``"mulog"``.

    ``params`` holds the keys of :data:`MULOG_DEFAULTS` (already resolved by the registry).
    """
    from sardespeckle.methods import BuiltMethod

    resolved = dict(MULOG_DEFAULTS)
    resolved.update(params)
    unknown = sorted(set(resolved) - set(MULOG_DEFAULTS))
    if unknown:
        raise UsageError(f"method 'mulog' has no parameter {', '.join(map(repr, unknown))}")
    if resolved["precision"] not in MULOG_PRECISIONS:
        raise UsageError(f"expected precision in {MULOG_PRECISIONS} for MuLoG, "
                         f"got {resolved['precision']!r}")
    from sardespeckle.decorrelate import DECORRELATIONS, Subsampled

    decorrelate = resolved["decorrelate"]
    if decorrelate == "auto":  # resolved per input by sardespeckle.api; unresolved means none
        decorrelate = "none"
    if decorrelate not in DECORRELATIONS:
        raise UsageError(f"expected decorrelate in ('auto', {', '.join(map(repr, DECORRELATIONS))}), "
                         f"got {decorrelate!r}")
    resolved["decorrelate"] = decorrelate
    lam = resolved["lam"]
    if isinstance(lam, str):
        try:
            lam = None if lam == "auto" else float(lam)
        except ValueError:
            raise UsageError(f"expected lam to be 'auto' or a number > 0, got {lam!r}") from None
    if isinstance(resolved["denoiser"], str) and _is_weights_path(resolved["denoiser"]):
        # A weights file is named by its absolute path, so that workers and records find it.
        resolved["denoiser"] = str(Path(resolved["denoiser"]).resolve())
    function = make_mulog_method(looks=looks, denoiser=resolved["denoiser"],
                                 iterations=resolved["iterations"],
                                 precision=resolved["precision"], lam=lam,
                                 device=resolved["device"])
    # The prior weight actually used, for the records ("auto" resolves per denoiser and looks).
    resolved["lam"] = round(function.lam, 6)
    resolved["precision"] = function.precision
    resolved["device"] = function.device
    halo = MULOG_HALO
    if decorrelate == "subsample":
        # MuLoG assumes white speckle: on correlated single-look data it runs on the four
        # polyphase components (its halo counted in component pixels) and averages them back.
        function = Subsampled(function, halo=MULOG_HALO)
        halo = function.halo
    return BuiltMethod(
        name="mulog",
        function=function,
        halo=halo,
        parameters=resolved,
        looks=float(looks),
        weights=denoiser_weights_id(resolved["denoiser"]),
        tile=MULOG_TILE,
        decorrelate=decorrelate,
    )
