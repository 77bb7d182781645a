"""Child process that runs a peer despeckler in another Python environment.

Run by path with that environment's interpreter, ``python _peer_worker.py``, with a JSON
request on stdin. It must not import sardespeckle (the other environment does not have it):
only the standard library, numpy and the peer's own package. sardespeckle's in-process
adapters import the ``run_*`` functions below, so both routes call the same entry points with
the same settings.

Requests::

    {"mode": "check", "peer": "mulog-bm3d"}
    {"mode": "run", "peer": "mulog-bm3d", "looks": 1.0, "inputs": [...], "outputs": [...],
     "memory": false}

``inputs`` are ``(rows, cols)`` float32 intensity ``.npy`` files, ``outputs`` the ``.npy`` files
to write (float32 intensity, same shapes). One JSON line answers on stdout: ``check`` gives
``{"python", "executable", "numpy", "package"}`` (versions), ``run`` gives ``{"seconds",
"cpu_seconds", "peak_memory_mib"}``, one value per image: the despeckling alone, without the
start-up and the imports of this process, and with ``memory`` the peak resident size during
the image minus the size before it (Linux, else ``null``). Anything the peer prints goes to
stderr, which is also where a failure's traceback goes (exit status not 0).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

#: Distribution (PyPI name) of each peer's package, for the version in ``check``.
DISTRIBUTIONS = {"mulog-bm3d": "mulog", "sar2sar": "deepdespeckling", "merlin-spotlight": "deepdespeckling",
                 "merlin-stripmap": "deepdespeckling", "merlin-s1-tops": "deepdespeckling"}
#: Side of the tiles SAR2SAR (deepdespeckling) runs on: its default.
SAR2SAR_PATCH = 256


def fill_invalid(intensity):
    """float64 copy with the invalid pixels (non-finite or ≤ 0: nodata, masked) set to the
    median of the valid ones (1 when none is), so that they cannot spoil the peer's whole image
    (logs of zeros, a NaN maximum); what comes back there is not looked at."""
    import numpy as np

    image = np.array(intensity, dtype=np.float64)
    valid = np.isfinite(image) & (image > 0)
    if not valid.all():
        image[~valid] = float(np.median(image[valid])) if valid.any() else 1.0
    return image


def run_mulog_bm3d(intensity, looks: float):
    """MuLoG with the mulog package's autoscaled BM3D, its default settings (6 ADMM iterations).

    The same call as ``benchmarks/bench_mulog.py``'s ``their_worker``.
    """
    import numpy as np
    from mulog.gaussian_denoisers import run_autoscaled_bm3d
    from mulog.mulog_algorithm import run_mulog

    image = fill_invalid(intensity)
    out = np.real(np.asarray(run_mulog(image, float(looks), run_autoscaled_bm3d)))
    if out.size == image.size:  # a (rows, cols, 1, 1) field; another size is the caller's error
        out = out.reshape(image.shape)
    return out.astype(np.float32)


def _numpy_scalars_loadable():
    """A context in which ``torch.load`` (``weights_only``, the default since torch 2.6) accepts
    the numpy scalars and dtypes that deepdespeckling's checkpoints hold: only those types are
    allow-listed, nothing that runs code."""
    import contextlib

    import numpy as np
    import torch

    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5 loads them anyway
        return contextlib.nullcontext()
    core = getattr(np, "_core", None) or np.core
    allowed = [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    allowed += [getattr(dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType")
                if dtypes is not None and hasattr(dtypes, name)]
    return safe_globals(allowed)


def _deepdespeckling_amplitude(intensity, looks: float, network: str):
    """The amplitude a deepdespeckling network gets (float64, invalid pixels filled), after the
    checks its tiling and training impose, with the package's INFO logging kept quiet."""
    import logging

    import numpy as np

    if looks != 1:
        raise ValueError(f"{network} is trained for single-look data, got looks={looks:g}")
    if min(np.shape(intensity)) < SAR2SAR_PATCH:
        raise ValueError(f"{network} runs on {SAR2SAR_PATCH} × {SAR2SAR_PATCH} tiles, got an "
                         f"image of shape {np.shape(intensity)}")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    return np.sqrt(fill_invalid(intensity))


def _intensity_of(amplitude):
    import numpy as np

    amplitude = np.asarray(amplitude, dtype=np.float64)
    return (amplitude * amplitude).astype(np.float32)


def run_sar2sar(intensity, looks: float):
    """deepdespeckling's SAR2SAR on amplitude, ``SAR2SAR_PATCH``² tiles overlapping by 2 px."""
    import numpy as np

    amplitude = _deepdespeckling_amplitude(intensity, looks, "SAR2SAR").astype(np.float32)
    from deepdespeckling.sar2sar.sar2sar_denoiser import Sar2SarDenoiser

    with _numpy_scalars_loadable():
        result = Sar2SarDenoiser().denoise_image(amplitude, SAR2SAR_PATCH, SAR2SAR_PATCH - 2)
    return _intensity_of(result["denoised"])


#: MERLIN models of deepdespeckling by peer name (TerraSAR-X spotlight / stripmap, Sentinel-1 TOPS).
MERLIN_MODELS = {"merlin-spotlight": "spotlight", "merlin-stripmap": "stripmap",
                 "merlin-s1-tops": "Sentinel-TOPS"}
#: Seed of the phase that MERLIN's complex input is given (see :func:`run_merlin`).
MERLIN_PHASE_SEED = 20240409


def run_merlin(intensity, looks: float, *, model: str):
    """deepdespeckling's MERLIN ``model`` on a complex image made from the intensity.

    MERLIN denoises the real and imaginary parts of a single-look complex image. The protocol
    hands intensities, so the adapter builds ``√I · e^{iφ}`` with a phase uniform on
    ``[0, 2π)`` drawn from ``numpy.random.default_rng(MERLIN_PHASE_SEED)``: for fully developed
    speckle the real and imaginary parts of an SLC are exactly such independent parts, so the
    network sees the statistics it was trained on (real SLC phases also carry the spatial
    correlation of the sensor's spectrum, which a real SLC input would keep). Tiles of
    ``SAR2SAR_PATCH``² overlapping by 2 px, the package's default; output: its ``full`` amplitude
    estimate, squared.
    """
    import numpy as np

    amplitude = _deepdespeckling_amplitude(intensity, looks, "MERLIN")
    from deepdespeckling.merlin.merlin_denoiser import MerlinDenoiser

    phase = np.random.default_rng(MERLIN_PHASE_SEED).uniform(0, 2 * np.pi, amplitude.shape)
    parts = np.stack([amplitude * np.cos(phase), amplitude * np.sin(phase)], axis=-1).astype(np.float32)
    with _numpy_scalars_loadable():
        result = MerlinDenoiser(model, symetrise=True).denoise_image(parts, SAR2SAR_PATCH,
                                                                     SAR2SAR_PATCH - 2)
    return _intensity_of(result["denoised"]["full"])


#: What each peer runs: ``function(intensity, looks) -> intensity``.
RUNNERS = {"mulog-bm3d": run_mulog_bm3d, "sar2sar": run_sar2sar,
           **{name: functools.partial(run_merlin, model=model) for name, model in MERLIN_MODELS.items()}}
#: Module each peer imports, checked by the ``check`` request.
ENTRY_MODULES = {"mulog-bm3d": ["mulog.mulog_algorithm", "mulog.gaussian_denoisers"],
                 "sar2sar": ["deepdespeckling.sar2sar.sar2sar_denoiser"],
                 **{name: ["deepdespeckling.merlin.merlin_denoiser"] for name in MERLIN_MODELS}}


def _memory_kib() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in KiB (empty off Linux)."""
    fields = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return fields


def _clear_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # VmHWM := VmRSS
    except OSError:
        return False
    return True


def _check(peer: str) -> dict:
    import importlib
    from importlib import metadata

    import numpy as np

    for module in ENTRY_MODULES[peer]:
        importlib.import_module(module)
    try:
        package = metadata.version(DISTRIBUTIONS[peer])
    except metadata.PackageNotFoundError:
        package = None
    return {"python": sys.version.split()[0], "executable": sys.executable,
            "numpy": np.__version__, "package": package}


def _run(peer: str, looks: float, inputs: list, outputs: list, memory: bool) -> dict:
    import numpy as np

    if len(inputs) != len(outputs):
        raise ValueError(f"expected as many outputs as inputs, got {len(outputs)} for "
                         f"{len(inputs)}")
    run = RUNNERS[peer]
    report = {"seconds": [], "cpu_seconds": [], "peak_memory_mib": []}
    for source, target in zip(inputs, outputs):
        intensity = np.load(source)
        peak = None
        if memory and _clear_peak():
            before = _memory_kib().get("VmRSS")
        else:
            before = None
        wall, cpu = time.perf_counter(), time.process_time()
        out = run(intensity, looks)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if before is not None:
            after = _memory_kib().get("VmHWM")
            peak = None if after is None else max(after - before, 0) / 1024.0
        np.save(target, np.asarray(out, dtype=np.float32))
        report["seconds"].append(wall)
        report["cpu_seconds"].append(cpu)
        report["peak_memory_mib"].append(peak)
    return report


def main() -> int:
    # The answer gets the real stdout; everything else written to fd 1 (the peer's prints,
    # native code included) goes to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    # Run by path, this file's folder (sardespeckle/evaluation) heads sys.path; its modules
    # (report, protocol...) must not shadow top-level modules of the other environment.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]

    request = json.loads(sys.stdin.read())
    peer = request.get("peer")
    if peer not in RUNNERS:
        raise SystemExit(f"unknown peer {peer!r}; this worker runs {', '.join(sorted(RUNNERS))}")
    if request.get("mode") == "check":
        answer = _check(peer)
    elif request.get("mode") == "run":
        answer = _run(peer, float(request["looks"]), list(request["inputs"]),
                      list(request["outputs"]), bool(request.get("memory", False)))
    else:
        raise SystemExit(f"expected mode 'check' or 'run', got {request.get('mode')!r}")
    channel.write(json.dumps(answer) + "\n")
    channel.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - run in a child process
    raise SystemExit(main())
