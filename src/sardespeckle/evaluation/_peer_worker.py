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

import json
import os
import sys
import time

#: Distribution (PyPI name) of each peer's package, for the version in ``check``.
DISTRIBUTIONS = {"mulog-bm3d": "mulog", "sar2sar": "deepdespeckling"}
#: Side of the tiles SAR2SAR (deepdespeckling) runs on: its default.
SAR2SAR_PATCH = 256


def run_mulog_bm3d(intensity, looks: float):
    """MuLoG with the mulog package's autoscaled BM3D, its default settings (6 ADMM iterations).

    The same call as ``benchmarks/bench_mulog.py``'s ``their_worker``.
    """
    import numpy as np
    from mulog.gaussian_denoisers import run_autoscaled_bm3d
    from mulog.mulog_algorithm import run_mulog

    image = np.asarray(intensity, dtype=np.float64)
    out = np.real(np.asarray(run_mulog(image, float(looks), run_autoscaled_bm3d)))
    if out.size == image.size:  # a (rows, cols, 1, 1) field; another size is the caller's error
        out = out.reshape(image.shape)
    return out.astype(np.float32)


def run_sar2sar(intensity, looks: float):
    """deepdespeckling's SAR2SAR on amplitude, ``SAR2SAR_PATCH``² tiles overlapping by 2 px."""
    import logging

    import numpy as np

    if looks != 1:
        raise ValueError(f"SAR2SAR is trained for single-look data, got looks={looks:g}")
    if min(np.shape(intensity)) < SAR2SAR_PATCH:
        raise ValueError(f"SAR2SAR runs on {SAR2SAR_PATCH} × {SAR2SAR_PATCH} tiles, got an "
                         f"image of shape {np.shape(intensity)}")
    from deepdespeckling.sar2sar.sar2sar_denoiser import Sar2SarDenoiser

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    amplitude = np.sqrt(np.asarray(intensity, dtype=np.float32))
    result = Sar2SarDenoiser().denoise_image(amplitude, SAR2SAR_PATCH, SAR2SAR_PATCH - 2)
    despeckled_amplitude = np.asarray(result["denoised"], dtype=np.float64)
    return (despeckled_amplitude * despeckled_amplitude).astype(np.float32)


#: What each peer runs: ``function(intensity, looks) -> intensity``.
RUNNERS = {"mulog-bm3d": run_mulog_bm3d, "sar2sar": run_sar2sar}
#: Module each peer imports, checked by the ``check`` request.
ENTRY_MODULES = {"mulog-bm3d": ["mulog.mulog_algorithm", "mulog.gaussian_denoisers"],
                 "sar2sar": ["deepdespeckling.sar2sar.sar2sar_denoiser"]}


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
