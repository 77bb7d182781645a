"""Adapters to despeckling packages of other projects, for side-by-side comparisons.

A peer is never a dependency of sardespeckle: its package is imported only when the peer runs,
and a peer whose package is not importable is reported as "not installed". Every adapter maps
the protocol's contract, ``intensity (rows, cols) float32 -> intensity float32``, onto the
package's own entry point, with its output silenced (libraries here never print).

=============  ===================  ==================================================
peer           package (PyPI)       method
=============  ===================  ==================================================
``sar2sar``    ``deepdespeckling``  SAR2SAR U-Net (Dalsasso, Denis, Tupin 2021), L = 1
``mulog-bm3d`` ``mulog``            MuLoG with BM3D (Deledalle et al. 2017)
=============  ===================  ==================================================
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sardespeckle.errors import InvalidInputError, SardespeckleError, UsageError

__all__ = ["PEERS", "Peer", "PeerError", "get_peer", "peer_status"]

#: Side of the tiles the SAR2SAR network of deepdespeckling is run on (its default).
SAR2SAR_PATCH = 256


class PeerError(SardespeckleError, RuntimeError):
    """A peer package is missing or failed on an input."""


@dataclass(frozen=True)
class Peer:
    """An external despeckler behind the evaluation protocol's contract.

    Attributes
    ----------
    name : str
        Column name in reports (shown as ``peer:<name>``).
    module : str
        Top-level module of the package (whether it is installed).
    entry : str
        Module the adapter imports to run (whether it is usable).
    distribution : str
        Its name on PyPI.
    description : str
        One line for reports.
    run_function : callable
        ``run_function(intensity, looks) -> intensity``, ``(rows, cols)`` float32 both.
    """

    name: str
    module: str
    entry: str
    distribution: str
    description: str
    run_function: Callable[[np.ndarray, float], np.ndarray]

    def installed(self) -> bool:
        """Whether the peer's package is installed (found without importing it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def import_error(self) -> str | None:
        """``None`` when the adapter's entry module imports, else why it does not."""
        if not self.installed():
            return f"not installed (pip install {self.distribution})"
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                importlib.import_module(self.entry)
        except Exception as error:  # noqa: BLE001 - a broken foreign package is reported
            return f"installed but not importable ({type(error).__name__}: {error})"
        return None

    def available(self) -> bool:
        """Whether the peer can run here (its entry module imports)."""
        return self.import_error() is None

    def status(self) -> str:
        """``"available"``, ``"not installed (...)"`` or ``"installed but not importable (...)"``.

        Imports the package when it is installed.
        """
        return self.import_error() or "available"

    def run(self, intensity: np.ndarray, *, looks: float) -> np.ndarray:
        """Despeckle ``intensity`` ``(rows, cols)``; returns float32 intensity of its shape.

        Raises
        ------
        PeerError
            The package is not installed, refuses the input, or fails.
        """
        problem = self.import_error()
        if problem:
            raise PeerError(f"peer {self.name!r} cannot run: {self.distribution} is {problem}")
        intensity = np.asarray(intensity, dtype=np.float32)
        if intensity.ndim != 2:
            raise InvalidInputError(
                f"expected an intensity image (rows, cols), got shape {intensity.shape}"
            )
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                out = self.run_function(intensity, float(looks))
        except SardespeckleError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure of foreign code is reported
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # terminal colours
            first_line = (text.splitlines() or [""])[0][:300]
            raise PeerError(
                f"peer {self.name!r} failed: {type(error).__name__}: {first_line}"
            ) from error
        out = np.asarray(out, dtype=np.float32)
        if out.shape != intensity.shape:
            raise PeerError(
                f"peer {self.name!r} returned shape {out.shape}, expected {intensity.shape}"
            )
        return out


def _run_sar2sar(intensity: np.ndarray, looks: float) -> np.ndarray:
    if looks != 1:
        raise PeerError(f"SAR2SAR is trained for single-look data, got looks={looks:g}")
    if min(intensity.shape) < SAR2SAR_PATCH:
        raise PeerError(
            f"SAR2SAR runs on {SAR2SAR_PATCH} × {SAR2SAR_PATCH} tiles, got an image of shape "
            f"{intensity.shape}"
        )
    import logging

    from deepdespeckling.sar2sar.sar2sar_denoiser import Sar2SarDenoiser

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    denoiser = Sar2SarDenoiser()
    amplitude = np.sqrt(intensity)
    result = denoiser.denoise_image(amplitude, SAR2SAR_PATCH, SAR2SAR_PATCH - 2)
    despeckled_amplitude = np.asarray(result["denoised"], dtype=np.float64)
    return (despeckled_amplitude * despeckled_amplitude).astype(np.float32)


def _run_mulog_bm3d(intensity: np.ndarray, looks: float) -> np.ndarray:
    import mulog

    out = mulog.run_mulog(intensity.astype(np.float64), looks,
                          denoiser=mulog.run_autoscaled_bm3d)
    return np.real(np.asarray(out)).astype(np.float32)


#: Every known peer by name.
PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("sar2sar", "deepdespeckling", "deepdespeckling.sar2sar.sar2sar_denoiser",
             "deepdespeckling",
             "SAR2SAR self-supervised U-Net (deepdespeckling), single look", _run_sar2sar),
        Peer("mulog-bm3d", "mulog", "mulog", "mulog",
             "MuLoG plug-and-play ADMM with BM3D (mulog package)", _run_mulog_bm3d),
    )
}


def get_peer(name: str) -> Peer:
    """The peer called ``name`` (with or without the ``peer:`` prefix)."""
    key = name.removeprefix("peer:")
    try:
        return PEERS[key]
    except KeyError:
        raise UsageError(
            f"unknown peer {name!r}; known peers: {', '.join(sorted(PEERS))}"
        ) from None


def peer_status() -> dict[str, str]:
    """:meth:`Peer.status` of every known peer, by name."""
    return {name: peer.status() for name, peer in PEERS.items()}
