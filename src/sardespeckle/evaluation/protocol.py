"""The evaluation protocols: which despecklers, on which images, measured how.

* **Full reference** (the SAR-CNN paper's protocol): speckle-free references, ``draws`` seeded
  draws of ``L``-look speckle on each, every despeckler run on every draw; PSNR on amplitude
  (peak = 99th percentile of the reference), SSIM on amplitude and the edge-preservation index
  on log-intensity, reported as mean ± std over the draws.
* **No reference** (real speckled images): ENL on the homogeneous areas of the input, ratio-image
  mean / variance / structure, radiometric bias.
* **Speed and memory**: each despeckler on one seeded simulated image of fixed size.

Nothing here prints or writes files: :func:`run_evaluation` returns an
:class:`EvaluationResult` that :mod:`sardespeckle.evaluation.report` turns into files.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import platform
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sardespeckle.errors import InvalidInputError, SardespeckleError, UsageError
from sardespeckle.window import Window

__all__ = [
    "Candidate",
    "EvaluationResult",
    "FullReferenceResult",
    "LoadedImage",
    "NoReferenceResult",
    "Panels",
    "SpeedResult",
    "SummaryTable",
    "evaluate_full_reference",
    "evaluate_no_reference",
    "load_image",
    "measure_speed",
    "resolve_candidates",
    "run_evaluation",
    "speed_scene",
]

ProgressFn = Callable[[int, int], None]

#: Column of the unfiltered input in every table.
NOISY = "noisy"
#: Row of the averages over images in every table.
AVERAGE = "average"
#: Metrics of the full-reference protocol, in table order.
FULL_REFERENCE_METRICS = ("psnr", "ssim", "edge")
#: Smallest reference side: room for the metrics (SSIM's 7 × 7 window, the edge index's
#: Laplacian border) and the despecklers' own windows, with an interior worth scoring.
MIN_REFERENCE_SIDE = 32
#: Metrics of the no-reference protocol, in table order.
NO_REFERENCE_METRICS = ("enl", "ratio_mean", "ratio_var", "structure", "first_order",
                        "second_order", "bias")
#: Memory probes of :func:`measure_speed`.
MEMORY_PROBES = ("subprocess", "tracemalloc")
#: Side of the image the warm-up run of :func:`measure_speed` uses (loads lazy imports).
WARMUP_SIDE = 256
#: Timed runs of :func:`measure_speed`; the shortest counts.
TIMED_RUNS = 3


# --------------------------------------------------------------------------------------------
# despecklers under evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One despeckler under evaluation: a registered method or a peer adapter.

    ``run(intensity) -> intensity`` on ``(rows, cols)`` float32 images; masked pixels (NaN,
    zero) come back as NaN for registered methods.
    """

    name: str
    """Column label: the method name, or ``peer:<name>``."""
    source: str
    """``"method"`` (the registry, run through :func:`sardespeckle.api.despeckle`) or ``"peer"``."""
    method: str
    """Registry or peer name."""
    looks: float
    params: dict[str, Any] = field(default_factory=dict)
    """Parameters given by the user (overriding the defaults)."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Every parameter actually used, for the report."""
    description: str = ""
    family: str = "filter"
    """Registry family (``"filter"``, ``"cnn"``...) or ``"peer"``."""
    python: str | None = None
    """A peer's interpreter in another environment (run in a child process), else ``None``."""

    def resolve(self, intensity: np.ndarray) -> tuple[Candidate, str | None]:
        """This candidate as it runs on ``intensity``, and the choice it made for it.

        A registered method whose ``decorrelate`` is ``"auto"`` (sarcnn's default) decides
        per input, as :func:`sardespeckle.api.despeckle` does
        (:func:`sardespeckle.decorrelate.resolve_decorrelation`: the measured speckle
        correlation of single-look input, and of multilooked input for SAR-CNN). The returned candidate carries that choice in its
        ``params`` and ``parameters``, so that running it applies exactly what the report
        says, and the note reads ``"decorrelate=subsample (why)"``. Anything else (a peer, a
        method without ``decorrelate`` or with one given): itself and ``None``.
        """
        if self.source != "method":
            return self, None
        from sardespeckle.decorrelate import correlated_network_for, resolve_decorrelation
        from sardespeckle.io.kinds import to_intensity
        from sardespeckle.methods import get_method

        params, note = resolve_decorrelation(
            get_method(self.method).defaults, self.params, kind="intensity", looks=self.looks,
            sample=lambda: to_intensity(intensity, "intensity"),
            correlated_network=correlated_network_for(self.method, self.looks))
        if note is None:
            return self, None
        parameters = {**self.parameters, "decorrelate": params["decorrelate"]}
        if self._picked_weights(params):
            parameters["weights"] = params["weights"]
        return replace(self, params=params, parameters=parameters), note

    def _picked_weights(self, params: dict) -> bool:
        """Whether ``decorrelate="auto"`` picked other weights than those asked for."""
        return params.get("weights") != self.params.get("weights")

    def choice(self, runs: "Candidate") -> str:
        """What :meth:`resolve` chose for one input, as the report lists it: the decorrelation,
        and the weights when it picked others (``"none with sarcnn-s1-l1-corr3w"``)."""
        return runs.params["decorrelate"] + (f" with {runs.params['weights']}"
                                             if self._picked_weights(runs.params) else "")

    def run(self, intensity: np.ndarray) -> np.ndarray:
        if self.source == "peer":
            from .peers import get_peer

            return get_peer(self.method).run(intensity, looks=self.looks, python=self.python)
        from sardespeckle.api import despeckle

        return despeckle(intensity, method=self.method, looks=self.looks, kind="intensity",
                         params=self.params)

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def resolve_candidates(
    methods: str | Sequence[str] = "all",
    *,
    looks: float,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    peers: str | Sequence[str] = "auto",
    peer_python: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[list[Candidate], list[str]]:
    """Turn method and peer names into runnable candidates.

    Parameters
    ----------
    methods : "all" or sequence of str
        Registered method names; ``"all"`` (alone or in the list) is every registered method
        whose build succeeds: one that cannot be built (missing weights, missing optional
        dependency) is skipped with a note. A method named explicitly must build.
        ``"LABEL=METHOD"`` evaluates ``METHOD`` under the column label ``LABEL`` (and ``params``
        are then keyed by the label): one method several times with different parameters,
        e.g. ``mulog-dncnn-sar=mulog`` with ``{"mulog-dncnn-sar": {"denoiser": "dncnn-sar"}}``.
    looks : float, keyword-only
        Number of looks the methods are built for.
    params : mapping, optional, keyword-only
        ``{method: {parameter: value}}`` overriding defaults (values may be strings, as on the
        command line).
    peers : "auto", "none" or sequence of str, keyword-only
        ``"auto"``: every peer that can run here (:mod:`sardespeckle.evaluation.peers`); names:
        those peers, which must be able to run.
    peer_python : mapping, optional, keyword-only
        ``{peer: interpreter}``: these peers run in a child process of another Python
        environment that has their package (:meth:`~sardespeckle.evaluation.peers.Peer.check`
        tries it first); with ``peers="auto"`` they are evaluated too.

    Returns
    -------
    candidates : list of Candidate
        In the order asked for (``"all"``: the registry's order), then the peers.
    notes : list of str
        One line per skipped method.

    Raises
    ------
    UsageError
        Unknown method or peer, parameters for a method not selected, a named peer that cannot
        run, an interpreter that is not an executable file or given for a peer not selected,
        or no candidate at all.
    PeerError
        A peer's interpreter fails to import its package (or is not a Python).
    """
    from sardespeckle.methods import build_method, get_method, list_methods

    from .peers import PEERS, get_peer, resolve_peer_python

    python_of = resolve_peer_python(peer_python)
    params = {name: dict(values) for name, values in (params or {}).items()}
    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise UsageError("expected at least one method (or 'all'), got none")
    wanted: list[tuple[str, str, bool]] = []  # (label, method, named explicitly)
    for name in names:
        if name == "all":
            wanted.extend((spec.name, spec.name, False) for spec in list_methods())
            continue
        label, _, method = name.partition("=") if "=" in name else (name, "", name)
        label, method = label.strip(), method.strip()
        if not label or not method:
            raise UsageError(f"expected METHOD or LABEL=METHOD, got {name!r}")
        if label == NOISY or label.startswith("peer:"):
            raise UsageError(f"the label {label!r} is reserved (the {NOISY!r} column is the "
                             "speckled input, 'peer:NAME' columns are other packages' "
                             f"despecklers); choose another, e.g. my-{label.removeprefix('peer:')}="
                             f"{method}")
        get_method(method)
        wanted.append((label, method, True))
    seen: dict[str, bool] = {}
    method_of: dict[str, str] = {}
    for label, method, explicit in wanted:
        if method_of.setdefault(label, method) != method:
            raise UsageError(f"the label {label!r} names two methods: {method_of[label]!r} and {method!r}")
        seen[label] = seen.get(label, False) or explicit
    unknown = sorted(set(params) - set(seen))
    if unknown:
        raise UsageError(
            f"parameters given for {', '.join(map(repr, unknown))}, which are not evaluated; "
            f"evaluated methods: {', '.join(seen)}"
        )

    candidates: list[Candidate] = []
    notes: list[str] = []
    for name, explicit in seen.items():
        given = params.get(name, {})
        method = method_of[name]
        try:
            built = build_method(method, looks=looks, params=given)
        except (SardespeckleError, ImportError) as error:
            if explicit or given:
                raise
            notes.append(f"{name}: skipped, it cannot be built here ({error})")
            continue
        parameters = _jsonable(built.parameters)
        if given.get("decorrelate", get_method(method).defaults.get("decorrelate")) == "auto":
            # The build resolves an unresolved "auto" to "none"; each run decides per image
            # (Candidate.resolve), and the report says what each image got.
            parameters["decorrelate"] = "auto"
            if method == "sarcnn" and not given.get("weights"):
                from sardespeckle.models.weights import correlated_counterpart

                # auto may pick the weights trained on correlated speckle for these looks:
                # said per image
                correlated = correlated_counterpart(parameters.get("weights"))
                if correlated is not None:
                    parameters["weights"] = (f"{parameters.get('weights')} ({correlated}"
                                             " where decorrelate says so)")
        if given.get("level", get_method(method).defaults.get("level")) == "auto":
            # Likewise SAR-CNN's level: despeckle measures it on each image.
            parameters["level"] = "auto"
        candidates.append(Candidate(
            name=name, source="method", method=method, looks=float(looks), params=given,
            parameters=parameters, description=get_method(method).description,
            family=get_method(method).family,
        ))

    if isinstance(peers, str) and peers in ("auto", "none"):
        peer_names = [p for p in PEERS if p in python_of or PEERS[p].available()] \
            if peers == "auto" else []
    else:
        peer_names = [get_peer(p).name for p in ([peers] if isinstance(peers, str) else peers)]
    unused = sorted(set(python_of) - set(peer_names))
    if unused:
        raise UsageError(f"an interpreter is given for {', '.join(map(repr, unused))}, which "
                         f"is not evaluated; add it to the peers ({peers!r} now)")
    for name in peer_names:
        peer = get_peer(name)
        parameters = {"package": peer.distribution}
        python = python_of.get(peer.name)
        if python is None:
            problem = peer.import_error()
            if problem:
                raise UsageError(f"peer {peer.name!r} cannot run: {peer.distribution} is "
                                 f"{problem}; hint: install it in another environment and "
                                 f"run it there (--peer-python {peer.name}=PYTHON)")
        else:
            info = peer.check(python)
            parameters.update(version=info["package"], python=python,
                              python_version=info["python"], numpy=info["numpy"])
        candidates.append(Candidate(
            name=f"peer:{peer.name}", source="peer", method=peer.name, looks=float(looks),
            parameters=parameters, description=peer.description, family="peer",
            python=python,
        ))
    if not candidates:
        raise UsageError("no method to evaluate: every selected method was skipped")
    return candidates, notes


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedImage:
    """A whole image read as intensity, with its mask of valid pixels."""

    name: str
    path: str
    intensity: np.ndarray
    """``(rows, cols)`` float32, NaN where not valid."""
    valid: np.ndarray
    kind: str
    kind_reason: str


def _layout_applies(path: str, layout: str) -> bool:
    """Whether a real/imaginary layout fits this file (3-D .npy, or a GeoTIFF of ≥ 2 bands)."""
    if path.lower().endswith(".npy"):
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError):
            return False
        if len(shape) != 3:
            return False
        return (layout == "last" and shape[-1] == 2) or (layout == "first" and shape[0] == 2)
    if layout != "bands":
        return False
    try:
        import rasterio

        with rasterio.open(path) as dataset:
            return dataset.count >= 2
    except Exception:  # noqa: BLE001 - an unreadable file is reported by open_source below
        return False


def _load_reference(path: str | os.PathLike, *, kind: str | None, name: str) -> LoadedImage:
    """:func:`load_image` for a reference, which must be a real, speckle-free image."""
    complex_hint = UsageError(
        f"a reference must be a speckle-free real image (intensity, amplitude or dB), got "
        f"complex or real/imaginary data in {os.fspath(path)}; give a speckled image to --real "
        "instead"
    )
    try:
        image = load_image(path, kind=kind, complex_layout=None, name=name)
    except InvalidInputError as error:
        if any(marker in str(error) for marker in ("complex_layout", "--complex-layout",
                                                   "kind='complex'")):
            raise complex_hint from None  # complex data or its parts: an SLC, speckled
        raise
    if image.kind == "complex":
        raise complex_hint
    return image


def load_image(
    path: str | os.PathLike, *, kind: str | None = None, complex_layout: str | None = None,
    name: str | None = None,
) -> LoadedImage:
    """Read a whole raster as intensity through :func:`sardespeckle.io.open_source`.

    ``complex_layout`` is applied only to files it fits (a 3-D ``.npy`` with the parts on that
    axis, a GeoTIFF with at least 2 bands), ``kind`` only to the others, so that one command can
    mix amplitude files and real/imaginary complex files.
    """
    from sardespeckle.io import open_source

    path = os.fspath(path)
    layout = complex_layout if complex_layout and _layout_applies(path, complex_layout) else None
    with open_source(path, kind=None if layout else kind, complex_layout=layout) as source:
        intensity, valid = source.read_intensity(Window.full(source.shape))
        image_kind, reason = source.kind, source.kind_reason
        bands, used = getattr(source, "band_count", 1), 2 if layout == "bands" else 1
        if bands > used:
            reason += (f"; the file has {bands} bands: only band {source.band}"
                       + (" and the next are" if used == 2 else " is") + " evaluated")
    if not valid.any():
        raise InvalidInputError(f"{path} has no valid pixel (all NaN, nodata, zero or "
                                "negative): nothing to evaluate on it; leave it out")
    intensity = np.where(valid, intensity, np.nan).astype(np.float32)
    return LoadedImage(name=name or Path(path).stem, path=path, intensity=intensity,
                       valid=valid, kind=image_kind, kind_reason=reason)


def _refuse_repeated(paths: Sequence[str | os.PathLike], option: str) -> None:
    """UsageError when one file is given twice to a protocol (its scores would count twice
    in every mean), by path or through a link."""
    from sardespeckle.io.base import repeated_file

    repeated = repeated_file(paths)
    if repeated is not None:
        first, again = (paths[i] for i in repeated)
        raise UsageError(f"{option} gives {first} twice (as {again}): its scores would count "
                         "twice in every mean; give it once")


#: Factor between the input ENL of a real image and the looks given beyond which a note
#: says they do not fit (the ENL estimate itself varies by ±20 % on 8 boxes of 32²).
LOOKS_MISFIT = 1.5


def unique_names(references: Sequence[str], real: Sequence[str] = ()) -> list[str]:
    """The image names of ``[*references, *real]``: each file's stem, and ``stem#2``, ``stem#3``
    ... for files sharing one, numbered references first, then real images, each in the
    order of their absolute paths, not of the command line: an image's name (which seeds its
    speckle draws) does not change when the files are reordered, nor a reference's when real
    images are added."""
    paths = [*references, *real]
    order = sorted(range(len(references)), key=lambda i: os.path.abspath(paths[i]))
    order += sorted(range(len(references), len(paths)), key=lambda i: os.path.abspath(paths[i]))
    names: list[str] = [""] * len(paths)
    used: set[str] = set()
    for i in order:
        stem, candidate, index = Path(paths[i]).stem, Path(paths[i]).stem, 2
        while candidate in used:
            candidate, index = f"{stem}#{index}", index + 1
        names[i] = candidate
        used.add(candidate)
    return names


def _crop_window(shape: tuple[int, int], crop: int) -> Window:
    height, width = min(crop, shape[0]), min(crop, shape[1])
    return Window((shape[0] - height) // 2, (shape[1] - width) // 2, height, width)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class SummaryTable:
    """Rows × columns of ``mean ± std``; the last row is the average over the images.
    ``std`` is ``None`` where there is no spread to give (one draw, or one value per cell)."""

    metric: str
    rows: list[str]
    columns: list[str]
    mean: np.ndarray
    std: np.ndarray | None


def _summarise(metric: str, images: list[str], columns: list[str], values: np.ndarray
               ) -> SummaryTable:
    """``values`` ``(images, columns, draws)`` → per-image mean ± std over draws, plus averages.

    The average row is the mean over images; its std is the std over draws of the
    image-averaged metric. Stds are sample stds (ddof = 1), undefined for a single draw: the
    table's ``std`` is then ``None``.
    """
    draws = values.shape[2]
    with warnings.catch_warnings():
        # All-NaN columns (a metric that does not apply to the input) stay NaN, silently.
        warnings.simplefilter("ignore", RuntimeWarning)
        per_draw_average = np.nanmean(values, axis=0)  # (columns, draws)
        mean = np.vstack([np.nanmean(values, axis=2),
                          np.nanmean(per_draw_average, axis=1)[None]])
        std = None
        if draws > 1:
            std = np.vstack([np.nanstd(values, axis=2, ddof=1),
                             np.nanstd(per_draw_average, axis=1, ddof=1)[None]])
    return SummaryTable(metric, [*images, AVERAGE], list(columns), mean, std)


@dataclass
class Panels:
    """Crops shown side by side in the report, all cut from the same window of one image."""

    image: str
    crop: Window
    titles: list[str]
    intensities: list[np.ndarray]
    """The first panel (reference, or noisy input) sets the shared stretch."""
    ratio_titles: list[str]
    ratios: list[np.ndarray]
    looks: float


@dataclass
class FullReferenceResult:
    """Every metric of every (image, column, draw): ``values[metric]`` is
    ``(images, columns, draws)``; the first column is the noisy input."""

    images: list[str]
    columns: list[str]
    draws: int
    values: dict[str, np.ndarray]
    seeds: dict[str, list[list[int]]]
    decorrelation: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """``{column: {image: [choice of each draw]}}`` for the columns that choose their
    decorrelation per input (``decorrelate="auto"``, :meth:`Candidate.resolve`)."""

    def table(self, metric: str) -> SummaryTable:
        return _summarise(metric, self.images, self.columns, self.values[metric])


@dataclass
class NoReferenceResult:
    """``values[metric]`` is ``(images, columns)``, NaN where a metric does not apply (ratio
    statistics of the noisy input) or a despeckler failed; the first column is the input."""

    images: list[str]
    columns: list[str]
    values: dict[str, np.ndarray]
    boxes: dict[str, list[Window]]
    kinds: dict[str, str]
    decorrelation: dict[str, dict[str, str]] = field(default_factory=dict)
    """``{column: {image: choice}}`` for the columns that choose their decorrelation per input
    (``decorrelate="auto"``, :meth:`Candidate.resolve`)."""

    def table(self, metric: str) -> SummaryTable:
        return _summarise(metric, self.images, self.columns, self.values[metric][:, :, None])


@dataclass
class SpeedResult:
    """Time and memory of one despeckler on the speed image (best of ``runs`` timed runs)."""

    name: str
    rows: int
    cols: int
    runs: int
    seconds: float
    """Shortest wall-clock time of a run."""
    cpu_seconds: float
    """Shortest CPU time of a run (all threads of the process)."""
    megapixels_per_second: float
    """``rows · cols / 10⁶ / seconds``."""
    megapixels_per_cpu_second: float
    """``rows · cols / 10⁶ / cpu_seconds``: hardly affected by other work on the machine."""
    peak_memory_mib: float | None
    memory_probe: str
    note: str = ""

    @classmethod
    def from_runs(cls, name: str, size: int, walls: Sequence[float], cpus: Sequence[float],
                  peak_memory_mib: float | None, memory_probe: str, note: str = ""
                  ) -> "SpeedResult":
        wall, cpu = min(walls), min(cpus)
        megapixels = size * size / 1e6
        return cls(name, size, size, len(walls), wall, cpu, megapixels / wall,
                   megapixels / max(cpu, 1e-9), peak_memory_mib, memory_probe, note)


@dataclass
class EvaluationResult:
    """Everything :func:`run_evaluation` measured, ready for the report writer."""

    settings: dict[str, Any]
    candidates: list[Candidate]
    notes: list[str]
    peers: dict[str, str]
    environment: dict[str, Any]
    full_reference: FullReferenceResult | None = None
    no_reference: NoReferenceResult | None = None
    speed: list[SpeedResult] = field(default_factory=list)
    panels: list[Panels] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------


class _Counter:
    """Progress over the whole evaluation: ``progress(done, total)`` after each step."""

    def __init__(self, total: int, progress: ProgressFn | None):
        self.done, self.total, self._progress = 0, total, progress

    def step(self, count: int = 1) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)


def _draw_seed(seed: int, image_name: str, draw: int) -> list[int]:
    # The speckle of a draw depends on the image's name, not on its position in the list, so
    # adding or reordering references leaves the draws of the others unchanged.
    return [int(seed), zlib.crc32(image_name.encode("utf-8")), int(draw)]


def _ratio(noisy: np.ndarray, out: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = noisy.astype(np.float64) / out.astype(np.float64)
    ratio[~np.isfinite(ratio)] = np.nan
    return ratio


def _run_batched(candidates: Sequence[Candidate], images: Callable[[], list[np.ndarray]],
                 labels: Sequence[str], counter: _Counter
                 ) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Outputs of the peers that run in another environment, on all ``images()`` at once.

    One child process per peer instead of one per image: its start-up and imports are paid
    once. A peer that fails gets NaN images and one note per label (image name); a peer that
    runs but returns a wrong output for some images gets NaN for those only, with a note each.
    """
    from .peers import PeerError, get_peer

    external = [c for c in candidates if c.source == "peer" and c.python is not None]
    if not external:
        return {}, []
    inputs = images()
    outputs: dict[str, list[np.ndarray]] = {}
    notes: list[str] = []
    for candidate in external:
        try:
            run = get_peer(candidate.method).run_batch(inputs, looks=candidate.looks,
                                                       python=candidate.python, strict=False)
            outputs[candidate.name] = run.outputs
            refused = {labels[index]: error for index, error in enumerate(run.errors) if error}
            notes.extend(f"{label}: {candidate.name} not evaluated ({error})"
                         for label, error in refused.items())
        except PeerError as error:
            notes.extend(f"{label}: {candidate.name} not evaluated ({error})"
                         for label in dict.fromkeys(labels))
            outputs[candidate.name] = [np.full(image.shape, np.nan, dtype=np.float32)
                                       for image in inputs]
        finally:
            counter.step(len(inputs))
    return outputs, notes


def evaluate_full_reference(
    references: Sequence[LoadedImage], candidates: Sequence[Candidate], *, looks: float,
    draws: int, seed: int, crop: int = 128, progress: ProgressFn | None = None,
    _counter: _Counter | None = None,
) -> tuple[FullReferenceResult, list[Panels], list[str]]:
    """Simulate ``draws`` speckle draws on every reference and score every candidate on each.

    Parameters
    ----------
    references : sequence of LoadedImage
        Speckle-free references (every pixel valid).
    candidates : sequence of Candidate
    looks : float, keyword-only
        Looks of the simulated speckle (the candidates are built for the same).
    draws : int, keyword-only
        Speckle draws per reference.
    seed : int, keyword-only
        Base seed; draw ``d`` of image ``name`` uses ``default_rng([seed, crc32(name), d])``.
    crop : int, keyword-only
        Side of the central crop kept for the report's panels (draw 0).
    progress : callable, optional, keyword-only
        ``progress(done, total)`` after each despeckler run.

    Returns
    -------
    FullReferenceResult
        ``psnr`` (amplitude, peak = 99th percentile of the reference), ``ssim`` (amplitude,
        ``data_range`` = the same peak, 7 × 7 uniform window) and ``edge`` (edge-preservation
        index on log-intensity) for the noisy input and every candidate.
    list of Panels
        Per reference: reference, noisy and outputs of draw 0, and their ratio images.
    list of str
        Notes: a peer that failed (its cells are NaN).

    A registered method that fails raises (it is a bug); a peer that fails is noted. A peer
    in another environment runs once on every draw of every reference (one child process).
    """
    from sardespeckle.metrics import edge_preservation, psnr_amplitude, ssim
    from sardespeckle.speckle import add_speckle, check_speckle_underflow

    from .peers import PeerError

    counter = _counter or _Counter(len(references) * draws * len(candidates), progress)
    columns = [NOISY, *(c.name for c in candidates)]
    values = {m: np.full((len(references), len(columns), draws), np.nan)
              for m in FULL_REFERENCE_METRICS}
    seeds: dict[str, list[list[int]]] = {}
    decorrelation: dict[str, dict[str, list[str]]] = {}
    panels: list[Panels] = []
    notes: list[str] = []
    for reference in references:
        if min(reference.intensity.shape) < MIN_REFERENCE_SIDE:
            rows, cols = reference.intensity.shape
            raise InvalidInputError(
                f"expected references of at least {MIN_REFERENCE_SIDE} × {MIN_REFERENCE_SIDE} "
                f"pixels, got {rows}×{cols} in {reference.path}: the metrics (SSIM's 7 × 7 "
                "window, the edge index's border) and the despecklers' windows need room; "
                "the paper's references are 256 × 256")
        if not reference.valid.all():
            raise InvalidInputError(
                f"expected a reference without masked pixels, got {int((~reference.valid).sum())} "
                f"in {reference.path} (NaN, nodata, zero or negative values: a speckle-free "
                "reference has a value everywhere, and every metric compares whole images); "
                "crop it to its valid area or fill its holes"
            )
        if float(np.ptp(reference.intensity)) == 0:
            raise InvalidInputError(
                f"expected a reference with some structure, got a constant image in "
                f"{reference.path} (its edge preservation is undefined); a flat area tests "
                "a despeckler better as a --real image (ENL, ratio statistics)"
            )

    def noisy_draw(reference: LoadedImage, draw: int) -> np.ndarray:
        noisy = add_speckle(reference.intensity, looks, kind="intensity",
                            rng=np.random.default_rng(_draw_seed(seed, reference.name, draw)))
        check_speckle_underflow(noisy, None, looks, reference.name)
        return noisy

    batched, batch_notes = _run_batched(
        candidates, lambda: [noisy_draw(r, d) for r in references for d in range(draws)],
        [r.name for r in references for _ in range(draws)], counter,
    )
    notes.extend(batch_notes)
    for i, reference in enumerate(references):
        clean = reference.intensity
        clean_amplitude = np.sqrt(clean.astype(np.float64))
        peak = float(np.percentile(clean_amplitude, 99.0))
        log_clean = np.log(clean.astype(np.float64))
        window = _crop_window(clean.shape, crop)
        seeds[reference.name] = []
        for draw in range(draws):
            entropy = _draw_seed(seed, reference.name, draw)
            seeds[reference.name].append(entropy)
            noisy = noisy_draw(reference, draw)
            outputs = {NOISY: noisy}
            for candidate in candidates:
                if candidate.name in batched:
                    outputs[candidate.name] = batched[candidate.name][i * draws + draw]
                    continue
                runs, choice = candidate.resolve(noisy)
                if choice is not None:
                    decorrelation.setdefault(candidate.name, {}).setdefault(
                        reference.name, []).append(candidate.choice(runs))
                try:
                    outputs[candidate.name] = runs.run(noisy)
                except PeerError as error:
                    if draw == 0:
                        notes.append(f"{reference.name}: {candidate.name} not evaluated ({error})")
                    outputs[candidate.name] = np.full(noisy.shape, np.nan, dtype=np.float32)
                finally:
                    counter.step()
            for j, column in enumerate(columns):
                estimate = outputs[column].astype(np.float64)
                if not np.all(np.isfinite(estimate)):
                    continue  # a peer that failed: its cells stay NaN
                amplitude = np.sqrt(estimate)
                values["psnr"][i, j, draw] = psnr_amplitude(clean_amplitude, amplitude)
                values["ssim"][i, j, draw] = ssim(clean_amplitude, amplitude, data_range=peak)
                values["edge"][i, j, draw] = edge_preservation(log_clean, np.log(estimate))
            if draw == 0:
                def crop_of(image: np.ndarray) -> np.ndarray:
                    return np.array(image[window.slices], dtype=np.float32)

                panels.append(Panels(
                    image=reference.name, crop=window,
                    titles=["reference", f"noisy (L={looks:g})", *(c.name for c in candidates)],
                    intensities=[crop_of(clean), crop_of(noisy),
                                 *(crop_of(outputs[c.name]) for c in candidates)],
                    ratio_titles=[c.name for c in candidates],
                    ratios=[crop_of(_ratio(noisy, outputs[c.name])) for c in candidates],
                    looks=float(looks),
                ))
    result = FullReferenceResult(images=[r.name for r in references], columns=columns,
                                 draws=draws, values=values, seeds=seeds,
                                 decorrelation=decorrelation)
    return result, panels, notes


def evaluate_no_reference(
    images: Sequence[LoadedImage], candidates: Sequence[Candidate], *, looks: float,
    window: int = 32, count: int = 8, crop: int = 128, progress: ProgressFn | None = None,
    _counter: _Counter | None = None,
) -> tuple[NoReferenceResult, list[Panels], list[str]]:
    """Score every candidate on real speckled images, without reference.

    The homogeneous areas are found once per image on its noisy input
    (:func:`sardespeckle.metrics.auto_homogeneous_windows`, ``window`` × ``window``, at most
    ``count``, ranked on the even checkerboard half) and used for every output: ENL measured
    on the odd half, ratio-image first-order residual, radiometric bias. Ratio mean and
    variance are over the whole image.

    Returns
    -------
    NoReferenceResult
        Metrics ``enl``, ``ratio_mean``, ``ratio_var``, ``structure``, ``first_order``,
        ``second_order``, ``bias``.
    list of Panels
        Per image: noisy input and outputs, and the ratio images.
    list of str
        Notes (a peer that refused an image, images with too few homogeneous areas).
    """
    from sardespeckle.metrics import (
        auto_homogeneous_windows,
        boxes_mask,
        enl,
        radiometric_bias,
        ratio_image_stats,
    )
    from sardespeckle.decorrelate import CORRELATION_THRESHOLD, estimate_speckle_correlation

    from .peers import PeerError

    counter = _counter or _Counter(len(images) * len(candidates), progress)
    columns = [NOISY, *(c.name for c in candidates)]
    values = {m: np.full((len(images), len(columns)), np.nan) for m in NO_REFERENCE_METRICS}
    all_boxes: dict[str, list[Window]] = {}
    decorrelation: dict[str, dict[str, str]] = {}
    panels: list[Panels] = []
    batched, notes = _run_batched(candidates, lambda: [m.intensity for m in images],
                                  [m.name for m in images], counter)
    for i, image in enumerate(images):
        noisy, valid = image.intensity, image.valid
        try:
            boxes = auto_homogeneous_windows(noisy, window=window, count=count, valid=valid,
                                             parity=0)
        except InvalidInputError:
            masked = int(np.count_nonzero(~valid))
            notes.append(
                f"{image.name}: not scored, no {window}×{window} window of valid, positive "
                f"pixels in {image.path} ({masked} masked pixels: NaN, nodata or zero "
                "intensity); a smaller --enl-window may find some"
            )
            all_boxes[image.name] = []
            for candidate in candidates:
                if candidate.name not in batched:
                    counter.step()  # the runs this image would have had
            continue
        all_boxes[image.name] = boxes
        if len(boxes) < count:
            notes.append(f"{image.name}: only {len(boxes)} homogeneous {window}×{window} areas "
                         f"found (of {count} asked)")
        try:
            # The estimator of decorrelate="auto" (homogeneous windows, not scene texture), so
            # this note and the decorrelation notes agree.
            rho = estimate_speckle_correlation(noisy, valid=valid)
            if max(abs(r) for r in rho) > CORRELATION_THRESHOLD:
                notes.append(
                    f"{image.name}: the speckle is spatially correlated (correlation of "
                    f"log-intensity {rho[0]:.2f} along rows, {rho[1]:.2f} along columns: lag 1 "
                    "less the lag-2 correlation of texture, on its most homogeneous 16×16 "
                    "windows); the ratio image is then not pure white "
                    "speckle even for an ideal filter: its structure is not 0, and its mean and "
                    "variance are off their ideals (a local mean of correlated speckle follows "
                    "the pixel: I/R̂ has a mean below 1 even for a filter that keeps the image's "
                    "mean)"
                )
        except InvalidInputError:
            pass
        mask = boxes_mask(noisy.shape, boxes)
        values["enl"][i, 0] = enl(noisy, boxes, valid=valid, parity=1)
        measured = values["enl"][i, 0]
        if np.isfinite(measured) and not looks / LOOKS_MISFIT <= measured <= looks * LOOKS_MISFIT:
            notes.append(
                f"{image.name}: its homogeneous areas measure an ENL of {measured:.2f}, against "
                f"the {looks:g} looks given (--looks): the methods run with {looks:g} looks and "
                f"the ratio variance's ideal 1/L assumes them; check --looks for this image")
        window_crop = _crop_window(noisy.shape, crop)
        crops, ratios = [np.array(noisy[window_crop.slices])], []
        chosen: dict[str, list[str]] = {}  # the note of a per-input choice -> columns
        for j, candidate in enumerate(candidates, start=1):
            if candidate.name in batched:
                out = batched[candidate.name][i]
            else:
                runs, choice = candidate.resolve(noisy)
                if choice is not None:
                    decorrelation.setdefault(candidate.name, {})[image.name] = \
                        candidate.choice(runs)
                    chosen.setdefault(choice, []).append(candidate.name)
                try:
                    out = runs.run(noisy)
                except PeerError as error:
                    notes.append(f"{image.name}: {candidate.name} not evaluated ({error})")
                    out = np.full(noisy.shape, np.nan, dtype=np.float32)
                finally:
                    counter.step()
            usable = valid & np.isfinite(out) & (out > 0)
            if usable.any():
                values["enl"][i, j] = enl(out, boxes, valid=usable, parity=1)
                stats = ratio_image_stats(noisy, out, boxes=boxes, valid=usable)
                values["ratio_mean"][i, j] = stats.mean
                values["ratio_var"][i, j] = stats.variance
                values["structure"][i, j] = stats.structure
                values["first_order"][i, j] = stats.first_order
                values["second_order"][i, j] = stats.second_order
                values["bias"][i, j] = radiometric_bias(noisy, out, mask & usable)
            crops.append(np.array(out[window_crop.slices], dtype=np.float32))
            ratios.append(np.array(_ratio(noisy, out)[window_crop.slices], dtype=np.float32))
        notes.extend(f"{image.name}: {', '.join(names)} with decorrelate=auto ran {choice}"
                     for choice, names in chosen.items())
        panels.append(Panels(
            image=image.name, crop=window_crop,
            titles=[f"input ({image.kind})", *(c.name for c in candidates)],
            intensities=crops, ratio_titles=[c.name for c in candidates], ratios=ratios,
            looks=float(looks),
        ))
    result = NoReferenceResult(images=[m.name for m in images], columns=columns, values=values,
                               boxes=all_boxes, kinds={m.name: m.kind for m in images},
                               decorrelation=decorrelation)
    return result, panels, notes


# --------------------------------------------------------------------------------------------
# speed and memory
# --------------------------------------------------------------------------------------------


def speed_scene(size: int, *, looks: float = 1.0, seed: int = 0) -> np.ndarray:
    """A seeded simulated speckled intensity ``(size, size)`` float32 for timing runs.

    A log-normal textured reflectivity (smoothed Gaussian noise, about 15 dB of range) with a
    grid of fields of 4× contrast, times ``looks``-look speckle: edges and texture so that
    adaptive filters take their usual branches.
    """
    from scipy import ndimage

    from sardespeckle.speckle import simulate_speckle

    rng = np.random.default_rng([int(seed), size, 7])
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=6.0)
    texture *= 1.2 / max(float(texture.std()), 1e-12)
    rows, cols = np.indices((size, size))
    fields = np.where(((rows // 128) + (cols // 96)) % 3 == 0, 4.0, 1.0)
    reflectivity = 100.0 * np.exp(texture) * fields
    speckle = simulate_speckle((size, size), looks, rng=rng)
    return (reflectivity * speckle).astype(np.float32)


def _time_run(candidate: Candidate, image: np.ndarray) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    candidate.run(image)
    return time.perf_counter() - wall, time.process_time() - cpu


def _speed_in_process(candidate: Candidate, size: int, looks: float, seed: int) -> SpeedResult:
    import gc
    import tracemalloc

    image = speed_scene(size, looks=looks, seed=seed)
    warm = image[:min(size, WARMUP_SIDE), :min(size, WARMUP_SIDE)]
    candidate.run(np.ascontiguousarray(warm))
    gc.collect()
    walls, cpus = zip(*(_time_run(candidate, image) for _ in range(TIMED_RUNS)))
    tracemalloc.start()
    try:
        candidate.run(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    note = "" if candidate.family == "filter" else "tracemalloc may miss native (torch) allocations"
    return SpeedResult.from_runs(candidate.name, size, walls, cpus, peak / 2**20,
                                 "tracemalloc: peak of the numpy/Python heap during a run", note)


def _run_probe(candidate: Candidate, size: int, looks: float, seed: int, mode: str) -> dict:
    spec = {"candidate": candidate.as_dict(), "size": size, "looks": looks, "seed": seed,
            "mode": mode}
    environment = dict(os.environ)
    if mode == "memory":
        # A fixed mmap threshold makes glibc return every large array to the system when it is
        # freed, so the resident size follows the live memory (the dynamic threshold would keep
        # the freed arrays of the set-up resident and hide the run's own peak). Not for the
        # timing runs: fresh pages cost page faults that a long-running process mostly avoids.
        environment["MALLOC_MMAP_THRESHOLD_"] = "131072"
    completed = subprocess.run(
        [sys.executable, "-m", "sardespeckle.evaluation._probe"], input=json.dumps(spec),
        capture_output=True, text=True, check=False, timeout=3600, env=environment,
    )
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no message"])[-1]
        raise SardespeckleError(f"speed probe of {candidate.name} failed: {tail}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _speed_in_subprocess(candidate: Candidate, size: int, looks: float, seed: int
                         ) -> SpeedResult:
    timing = _run_probe(candidate, size, looks, seed, "time")
    memory = _run_probe(candidate, size, looks, seed, "memory")
    return SpeedResult.from_runs(
        candidate.name, size, timing["walls"], timing["cpus"], memory["memory_mib"],
        "subprocess: peak RSS during a run minus RSS before it (input resident)", memory["note"],
    )


def _speed_elsewhere(candidate: Candidate, size: int, looks: float, seed: int, memory: str
                     ) -> SpeedResult:
    """Speed of a peer in another environment, timed by its child process.

    One child runs the warm-up crop and the timed runs (their times exclude its start-up and
    imports); with ``memory="subprocess"`` a second child measures the peak resident memory
    of one run, as :func:`_speed_in_subprocess` does.
    """
    from .peers import get_peer

    peer = get_peer(candidate.method)
    image = speed_scene(size, looks=looks, seed=seed)
    warm = np.ascontiguousarray(image[:min(size, WARMUP_SIDE), :min(size, WARMUP_SIDE)])
    timed = peer.run_batch([warm, *[image] * TIMED_RUNS], looks=looks, python=candidate.python)
    note = f"runs in {candidate.python}: timed by its child process, start-up and imports " \
        "excluded"
    peak, probe = None, "subprocess: peak RSS of the peer's child process during a run minus " \
        "RSS before it"
    if memory == "subprocess":
        measured = peer.run_batch([warm, image], looks=looks, python=candidate.python,
                                  memory=True)
        peak = measured.peak_memory_mib[-1]
    else:
        note += "; memory is measured only with the subprocess probe"
    return SpeedResult.from_runs(candidate.name, size, timed.seconds[1:], timed.cpu_seconds[1:],
                                 peak, probe, note)


def measure_speed(
    candidates: Sequence[Candidate], *, size: int = 1024, looks: float = 1.0, seed: int = 0,
    memory: str = "subprocess", progress: ProgressFn | None = None,
    _counter: _Counter | None = None,
) -> list[SpeedResult]:
    """Time every candidate on :func:`speed_scene` ``(size, size)`` and measure its memory.

    Parameters
    ----------
    memory : {"subprocess", "tracemalloc"}, keyword-only
        ``"subprocess"``: each candidate is timed in a fresh Python process, and its memory
        measured in another: the peak resident set size during a run minus the resident size
        just before it (``VmHWM`` after resetting it through ``/proc/self/clear_refs``, Linux,
        with glibc's mmap threshold fixed so that freed arrays leave the resident set), so
        numpy, torch and native allocations all count; the input image is resident before, the
        output is not. ``"tracemalloc"``: in this process, the peak of
        the memory traced by :mod:`tracemalloc` during a second run (numpy arrays and Python
        objects; not torch's allocator), fast enough for tests. A peer in another environment
        is always timed in its own child process (:func:`_speed_elsewhere`).

    Notes
    -----
    One warm-up run on a ``256²`` crop first (lazy imports, weights, thread pools), then
    :data:`TIMED_RUNS` timed runs, of which the shortest wall-clock and CPU times count;
    throughput is ``rows · cols / 10⁶`` per second of either. On a loaded machine the wall
    time grows with the other work while the CPU time (all threads of the process) hardly does;
    for a multi-threaded method the CPU time exceeds the wall time.
    """
    if memory not in MEMORY_PROBES:
        raise UsageError(f"expected memory probe in {MEMORY_PROBES}, got {memory!r}")
    from .peers import PeerError

    counter = _counter or _Counter(len(candidates), progress)
    results = []
    for candidate in candidates:
        try:
            if candidate.python is not None:
                results.append(_speed_elsewhere(candidate, size, looks, seed, memory))
            elif memory == "subprocess":
                results.append(_speed_in_subprocess(candidate, size, looks, seed))
            else:
                results.append(_speed_in_process(candidate, size, looks, seed))
        except (PeerError, SardespeckleError) as error:
            if candidate.source != "peer":
                raise
            results.append(SpeedResult(candidate.name, size, size, 0, math.nan, math.nan,
                                       math.nan, math.nan, None, memory, f"failed: {error}"))
        finally:
            counter.step()
    return results


# --------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    from sardespeckle import __version__

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "sardespeckle": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_fast_bf16": _fast_bf16(),
        "load_average_at_start": load,
    }


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``), or None:
    timings mean little without it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    machine = platform.processor() or platform.machine()
    return f"{machine} (model not reported)" if machine else None


def _fast_bf16() -> bool | None:
    """Whether ``precision=auto`` runs the networks in bf16 on this CPU (it has AVX512-BF16 or
    AMX), or None when no network was evaluated (torch not imported: it is not imported for
    this) or torch cannot say."""
    if "torch" not in sys.modules:
        return None
    try:
        from sardespeckle.models.inference import cpu_has_fast_bf16

        return cpu_has_fast_bf16()
    except Exception:  # noqa: BLE001 - a broken torch must not stop a report
        return None


def _check_looks(looks) -> float:
    if isinstance(looks, bool) or not isinstance(looks, numbers.Real) \
            or not math.isfinite(float(looks)) or looks <= 0:
        raise UsageError(f"expected looks to be a number > 0, got {looks!r}")
    return float(looks)


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UsageError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def run_evaluation(
    *,
    references: Sequence[str | os.PathLike] = (),
    real: Sequence[str | os.PathLike] = (),
    methods: str | Sequence[str] = "all",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    peers: str | Sequence[str] = "auto",
    peer_python: Mapping[str, str | os.PathLike] | None = None,
    looks: float = 1.0,
    draws: int = 3,
    seed: int = 0,
    kind: str | None = None,
    complex_layout: str | None = None,
    speed_size: int = 1024,
    memory: str = "subprocess",
    enl_window: int = 32,
    enl_count: int = 8,
    crop: int = 128,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Run the full-reference, no-reference and speed protocols on the chosen despecklers.

    Parameters
    ----------
    references : sequence of path
        Speckle-free references (full-reference protocol); intensity or amplitude files.
    real : sequence of path
        Real speckled images (no-reference protocol), including complex ones.
    methods, params, peers, peer_python
        As :func:`resolve_candidates`; ``peer_python`` (``{peer: interpreter}``) runs those
        peers in a child process of another Python environment.
    looks : float
        Looks of the simulated speckle and of the real images; the methods are built for it.
    draws, seed : int
        Speckle draws per reference, and the base seed.
    kind : str, optional
        Kind of the files (detected when left out): applies to every file but those read
        with ``complex_layout``.
    complex_layout : {"last", "first", "bands"}, optional
        Real/imaginary layout of complex files; applied only to files it fits.
    speed_size : int
        Side of the speed image; 0 skips the speed protocol.
    memory : {"subprocess", "tracemalloc"}
        Memory probe of :func:`measure_speed`.
    enl_window, enl_count : int
        Homogeneous areas of the no-reference protocol.
    crop : int
        Side of the crops shown in the report.
    progress : callable, optional
        ``progress(done, total)`` over all runs of all protocols.

    Returns
    -------
    EvaluationResult
    """
    from .peers import peer_status

    references, real = [os.fspath(p) for p in references], [os.fspath(p) for p in real]
    if not references and not real:
        raise UsageError("nothing to evaluate: give references (full-reference) and/or real "
                         "images (no-reference)")
    looks = _check_looks(looks)
    draws = _check_count(draws, "draws", 1)
    seed = _check_count(seed, "seed", 0)
    speed_size = _check_count(speed_size, "speed_size", 0)
    enl_window = _check_count(enl_window, "enl_window", 4)
    enl_count = _check_count(enl_count, "enl_count", 1)
    crop = _check_count(crop, "crop", 8)
    if memory not in MEMORY_PROBES:
        raise UsageError(f"expected memory probe in {MEMORY_PROBES}, got {memory!r}")
    if speed_size and speed_size < WARMUP_SIDE // 4:
        raise UsageError(f"expected speed_size 0 or >= {WARMUP_SIDE // 4}, got {speed_size}")

    candidates, notes = resolve_candidates(methods, looks=looks, params=params, peers=peers,
                                           peer_python=peer_python)
    _refuse_repeated(references, "--references")
    _refuse_repeated(real, "--real")
    # One namespace for both protocols: a real image with a reference's file name gets "#2"
    # (its figures would otherwise replace the reference's).
    names = unique_names(references, real)
    loaded_references = [_load_reference(path, kind=kind, name=name)
                         for path, name in zip(references, names)]
    loaded_real = [
        load_image(path, kind=kind, complex_layout=complex_layout, name=name)
        for path, name in zip(real, names[len(references):])
    ]

    total = (len(loaded_references) * draws + len(loaded_real) + (1 if speed_size else 0)) \
        * len(candidates)
    counter = _Counter(total, progress)
    settings = {
        "references": references, "real": real, "methods": methods if isinstance(methods, str)
        else list(methods), "params": _jsonable(dict(params or {})),
        "peers": peers if isinstance(peers, str) else list(peers),
        "peer_python": {c.method: c.python for c in candidates if c.python is not None},
        "looks": looks,
        "draws": draws, "seed": seed, "kind": kind, "complex_layout": complex_layout,
        "speed_size": speed_size, "memory": memory, "enl_window": enl_window,
        "enl_count": enl_count, "crop": crop,
    }
    result = EvaluationResult(settings=settings, candidates=candidates, notes=notes,
                              peers=peer_status({c.method: c.python for c in candidates
                                                 if c.python is not None}),
                              environment=_environment())
    for image in [*loaded_references, *loaded_real]:
        result.environment.setdefault("inputs", {})[image.name] = (
            f"{image.path}: {image.kind} ({image.kind_reason}), "
            f"{image.intensity.shape[0]}×{image.intensity.shape[1]}"
        )
    if loaded_references:
        result.full_reference, panels, reference_notes = evaluate_full_reference(
            loaded_references, candidates, looks=looks, draws=draws, seed=seed, crop=crop,
            _counter=counter,
        )
        result.panels.extend(panels)
        result.notes.extend(reference_notes)
    if loaded_real:
        result.no_reference, panels, real_notes = evaluate_no_reference(
            loaded_real, candidates, looks=looks, window=enl_window, count=enl_count, crop=crop,
            _counter=counter,
        )
        result.panels.extend(panels)
        result.notes.extend(real_notes)
    if speed_size:
        result.speed = measure_speed(candidates, size=speed_size, looks=looks, seed=seed,
                                     memory=memory, _counter=counter)
    return result
