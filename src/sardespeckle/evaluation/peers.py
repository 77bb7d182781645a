"""Adapters to despeckling packages of other projects, for side-by-side comparisons.

A peer is never a dependency of sardespeckle: its package is imported only when the peer runs,
and a peer whose package is not importable is reported as "not installed". Every adapter maps
the protocol's contract, ``intensity (rows, cols) float32 -> intensity float32``, onto the
package's own entry point, with its output silenced (libraries here never print).

=============  ===================  ==================================================
peer           package (PyPI)       method
=============  ===================  ==================================================
``sar2sar``    ``deepdespeckling``  SAR2SAR U-Net (Dalsasso, Denis, Tupin 2021), L = 1
``merlin-*``   ``deepdespeckling``  MERLIN U-Nets (Dalsasso, Denis, Tupin 2022): ``spotlight``,
                                    ``stripmap`` (TerraSAR-X), ``s1-tops`` (Sentinel-1), L = 1
``mulog-bm3d`` ``mulog``            MuLoG with BM3D (Deledalle et al. 2017)
=============  ===================  ==================================================

A peer whose package cannot be installed beside sardespeckle (``mulog`` pins ``numpy < 2``)
runs in another Python environment: given that environment's interpreter, the adapter writes
the images to a temporary folder as ``.npy`` and runs the self-contained script
``_peer_worker.py`` with it in a child process, which calls the same entry points as the
in-process route and reports the time of each image (start-up and imports excluded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sardespeckle.errors import InvalidInputError, SardespeckleError, UsageError

from ._peer_worker import MERLIN_MODELS, RUNNERS, SAR2SAR_PATCH, run_mulog_bm3d, run_sar2sar

__all__ = [
    "PEERS",
    "SAR2SAR_PATCH",
    "Peer",
    "PeerError",
    "PeerRun",
    "check_python",
    "get_peer",
    "peer_status",
    "resolve_peer_python",
]

#: The child-process script, run by path with the other environment's interpreter.
WORKER = Path(__file__).with_name("_peer_worker.py")
#: Seconds the worker may take to import a peer's package and answer a ``check``.
CHECK_TIMEOUT_S = 300.0
#: Seconds the worker may take per image of a ``run`` (MuLoG+BM3D: ~40 CPU-s on 256²).
RUN_TIMEOUT_PER_IMAGE_S = 1800.0
#: How much of a failed child's stderr goes into the error message.
STDERR_TAIL_LINES = 4


class PeerError(SardespeckleError, RuntimeError):
    """A peer package is missing or failed on an input."""


@dataclass(frozen=True)
class PeerRun:
    """Outputs and timings of one peer on a batch of images.

    ``seconds`` and ``cpu_seconds`` are per image and cover the despeckling call only: in
    another environment they are measured by the child, without its start-up and imports.
    ``peak_memory_mib`` is per image too (resident size of the child during the image minus
    before it), ``None`` where it was not measured.
    """

    outputs: list[np.ndarray]
    seconds: list[float]
    cpu_seconds: list[float]
    peak_memory_mib: list[float | None]
    python: str | None
    """The interpreter of the other environment, ``None`` when run in this process."""
    errors: tuple[str | None, ...] = ()
    """Per image, why its output was refused (``run_batch(..., strict=False)``), else ``None``;
    a refused output is replaced by NaN."""


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

    def status(self, python: str | os.PathLike | None = None) -> str:
        """``"available"``, ``"not installed (...)"`` or ``"installed but not importable (...)"``.

        With ``python``, ``"runs in <python> (<package> <version>, Python x, numpy y)"`` or
        ``"cannot run in <python>: <why>"``. Imports the package (in a child process with
        ``python``).
        """
        if python is None:
            return self.import_error() or "available"
        try:
            info = self.check(python)
        except SardespeckleError as error:
            return f"cannot run in {python}: {error}"
        return (f"runs in {info['executable']} ({self.distribution} {info['package']}, "
                f"Python {info['python']}, numpy {info['numpy']})")

    def check(self, python: str | os.PathLike) -> dict[str, str]:
        """Whether this peer runs in the environment of ``python``; its versions there.

        Returns
        -------
        dict
            ``executable`` (the interpreter, absolute), ``python``, ``numpy`` and ``package``
            (the peer's distribution) versions.

        Raises
        ------
        UsageError
            ``python`` is not an executable file, or this peer cannot run in a child process.
        PeerError
            The child fails: not a Python, or the package does not import there.
        """
        executable = self._worker_python(python)
        answer = _call_worker(executable, {"mode": "check", "peer": self.name},
                              timeout=CHECK_TIMEOUT_S,
                              what=f"peer {self.name!r} in {executable}")
        if not isinstance(answer, dict) or "numpy" not in answer:
            raise PeerError(f"peer {self.name!r} in {executable}: expected the versions of "
                            f"its environment, got {answer!r}")
        return {"executable": executable, **{k: str(answer.get(k)) for k in
                                             ("python", "numpy", "package")}}

    def run(self, intensity: np.ndarray, *, looks: float,
            python: str | os.PathLike | None = None) -> np.ndarray:
        """Despeckle ``intensity`` ``(rows, cols)``; returns float32 intensity of its shape.

        With ``python``, in a child process of that interpreter (:meth:`run_batch`).

        Raises
        ------
        PeerError
            The package is not installed, refuses the input, fails, or returns something else
            than a positive intensity of the input's shape.
        """
        return self.run_batch([intensity], looks=looks, python=python).outputs[0]

    def run_batch(self, intensities: Sequence[np.ndarray], *, looks: float,
                  python: str | os.PathLike | None = None, memory: bool = False,
                  timeout: float | None = None, strict: bool = True) -> PeerRun:
        """Despeckle several images, with one child process for all of them under ``python``.

        Parameters
        ----------
        intensities : sequence of ndarray
            ``(rows, cols)`` intensities, of any sizes.
        looks : float, keyword-only
        python : path, optional, keyword-only
            Interpreter of another environment that has the peer's package; this process
            when left out.
        memory : bool, keyword-only
            Measure the child's peak resident memory per image (only with ``python``).
        timeout : float, optional, keyword-only
            Seconds the child may take, :data:`RUN_TIMEOUT_PER_IMAGE_S` per image by default.
        strict : bool, keyword-only
            ``True``: a wrong output raises. ``False``: it is replaced by NaN and its reason
            kept in ``PeerRun.errors``, so one bad image does not void the others.

        Returns
        -------
        PeerRun
            The outputs (float32, the inputs' shapes, finite and > 0 wherever the input is)
            and per-image timings.

        Raises
        ------
        InvalidInputError
            An input is not 2-D.
        UsageError
            ``python`` is not an executable file.
        PeerError
            The peer cannot run, fails, times out or returns a wrong output.
        """
        images = [np.ascontiguousarray(image, dtype=np.float32) for image in intensities]
        for image in images:
            if image.ndim != 2:
                raise InvalidInputError(
                    f"expected an intensity image (rows, cols), got shape {image.shape}"
                )
        if python is None:
            run = self._run_here(images, float(looks))
        else:
            run = self._run_elsewhere(images, float(looks), self._worker_python(python),
                                      memory=memory, timeout=timeout)
        errors: list[str | None] = []
        outputs = list(run.outputs)
        for index, (image, out) in enumerate(zip(images, run.outputs)):
            try:
                self._check_output(out, image, index, len(images))
                errors.append(None)
            except PeerError as error:
                if strict:
                    raise
                errors.append(str(error))
                outputs[index] = np.full(image.shape, np.nan, dtype=np.float32)
        return dataclasses.replace(run, outputs=outputs, errors=tuple(errors))

    def _worker_python(self, python: str | os.PathLike) -> str:
        if self.name not in RUNNERS:
            raise UsageError(f"peer {self.name!r} can only run in this environment: the worker "
                             f"script knows {', '.join(sorted(RUNNERS))}")
        return check_python(python, peer=self.name)

    def _run_here(self, images: list[np.ndarray], looks: float) -> PeerRun:
        problem = self.import_error()
        if problem:
            raise PeerError(f"peer {self.name!r} cannot run: {self.distribution} is {problem}")
        outputs, seconds, cpu_seconds = [], [], []
        for image in images:
            sink = io.StringIO()
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    out = self.run_function(image, looks)
            except SardespeckleError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure of foreign code is reported
                raise PeerError(
                    f"peer {self.name!r} failed: {type(error).__name__}: {_first_line(error)}"
                ) from error
            seconds.append(time.perf_counter() - wall)
            cpu_seconds.append(time.process_time() - cpu)
            outputs.append(np.asarray(out, dtype=np.float32))
        return PeerRun(outputs, seconds, cpu_seconds, [None] * len(images), None)

    def _run_elsewhere(self, images: list[np.ndarray], looks: float, python: str, *,
                       memory: bool, timeout: float | None) -> PeerRun:
        what = f"peer {self.name!r} in {python}"
        timeout = RUN_TIMEOUT_PER_IMAGE_S * max(len(images), 1) if timeout is None else timeout
        environment = None
        if memory:
            # As in the speed probe: freed arrays leave the resident set, which then follows
            # the live memory of each image.
            environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        with tempfile.TemporaryDirectory(prefix="sardespeckle-peer-") as folder:
            inputs = [os.path.join(folder, f"in_{k}.npy") for k in range(len(images))]
            outputs = [os.path.join(folder, f"out_{k}.npy") for k in range(len(images))]
            for path, image in zip(inputs, images):
                np.save(path, image)
            answer = _call_worker(
                python, {"mode": "run", "peer": self.name, "looks": looks, "inputs": inputs,
                         "outputs": outputs, "memory": memory},
                timeout=timeout, what=what, environment=environment,
            )
            timings = {key: answer.get(key) if isinstance(answer, dict) else None
                       for key in ("seconds", "cpu_seconds", "peak_memory_mib")}
            for key, values in timings.items():
                if not isinstance(values, list) or len(values) != len(images):
                    raise PeerError(f"{what}: expected {len(images)} values of {key!r}, one per "
                                    f"image, got {values!r}")
            results = []
            for index, path in enumerate(outputs):
                try:
                    results.append(np.load(path, allow_pickle=False))
                except (OSError, ValueError) as error:
                    raise PeerError(f"{what}: no readable output for image {index + 1} of "
                                    f"{len(images)} ({error})") from None
        return PeerRun(results, [float(v) for v in timings["seconds"]],
                       [float(v) for v in timings["cpu_seconds"]],
                       [None if v is None else float(v) for v in timings["peak_memory_mib"]],
                       python)

    def _check_output(self, out: np.ndarray, image: np.ndarray, index: int, count: int) -> None:
        which = f"image {index + 1} of {count}" if count > 1 else "its input"
        if out.shape != image.shape:
            raise PeerError(f"peer {self.name!r} returned shape {out.shape} for {which}, "
                            f"expected {image.shape}")
        # Masked input pixels (NaN, 0) may come back as anything; the others must be usable.
        valid = np.isfinite(image) & (image > 0)
        bad = valid & ~(np.isfinite(out) & (out > 0))
        if bad.any():
            raise PeerError(f"peer {self.name!r} returned {int(bad.sum())} non-finite or "
                            f"non-positive values for {which}, expected a positive intensity "
                            "wherever the input is valid")


def _first_line(error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # terminal colours
    return (text.splitlines() or [""])[0][:300]


def _stderr_tail(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", stderr or "").splitlines()
             if line.strip()]
    if not lines:
        return "; no message on stderr"
    return "; stderr: " + " | ".join(lines[-STDERR_TAIL_LINES:])[-1000:]


def _call_worker(python: str, request: dict, *, timeout: float, what: str,
                 environment: Mapping[str, str] | None = None) -> object:
    """Run :data:`WORKER` with ``python``, ``request`` as JSON on stdin; its JSON answer."""
    try:
        completed = subprocess.run(
            [python, os.fspath(WORKER)], input=json.dumps(request), capture_output=True,
            text=True, timeout=timeout, check=False,
            env=None if environment is None else dict(environment),
        )
    except subprocess.TimeoutExpired as error:
        raise PeerError(f"{what} timed out after {timeout:g} s"
                        f"{_stderr_tail(error.stderr)}") from None
    except OSError as error:
        raise PeerError(f"{what}: cannot start the interpreter ({error})") from None
    if completed.returncode != 0:
        raise PeerError(f"{what} failed with exit status {completed.returncode}"
                        f"{_stderr_tail(completed.stderr)}")
    lines = completed.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise PeerError(f"{what}: expected one JSON line on stdout, got "
                        f"{completed.stdout[-300:]!r}{_stderr_tail(completed.stderr)}") from None


def check_python(python: str | os.PathLike, *, peer: str = "") -> str:
    """``python`` as an absolute path to an executable file (a bare name is looked up on PATH).

    Symbolic links are kept: a virtual environment's ``bin/python`` links to the base
    interpreter, and only the link knows the environment.

    Raises
    ------
    UsageError
        No such file, a folder, or not executable.
    """
    text = os.path.expanduser(os.fspath(python))
    label = f" for peer {peer!r}" if peer else ""
    package = PEERS[peer].distribution if peer in PEERS else "mulog"
    venv = f"/tmp/{package}-venv"
    hint = (f"; hint: python -m venv {venv} && {venv}/bin/pip install {package}, then give "
            f"{venv}/bin/python")
    if not text:
        raise UsageError(f"expected a Python interpreter{label}, got an empty path{hint}")
    if os.sep not in text and not os.path.exists(text):
        found = shutil.which(text)
        if found is None:
            raise UsageError(f"expected a Python interpreter{label}, got {text!r}, which is "
                             f"not a file nor a command on PATH{hint}")
        text = found
    path = Path(text).absolute()
    if not path.exists():
        raise UsageError(f"expected a Python interpreter{label}, got {str(path)!r}: no such "
                         f"file{hint}")
    if path.is_dir():
        raise UsageError(f"expected a Python interpreter{label}, got the folder {str(path)!r}; "
                         "hint: give its bin/python")
    if not os.access(path, os.X_OK):
        raise UsageError(f"expected an executable Python interpreter{label}, got "
                         f"{str(path)!r}, which is not executable")
    return str(path)


#: Every known peer by name.
PEERS: dict[str, Peer] = {
    peer.name: peer
    for peer in (
        Peer("sar2sar", "deepdespeckling", "deepdespeckling.sar2sar.sar2sar_denoiser",
             "deepdespeckling",
             "SAR2SAR self-supervised U-Net (deepdespeckling), single look", run_sar2sar),
        Peer("mulog-bm3d", "mulog", "mulog.mulog_algorithm", "mulog",
             "MuLoG plug-and-play ADMM with BM3D (mulog package)", run_mulog_bm3d),
        *(Peer(name, "deepdespeckling", "deepdespeckling.merlin.merlin_denoiser", "deepdespeckling",
               f"MERLIN {model} U-Net (deepdespeckling), single look, on √I·e^(iφ) with a "
               "seeded uniform phase", RUNNERS[name])
          for name, model in MERLIN_MODELS.items()),
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


def resolve_peer_python(peer_python: Mapping[str, str | os.PathLike] | None
                        ) -> dict[str, str]:
    """``{peer: interpreter}`` with known peer names and checked, absolute interpreter paths.

    Raises
    ------
    UsageError
        An unknown peer, a peer that only runs in this environment, or an interpreter that is
        not an executable file.
    """
    resolved: dict[str, str] = {}
    for name, python in (peer_python or {}).items():
        peer = get_peer(str(name))
        resolved[peer.name] = peer._worker_python(python)
    return resolved


def peer_status(peer_python: Mapping[str, str | os.PathLike] | None = None) -> dict[str, str]:
    """:meth:`Peer.status` of every known peer, by name; a peer in ``peer_python`` is checked
    in a child process of its interpreter (``"runs in <python> (...)"``)."""
    chosen = {get_peer(str(name)).name: python for name, python in (peer_python or {}).items()}
    return {name: peer.status(chosen.get(name)) for name, peer in PEERS.items()}
