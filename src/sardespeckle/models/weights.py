"""Weights as data with an identity: registry entries, checked save and load.

A weights file is ``torch.save({"state_dict": {...}, "meta": {...}})`` holding only tensors and
plain Python values, so that it loads with ``torch.load(weights_only=True)``. Released files live
in ``sardespeckle/models/weights/`` and are named in :data:`REGISTRY` with their sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sardespeckle.errors import InvalidInputError, WeightsError
from sardespeckle.models.dncnn import DnCNN
from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN

__all__ = [
    "DOMAINS",
    "GAUSSIAN_DOMAINS",
    "DEFAULT_SARCNN",
    "DEFAULT_SARCNN_BY_LOOKS",
    "DEFAULT_SARCNN_CORRELATED",
    "DEFAULT_SARCNN_CORRELATED_BY_LOOKS",
    "REGISTRY",
    "WEIGHTS_DIR",
    "Architecture",
    "WeightsEntry",
    "correlated_counterpart",
    "list_weights",
    "load_weights",
    "save_weights",
    "sha256_file",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "sardespeckle-weights"
FORMAT_VERSION = 1
#: What the network's input is: SAR-CNN's normalised log-amplitude, or a Gaussian denoiser meant
#: for MuLoG: ``"gaussian-01"`` (trained on ``[0, 1]`` images, natural or SAR log-images mapped
#: to ``[0, 1]``; what ``sardespeckle train`` writes for task ``gaussian``) and the older name
#: ``"log-intensity-gaussian"``.
DOMAINS = ("log-amplitude", "gaussian-01", "log-intensity-gaussian")
GAUSSIAN_DOMAINS = ("gaussian-01", "log-intensity-gaussian")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Typed description of a network, enough to rebuild it before loading its state."""

    kind: str = "dncnn"
    depth: int = 19
    channels: int = 1
    features: int = 64
    residual: bool = True

    @classmethod
    def of(cls, model: DnCNN) -> Architecture:
        return cls(
            kind="dncnn",
            depth=model.depth,
            channels=model.channels,
            features=model.features,
            residual=model.residual,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Architecture:
        """Parse a plain dict; unknown keys or wrong types raise :class:`WeightsError`."""
        if not isinstance(values, Mapping):
            raise WeightsError(f"expected the architecture as a dict, got {type(values).__name__}")
        known = {field.name: field.type for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise WeightsError(f"expected architecture keys among {sorted(known)}, got unknown {unknown}")
        defaults = cls()
        for key, value in values.items():
            wanted = type(getattr(defaults, key))
            if type(value) is not wanted:
                raise WeightsError(f"expected architecture {key} of type {wanted.__name__}, got {value!r}")
        arch = cls(**values)
        if arch.kind != "dncnn":
            raise WeightsError(f"expected architecture kind 'dncnn', got {arch.kind!r}")
        return arch

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def build(self) -> DnCNN:
        """A freshly initialised network of this architecture."""
        try:
            return DnCNN(depth=self.depth, channels=self.channels, features=self.features, residual=self.residual)
        except InvalidInputError as exc:
            raise WeightsError(f"invalid architecture {self.as_dict()}: {exc}") from None

    def differences(self, other: Architecture) -> list[str]:
        """``"depth: 17 here, 19 there"`` for each field that differs."""
        return [
            f"{field.name}: {getattr(self, field.name)!r} here, {getattr(other, field.name)!r} there"
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        ]


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """Identity card of a released weights file.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"sarcnn-s1-l1"``.
    filename : str
        File name inside :data:`WEIGHTS_DIR`.
    sha256 : str
        Hex digest of the file, checked before every load.
    architecture : Architecture
        The network the state belongs to.
    looks : float
        Looks of the speckle the network was trained to remove.
    norm_min, norm_max : float
        Normalisation ``x = (log_value − norm_min) / (norm_max − norm_min)`` (``m``, ``M``).
    domain : str
        One of :data:`DOMAINS`.
    training_data : str
        Where the training references came from.
    validation_psnr : float or None
        Measured PSNR (dB) on the validation set, when measured.
    description : str
        One or two sentences for ``list``-style output.
    sigma_range : (float, float) or None
        Gaussian denoisers: the noise stds ``(low, high)`` (``[0, 1]`` scale) a blind network
        was trained on; checked against the file's meta when set.
    trained_sigma : float or None
        Gaussian denoisers: the noise std of a fixed-σ network; checked likewise.
    speckle_band, speckle_band_share : (float, float), float or None
        SAR-CNN trained on spatially correlated speckle: the band fractions and the share of
        patches (the training option); checked likewise.
    """

    name: str
    filename: str
    sha256: str
    architecture: Architecture
    looks: float = 1.0
    norm_min: float = LOG_AMPLITUDE_MIN
    norm_max: float = LOG_AMPLITUDE_MAX
    domain: str = "log-amplitude"
    training_data: str = ""
    validation_psnr: float | None = None
    description: str = ""
    sigma_range: tuple[float, float] | None = None
    trained_sigma: float | None = None
    speckle_band: tuple[float, float] | None = None
    speckle_band_share: float | None = None

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.filename


#: The shipped networks' architectures: the Gaussian DnCNN-17 (MuLoG) and SAR-CNN's DnCNN-19.
_DNCNN17 = Architecture(kind="dncnn", depth=17, channels=1, features=64, residual=True)
_SARCNN19 = Architecture(kind="dncnn", depth=19, channels=1, features=64, residual=True)


def _sarcnn_s1(name: str, sha256: str, validation_psnr: float, what: str, *,
               default: str = "", looks: float = 1.0,
               speckle_band: tuple[float, float] | None = None,
               speckle_band_share: float | None = None) -> WeightsEntry:
    """Entry of a released Sentinel-1 SAR-CNN for ``looks``-look speckle (``what``: how it was
    trained; ``default``: for which inputs it is the default, if it is)."""
    speckle = "single-look" if looks == 1 else f"{looks:g}-look (multilooked)"
    return WeightsEntry(
        name=name,
        filename=f"{name}.pt",
        sha256=sha256,
        architecture=_SARCNN19,
        looks=looks,
        training_data="change-aware temporal references of Sentinel-1 series (Lely, Marais 2)",
        validation_psnr=validation_psnr,
        description=f"SAR-CNN for {speckle} Sentinel-1, {what} (see docs/model_cards/{name}.md)"
                    + (f"; the default for {default}" if default else ""),
        speckle_band=speckle_band,
        speckle_band_share=speckle_band_share,
    )


def _fixed_sigma_natural(sigma_255: int, sha256: str, validation_psnr: float) -> WeightsEntry:
    """Entry of a member of MuLoG's ``dncnn-natural`` set: a DnCNN-17 for σ = sigma_255/255."""
    name = f"dncnn-natural-s{sigma_255}"
    return WeightsEntry(
        name=name,
        filename=f"{name}.pt",
        sha256=sha256,
        architecture=_DNCNN17,
        domain="gaussian-01",
        trained_sigma=sigma_255 / 255.0,
        training_data="train400 (400 grey natural images, 180²)",
        validation_psnr=validation_psnr,
        description=f"fixed-σ Gaussian DnCNN on [0, 1] natural images, σ = {sigma_255}/255, member "
                    "of MuLoG's dncnn-natural set (see docs/model_cards/dncnn-natural-fixed.md)",
    )


#: Released weights, by name.
REGISTRY: dict[str, WeightsEntry] = {
    "sarcnn-s1-l1": _sarcnn_s1(
        "sarcnn-s1-l1", "5a71a66fbd13c505f09a57222c6bfb55fc3cf632f05ffd128463c85ac045ce85", 24.41,
        "6710 steps"),
    "sarcnn-s1-l1-v2": _sarcnn_s1(
        "sarcnn-s1-l1-v2", "ca287da8a3c129c31eecde62f85f7305a30157e8fbfe81f4330a23376443bfa6", 24.56,
        "level-independent (gain-augmented), 25710 steps"),
    "sarcnn-s1-l1-v3": _sarcnn_s1(
        "sarcnn-s1-l1-v3", "92fdcd300ef6d29b6da56e229e8a6b654f76f5c97f15c91fa229553710b8f162", 24.77,
        "level-independent (gain-augmented), v2 continued with larger batches and cosine "
        "schedules, 38210 steps", default="single-look input"),
    "sarcnn-s1-l1-corr": _sarcnn_s1(
        "sarcnn-s1-l1-corr", "f5ffcade758d31d2d9274460bb45d01d8f2101097e304a468c685350929c9ffb", 24.38,
        "sarcnn-s1-l1-v3 fine-tuned on spatially correlated speckle (detected SLC data at full "
        "resolution), 39710 steps; the default for correlated single-look input before "
        "sarcnn-s1-l1-corr2", speckle_band=(0.55, 1.0), speckle_band_share=0.8),
    "sarcnn-s1-l1-corr2": _sarcnn_s1(
        "sarcnn-s1-l1-corr2", "b5d14d794e7ecc81d1365106e14062013fb87ef9cf6396de47ac1d8007418500", 24.44,
        "sarcnn-s1-l1-corr trained 3000 steps more on the same correlated speckle (detected SLC "
        "data at full resolution), 42710 steps; the default for correlated single-look input "
        "before sarcnn-s1-l1-corr3w", speckle_band=(0.55, 1.0), speckle_band_share=0.8),
    "sarcnn-s1-l1-corr3w": _sarcnn_s1(
        "sarcnn-s1-l1-corr3w", "ccf202e467b0550b41b3df298b9d475ef52c3b07b70c0d6c3b91a57c77ab9c77", 24.47,
        "sarcnn-s1-l1-corr2 trained 4000 steps more on correlated speckle of a wider band "
        "(detected SLC data at full resolution, band fractions 0.4-1), 46710 steps",
        default="single-look input with correlated speckle (decorrelate=auto)",
        speckle_band=(0.4, 1.0), speckle_band_share=0.8),
    "sarcnn-s1-l2": _sarcnn_s1(
        "sarcnn-s1-l2", "f4bdfad28ce2a7caa057f40cdcd32da9c9f229ad73c5b0c19f2753ed74523937", 26.40,
        "sarcnn-s1-l1-v3 fine-tuned for 2-look speckle, 39210 steps", looks=2.0,
        default="input of about 1.4 to 3 looks"),
    "sarcnn-s1-l4": _sarcnn_s1(
        "sarcnn-s1-l4", "c77a8e2ee3bd13a46bb0fa7ad9120bf1382513040b782396846ad2bc57260e55", 28.67,
        "sarcnn-s1-l1-v3 fine-tuned for 4.4-look speckle (GRD), 40610 steps", looks=4.4,
        default="multilooked input (about 3 looks and more)"),
    "sarcnn-s1-l4-corr": _sarcnn_s1(
        "sarcnn-s1-l4-corr", "4f3b66fbdb52b29fa682cd82ac1b40f2e5531a85d6c8059f907124e506ddff62", 28.39,
        "sarcnn-s1-l4 trained 2000 steps more on correlated multilooked speckle (band fractions "
        "0.4-1), 42610 steps", looks=4.4,
        default="multilooked input (about 3 looks and more) with correlated speckle "
                "(decorrelate=auto)",
        speckle_band=(0.4, 1.0), speckle_band_share=0.8),
    "dncnn-natural": WeightsEntry(
        name="dncnn-natural",
        filename="dncnn-natural.pt",
        sha256="2615824301b5e23f9d1835a2b041755b3e2af501e65af14625223a979a3bddd1",
        architecture=_DNCNN17,
        looks=1.0,
        domain="gaussian-01",
        sigma_range=(0.0, 55.0 / 255.0),
        training_data="train400 (400 grey natural images, 180²)",
        validation_psnr=28.74,
        description="blind Gaussian DnCNN on [0, 1] natural images, σ in [0, 55]/255, for MuLoG "
                    "(see docs/model_cards/dncnn-natural.md)",
    ),
    "dncnn-natural-s35": _fixed_sigma_natural(
        35, "8978c01d745d9af8a218e8e17ec814d99efef6615e422daa0471e4331913b25e", 27.34),
    "dncnn-natural-s70": _fixed_sigma_natural(
        70, "a6fae926056bc0c39f6797a774e5c3c843717528fab39abec59092d08c1689e4", 24.50),
    "dncnn-sar": WeightsEntry(
        name="dncnn-sar",
        filename="dncnn-sar.pt",
        sha256="06a43b083b86d5649eb0f55ddce9809b157b395b4e33c9229f202004273032a2",
        architecture=_DNCNN17,
        looks=1.0,
        domain="gaussian-01",
        sigma_range=(0.0, 55.0 / 255.0),
        training_data="log-images of the speckle-free Sentinel-1 references (Lely, Marais 2)",
        validation_psnr=31.31,
        description="blind Gaussian DnCNN on SAR log-images mapped to [0, 1], σ in [0, 55]/255, "
                    "MuLoG's dncnn-sar-blind (see docs/model_cards/dncnn-sar.md)",
    ),
    "dncnn-sar-s25": WeightsEntry(
        name="dncnn-sar-s25",
        filename="dncnn-sar-s25.pt",
        sha256="586d3dc66b05ac4ed482a1aab96befe4108e6f86b72f03f6508e0702868b1d67",
        architecture=_DNCNN17,
        looks=1.0,
        domain="gaussian-01",
        trained_sigma=25.0 / 255.0,
        training_data="log-images of the speckle-free Sentinel-1 references (Lely, Marais 2)",
        validation_psnr=34.19,
        description="fixed-σ Gaussian DnCNN (σ = 25/255) on SAR log-images scaled by their "
                    "log-intensity noise level in [0.15, 1.5]: the paper's hybrid, MuLoG's "
                    "dncnn-sar (see docs/model_cards/dncnn-sar-s25.md)",
    ),
}

#: The SAR-CNN weights ``--method sarcnn`` uses when none are named.
DEFAULT_SARCNN = "sarcnn-s1-l1-v3"

#: The SAR-CNN weights ``--method sarcnn`` uses, when none are named, for single-look input
#: whose speckle is spatially correlated (detected SLC data; ``decorrelate=auto``), at full
#: resolution instead of :data:`DEFAULT_SARCNN` on the subsampled image.
DEFAULT_SARCNN_CORRELATED = "sarcnn-s1-l1-corr3w"

#: Default SAR-CNN weights per looks of the speckle they were trained for: ``--method sarcnn``
#: without ``--weights`` uses those nearest to the input's looks (in ratio).
DEFAULT_SARCNN_BY_LOOKS: dict[float, str] = {1.0: DEFAULT_SARCNN, 2.0: "sarcnn-s1-l2",
                                              4.4: "sarcnn-s1-l4"}

#: For the looks of :data:`DEFAULT_SARCNN_BY_LOOKS`, the weights trained on spatially
#: correlated speckle that ``decorrelate=auto`` picks instead when the input's speckle is
#: correlated (full resolution); looks without an entry get the white-speckle weights,
#: subsampled where the correlation is strong (:func:`sardespeckle.decorrelate.choose_decorrelation`).
DEFAULT_SARCNN_CORRELATED_BY_LOOKS: dict[float, str] = {1.0: DEFAULT_SARCNN_CORRELATED,
                                                         4.4: "sarcnn-s1-l4-corr"}


def correlated_counterpart(default: str | None) -> str | None:
    """The weights trained on correlated speckle that ``decorrelate=auto`` puts in place of the
    default weights ``default`` (those of :data:`DEFAULT_SARCNN_BY_LOOKS` for some looks), or
    None when those looks have none (:data:`DEFAULT_SARCNN_CORRELATED_BY_LOOKS`)."""
    trained = next((looks for looks, name in DEFAULT_SARCNN_BY_LOOKS.items() if name == default),
                   None)
    return DEFAULT_SARCNN_CORRELATED_BY_LOOKS.get(trained)


def list_weights() -> list[WeightsEntry]:
    """Registered weights, sorted by name."""
    return [REGISTRY[name] for name in sorted(REGISTRY)]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(
    model: DnCNN,
    path: str | os.PathLike[str],
    *,
    name: str = "",
    looks: float = 1.0,
    norm_min: float = LOG_AMPLITUDE_MIN,
    norm_max: float = LOG_AMPLITUDE_MAX,
    domain: str = "log-amplitude",
    training_data: str = "",
    validation_psnr: float | None = None,
    description: str = "",
    sigma_range: tuple[float, float] | None = None,
    trained_sigma: float | None = None,
    span: float | None = None,
    log_sigma_range: tuple[float, float] | None = None,
    training_level: float | None = None,
    speckle_band: tuple[float, float] | None = None,
    speckle_band_share: float | None = None,
) -> str:
    """Write ``model``'s state and its identity to ``path``; return the file's sha256.

    The file is written next to its destination and renamed onto it, so an interrupted save
    never leaves a truncated file under the final name. Tensors are stored as contiguous CPU
    copies; ``meta`` holds only plain Python values. Batch-norm-folded copies are refused: their
    state does not fit the trainable architecture.

    Gaussian denoisers (a domain in :data:`GAUSSIAN_DOMAINS`) record their noise: ``sigma_range``
    ``(low, high)`` for a blind network or ``trained_sigma`` for a fixed-σ one (``[0, 1]``
    scale), and ``span``, the share of ``[0, 1]`` their SAR log training images filled, or
    ``log_sigma_range``, the log-intensity noise levels a fixed-σ SAR network was trained for
    (``sardespeckle.training.gaussian.LogScalePatchSampler``). These keys are written only when
    given, so SAR-CNN files keep their exact former content.

    SAR-CNN files may record ``training_level``, the median intensity of the scenes the network
    was trained on (``sardespeckle train`` writes it): ``level="auto"`` brings each scene there
    (:class:`~sardespeckle.models.sarcnn.SarCnnDenoiser`); without it, ``SCENE_LEVEL``. They
    may record ``speckle_band`` ``(low, high)`` and ``speckle_band_share``: the network was
    trained on spatially correlated speckle (the training option of the same names), so
    ``decorrelate="auto"`` gives it correlated data of its looks as they are
    (:func:`sardespeckle.decorrelate.choose_decorrelation`).
    """
    if not isinstance(model, DnCNN):
        raise InvalidInputError(f"expected a DnCNN, got {type(model).__name__}")
    if model.is_folded:
        raise InvalidInputError("expected an unfolded DnCNN, got a fold_batchnorm() copy; save the original")
    if domain not in DOMAINS:
        raise InvalidInputError(f"expected domain in {DOMAINS}, got {domain!r}")
    if not (math.isfinite(looks) and looks > 0):
        raise InvalidInputError(f"expected looks > 0, got {looks!r}")
    if not (math.isfinite(norm_min) and math.isfinite(norm_max) and norm_max > norm_min):
        raise InvalidInputError(f"expected finite norm_min < norm_max, got {norm_min!r}, {norm_max!r}")
    noise = {key: value for key, value in (("sigma_range", sigma_range), ("trained_sigma", trained_sigma),
                                           ("span", span), ("log_sigma_range", log_sigma_range))
             if value is not None}
    for key in ("sigma_range", "log_sigma_range"):
        if key in noise:
            noise[key] = [float(value) for value in noise[key]]
    try:
        _check_gaussian_meta({"domain": domain, **noise})
        if training_level is not None:
            noise["training_level"] = float(training_level)
            _check_training_level({"domain": domain, **noise})
        if speckle_band is not None:
            noise["speckle_band"] = [float(value) for value in speckle_band]
            noise["speckle_band_share"] = float(1.0 if speckle_band_share is None
                                                else speckle_band_share)
            _check_speckle_band({"domain": domain, **noise})
    except WeightsError as error:
        raise InvalidInputError(str(error)) from None

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": str(name),
        "architecture": Architecture.of(model).as_dict(),
        "looks": float(looks),
        "norm_min": float(norm_min),
        "norm_max": float(norm_max),
        "domain": domain,
        "training_data": str(training_data),
        "validation_psnr": None if validation_psnr is None else float(validation_psnr),
        "description": str(description),
        **noise,
    }
    state = {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"state_dict": state, "meta": meta}, target)
    return sha256_file(target)


def atomic_torch_save(payload: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` through a hidden temporary file renamed into place.

    Saved through an open file object: given a path, torch names the archive's root folder after
    the (random) temporary file, so the same tensors gave a new sha256 at every write.
    """
    import errno

    from sardespeckle.errors import OutputFileError
    from sardespeckle.io.base import atomic_output, free_space

    try:
        with atomic_output(Path(path)) as temp, open(temp, "wb") as handle:
            torch.save(payload, handle)
    except (OSError, RuntimeError) as error:
        # torch reports a short write as "RuntimeError: [enforce fail at inline_container.cc]
        # ... unexpected pos": a full disk, most often; the temporary file is gone either way
        full = getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        if not full and not (isinstance(error, RuntimeError) and "inline_container" in str(error)):
            raise
        raise OutputFileError(
            f"cannot write {path}: {free_space(path)} (a full disk?); nothing was written, the "
            "previous file (if any) is intact") from None


def check_weights_reference(value: Any) -> None:
    """Refuse anything but a name or a path as a reference to weights (a network object,
    a state dict...), saying what to pass instead."""
    if not isinstance(value, (str, os.PathLike)):
        raise WeightsError(
            f"expected weights as a registered name or the path of a weights file, got "
            f"{type(value).__name__} (a network object is not accepted: save it with "
            "sardespeckle.models.save_weights and pass the file)"
        )


def load_weights(
    name_or_path: str | os.PathLike[str],
    *,
    expected_architecture: Architecture | Mapping[str, Any] | None = None,
) -> tuple[DnCNN, dict[str, Any]]:
    """Load checked weights into a new eval-mode :class:`DnCNN`.

    Parameters
    ----------
    name_or_path : str or path
        A :data:`REGISTRY` name (its file must exist in :data:`WEIGHTS_DIR` and match the
        registered sha256) or the path of a weights file.
    expected_architecture : Architecture or dict, optional
        Refuse files whose architecture differs (a dict is completed with the
        :class:`Architecture` defaults). For a registry name it defaults to the entry's.

    Returns
    -------
    (DnCNN, dict)
        The network in eval mode on the CPU, and the file's ``meta`` dict.

    Raises
    ------
    WeightsError
        Unknown name, missing file, sha256 mismatch, unreadable or non-``weights_only`` file,
        unexpected content, or an architecture that does not match (the message names what
        differs).
    """
    entry: WeightsEntry | None = None
    check_weights_reference(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = REGISTRY[name_or_path]
        path = entry.path
        if not path.is_file():
            raise WeightsError(
                f"weights {entry.name!r}: file {path} not found; reinstall sardespeckle or put "
                f"{entry.filename} (sha256 {entry.sha256}) there"
            )
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise WeightsError(
                f"weights file {path} has sha256 {actual}, expected {entry.sha256} (corrupt or modified)"
            )
        if expected_architecture is None:
            expected_architecture = entry.architecture
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(sorted(REGISTRY)) or "none registered yet"
            hint = _run_folder_hint(path if path.is_dir() else path.parent)
            got = f"the folder {path}" if path.is_dir() else repr(str(name_or_path))
            raise WeightsError(
                f"expected a registered weights name ({known}) or an existing file, got "
                f"{got}{hint}"
            )

    payload = _read(path)
    state, meta = _unpack(payload, path)
    arch = Architecture.from_dict(meta["architecture"])
    if expected_architecture is not None:
        if not isinstance(expected_architecture, Architecture):
            expected_architecture = Architecture.from_dict(expected_architecture)
        diffs = arch.differences(expected_architecture)
        if diffs:
            raise WeightsError(
                f"weights file {path} has a different architecture than expected ({'; '.join(diffs)}, "
                "in the file vs expected)"
            )
    if entry is not None and meta.get("looks") != entry.looks:
        raise WeightsError(f"weights file {path} says looks={meta.get('looks')!r}, registry says {entry.looks}")
    try:
        _check_gaussian_meta(meta)
        _check_training_level(meta)
        _check_speckle_band(meta)
    except WeightsError as error:
        raise WeightsError(f"weights file {path}: {error}") from None
    if entry is not None:
        _check_entry_meta(entry, meta, path)

    # The random initialisation is overwritten by the state below: draw it from a forked
    # generator so that loading weights leaves the caller's seeded torch stream alone.
    with torch.random.fork_rng(devices=[]):
        model = arch.build()
    _check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def _check_training_level(meta: Mapping[str, Any]) -> None:
    level = meta.get("training_level")
    if level is None:
        return
    if meta.get("domain") != "log-amplitude":
        raise WeightsError(f"expected training_level only for SAR-CNN weights (domain "
                           f"'log-amplitude'), got domain {meta.get('domain')!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (
            math.isfinite(level) and level > 0):
        raise WeightsError(f"expected training_level as a finite intensity > 0, got {level!r}")


def _check_speckle_band(meta: Mapping[str, Any]) -> None:
    band, share = meta.get("speckle_band"), meta.get("speckle_band_share")
    if band is None and share is None:
        return
    if meta.get("domain") != "log-amplitude":
        raise WeightsError(f"expected speckle_band only for SAR-CNN weights (domain "
                           f"'log-amplitude'), got domain {meta.get('domain')!r}")
    from sardespeckle.decorrelate import speckle_band_problem

    problem = speckle_band_problem(band, share)
    if problem:
        raise WeightsError(problem)


def trained_on_correlated_speckle(meta: Mapping[str, Any]) -> bool:
    """Whether SAR-CNN weights (their meta dict) were trained on spatially correlated speckle
    (``speckle_band`` recorded with a share above 0)."""
    return meta.get("speckle_band") is not None and bool(meta.get("speckle_band_share"))


def _check_gaussian_meta(meta: Mapping[str, Any]) -> None:
    """The domain and the noise keys of a meta dict (absent keys are fine: older files)."""
    domain = meta.get("domain")
    if domain is not None and domain not in DOMAINS:
        raise WeightsError(f"expected domain in {DOMAINS}, got {domain!r}")
    looks = meta.get("looks")
    if looks is not None and not (_is_number(looks) and 0 < looks < float("inf")):
        raise WeightsError(f"expected looks (of the speckle the network removes) to be a "
                           f"number > 0, got {looks!r}")
    noise_keys = [key for key in ("sigma_range", "trained_sigma", "span", "log_sigma_range")
                  if meta.get(key) is not None]
    if not noise_keys:
        return
    if domain not in GAUSSIAN_DOMAINS:
        raise WeightsError(f"{', '.join(noise_keys)} describe Gaussian denoisers (domain in "
                           f"{GAUSSIAN_DOMAINS}), got domain {domain!r}")
    if meta.get("sigma_range") is not None and meta.get("trained_sigma") is not None:
        raise WeightsError("expected sigma_range (blind network) or trained_sigma (fixed σ), got both")
    sigma_range = meta.get("sigma_range")
    if sigma_range is not None and not (
        isinstance(sigma_range, (list, tuple)) and len(sigma_range) == 2
        and all(_is_number(v) for v in sigma_range) and 0 <= sigma_range[0] < sigma_range[1] < 1
    ):
        raise WeightsError(f"expected sigma_range [low, high] with 0 <= low < high < 1, got {sigma_range!r}")
    trained_sigma = meta.get("trained_sigma")
    if trained_sigma is not None and not (_is_number(trained_sigma) and 0 < trained_sigma < 1):
        raise WeightsError(f"expected trained_sigma in (0, 1), got {trained_sigma!r}")
    span = meta.get("span")
    if span is not None and not (_is_number(span) and 0 < span <= 1):
        raise WeightsError(f"expected span in (0, 1], got {span!r}")
    log_range = meta.get("log_sigma_range")
    if log_range is not None:
        if not (isinstance(log_range, (list, tuple)) and len(log_range) == 2
                and all(_is_number(v) for v in log_range) and 0 < log_range[0] <= log_range[1]):
            raise WeightsError(f"expected log_sigma_range [low, high] with 0 < low <= high, got "
                               f"{log_range!r}")
        if trained_sigma is None or span is not None:
            raise WeightsError("log_sigma_range describes a fixed-σ network (trained_sigma, no "
                               "span); got it with "
                               f"trained_sigma={trained_sigma!r}, span={span!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_entry_meta(entry: WeightsEntry, meta: Mapping[str, Any], path: Path) -> None:
    """The registry entry and the file agree on the domain and the noise they declare."""
    if meta.get("domain", entry.domain) != entry.domain:
        raise WeightsError(f"weights file {path} says domain={meta.get('domain')!r}, registry says "
                           f"{entry.domain!r}")
    if entry.sigma_range is not None and tuple(meta.get("sigma_range") or ()) != tuple(entry.sigma_range):
        raise WeightsError(f"weights file {path} says sigma_range={meta.get('sigma_range')!r}, "
                           f"registry says {list(entry.sigma_range)}")
    if entry.speckle_band is not None and (
            tuple(meta.get("speckle_band") or ()) != tuple(entry.speckle_band)
            or meta.get("speckle_band_share") != entry.speckle_band_share):
        raise WeightsError(f"weights file {path} says speckle_band={meta.get('speckle_band')!r} "
                           f"(share {meta.get('speckle_band_share')!r}), registry says "
                           f"{list(entry.speckle_band)} (share {entry.speckle_band_share})")
    if entry.trained_sigma is not None and meta.get("trained_sigma") != entry.trained_sigma:
        raise WeightsError(f"weights file {path} says trained_sigma={meta.get('trained_sigma')!r}, "
                           f"registry says {entry.trained_sigma}")


#: Files read recently, by (path, inode, size, mtime): a Python loop that despeckles many
#: arrays with the same weights deserialises them once (torch.load is about 0.15 s for a
#: SAR-CNN). A file rewritten in place gets a new mtime (or size) and is read again.
_READ_CACHE: dict[tuple, Any] = {}
_READ_CACHE_SIZE = 4


def _read(path: Path) -> Any:
    """The payload of a weights file: a fresh outer dict and meta each time, the tensors
    shared with the cache (``load_state_dict`` copies them; nothing writes to them)."""
    import copy

    status = path.stat()
    key = (str(path.resolve()), status.st_ino, status.st_size, status.st_mtime_ns)
    payload = _READ_CACHE.pop(key, None)
    if payload is None:
        payload = _load(path)
    _READ_CACHE[key] = payload  # most recent last
    while len(_READ_CACHE) > _READ_CACHE_SIZE:
        del _READ_CACHE[next(iter(_READ_CACHE))]
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        rest = copy.deepcopy({k: v for k, v in payload.items() if k != "state_dict"})
        return {**rest, "state_dict": dict(payload["state_dict"])}
    return copy.deepcopy(payload)


def damaged_member(path: str | os.PathLike[str]) -> str | None:
    """The first member of the torch (zip) archive ``path`` whose stored CRC-32 does not match
    its bytes, else None (also for files that are not zip archives: torch.load judges those;
    members stored without a checksum, CRC 0, are not judged).
    torch.load does not check these checksums: a flipped or zeroed block of a weights file
    loads as other numbers without a word."""
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    with archive:
        for info in archive.infolist():
            if info.CRC == 0 and info.file_size:
                continue  # saved without checksums (torch.serialization.set_crc32_options)
            try:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
            except zipfile.BadZipFile:  # "Bad CRC-32 for file ..."
                return info.filename
            except Exception:  # noqa: BLE001 - a member that cannot even be inflated is damaged
                return info.filename
    return None


def _load(path: Path) -> Any:
    import warnings

    damaged = damaged_member(path)
    if damaged is not None:
        raise WeightsError(
            f"weights file {path} is damaged: its member {damaged} does not match its checksum "
            "(a disk or copy error); put back a good copy")
    try:
        with warnings.catch_warnings():
            # torch warns about legacy (non-zip) files before refusing them: the error says it.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests loading with weights_only=False, i.e. running whatever
        # code the file holds: not advice to pass on.
        raise WeightsError(
            f"weights file {path} is refused by safe loading: it holds Python objects other "
            "than tensors and plain values, or it is not a torch file (sardespeckle never "
            "runs code from a weights file)"
        ) from None
    except Exception:  # torch reports truncation/garbage with RuntimeError, EOFError, KeyError...
        what = "is empty" if path.stat().st_size == 0 else "cannot be read"
        raise WeightsError(
            f"weights file {path} {what}: it is truncated (an interrupted copy?), corrupt or "
            "not a file written by torch.save; weights come from 'sardespeckle train' "
            "(RUN_DIR/NAME.pt) or sardespeckle.models.save_weights"
        ) from None


def _run_folder_hint(folder: Path) -> str:
    """What to pass instead, when ``folder`` is a training run folder (else ``""``)."""
    import json

    if not (folder / "config.json").is_file():
        return ""
    try:
        name = json.loads((folder / "config.json").read_text()).get("name") or "sarcnn"
    except (OSError, ValueError, AttributeError):
        name = "sarcnn"
    if (folder / f"{name}.pt").is_file():
        return f"; {folder} holds a finished training run: its weights are {folder / f'{name}.pt'}"
    if (folder / "checkpoint.pt").is_file():
        return (f"; {folder} holds a training run that has not finished: 'sardespeckle train "
                f"--run-dir {folder} --export partial.pt' writes the weights of its latest "
                "checkpoint")
    return ""


def _unpack(payload: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if isinstance(payload, dict) and {"model", "optimizer", "step"} <= set(payload):
        raise WeightsError(
            f"weights file {path} is a training checkpoint, not weights: pass the weights of a "
            f"finished run (RUN_DIR/NAME.pt), or write the checkpoint's with 'sardespeckle train "
            f"--run-dir {path.parent} --export weights.pt'")
    if not isinstance(payload, dict) or set(payload) != {"state_dict", "meta"}:
        got = (f"the entries {_shorten(sorted(map(str, payload)), 3)}" if isinstance(payload, dict)
               else f"a {type(payload).__name__}")
        raise WeightsError(
            f"weights file {path} is a torch file but not sardespeckle weights (it holds {got}, "
            "not a network with its description); weights come from 'sardespeckle train' "
            "(RUN_DIR/NAME.pt) or sardespeckle.models.save_weights")
    state, meta = payload["state_dict"], payload["meta"]
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"weights file {path}: expected meta with format {FORMAT!r}, got {meta!r:.200}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"weights file {path}: expected format_version {FORMAT_VERSION}, got {meta.get('format_version')!r}; "
            "a newer sardespeckle may be needed"
        )
    if "architecture" not in meta:
        raise WeightsError(f"weights file {path}: meta has no 'architecture'")
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise WeightsError(f"weights file {path}: expected state_dict to map names to tensors")
    return state, meta


def _check_state(model: DnCNN, state: Mapping[str, torch.Tensor], path: Path) -> None:
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    problems = []
    if missing:
        problems.append(f"missing keys {_shorten(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_shorten(unexpected)}")
    shapes = [
        f"{key}: {tuple(state[key].shape)} in the file, expected {tuple(wanted[key].shape)}"
        for key in sorted(set(wanted) & set(state))
        if state[key].shape != wanted[key].shape
    ]
    if shapes:
        problems.append(f"wrong shapes {_shorten(shapes)}")
    if problems:
        raise WeightsError(
            f"weights file {path} does not match its declared architecture "
            f"{Architecture.of(model).as_dict()}: " + "; ".join(problems)
        )
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"weights file {path}: tensor {key} has non-finite values")


def _shorten(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', … {len(items) - limit} more' if len(items) > limit else ''}]"



#: Folders of the user's own weights (``os.pathsep``-separated): each ``NAME.pt`` in them is
#: registered as ``NAME`` when this module is imported, so that ``--weights NAME`` and
#: ``--denoiser NAME`` work like the shipped names.
WEIGHTS_PATH_ENV = "SARDESPECKLE_WEIGHTS_PATH"


#: User weights files :func:`register_user_weights` left out as unreadable or not weights,
#: with why (``sardespeckle weights --verify`` fails on them).
USER_WEIGHTS_LEFT_OUT: dict[str, str] = {}


def register_user_weights(folders: str | None = None) -> list[str]:
    """Register every ``*.pt`` weights file of ``folders`` (default: the
    :data:`WEIGHTS_PATH_ENV` environment variable) in :data:`REGISTRY` under its file name
    without ``.pt``, with the identity its own meta gives (architecture, looks, domain, noise
    range) and its current sha256. The first folder wins a name given twice; a shipped name is
    never replaced; a file that is not sardespeckle weights is left out with a warning.
    Returns the names registered."""
    import warnings

    text = os.environ.get(WEIGHTS_PATH_ENV, "") if folders is None else folders
    label = WEIGHTS_PATH_ENV if folders is None else "user weights"
    registered: list[str] = []
    for folder in filter(None, text.split(os.pathsep)):
        folder_path = Path(folder).expanduser()
        if not folder_path.is_dir():
            warnings.warn(f"{label}: {folder} is not a folder; left out",
                          UserWarning, stacklevel=2)
            continue
        for path in sorted(folder_path.glob("*.pt")):
            name = path.stem
            if name in REGISTRY:
                taken = ("by an earlier folder" if name in registered
                         else "by shipped weights")
                warnings.warn(f"{label}: {path} is not registered: the name "
                              f"{name!r} is taken {taken} (rename the file)", UserWarning,
                              stacklevel=2)
                continue
            try:
                _, meta = _unpack(_read(path.resolve()), path)
                _check_gaussian_meta(meta)
                architecture = Architecture.from_dict(meta["architecture"])
            except (WeightsError, InvalidInputError) as error:
                USER_WEIGHTS_LEFT_OUT[str(path)] = str(error)
                warnings.warn(f"{label}: {path} left out: {error}", UserWarning,
                              stacklevel=2)
                continue
            sigma_range = meta.get("sigma_range")
            REGISTRY[name] = WeightsEntry(
                name=name,
                filename=str(path.resolve()),  # absolute: WEIGHTS_DIR / it is itself
                sha256=sha256_file(path),
                architecture=architecture,
                looks=meta.get("looks", 1.0),
                norm_min=meta.get("norm_min", LOG_AMPLITUDE_MIN),
                norm_max=meta.get("norm_max", LOG_AMPLITUDE_MAX),
                domain=meta.get("domain", "log-amplitude"),
                training_data=str(meta.get("training_data", "")),
                validation_psnr=meta.get("validation_psnr"),
                description=f"{meta.get('description', '')} (user weights, {WEIGHTS_PATH_ENV})",
                sigma_range=tuple(sigma_range) if sigma_range is not None else None,
                trained_sigma=meta.get("trained_sigma"),
            )
            registered.append(name)
    return registered


register_user_weights()
