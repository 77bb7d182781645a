"""Helpers shared by the benchmarks: a seeded synthetic scene, memory probes, child runs, tables.

The benchmark scripts are run as ``python benchmarks/<script>.py``, so this module is imported
as ``_common`` (its folder is on ``sys.path``). Nothing here is part of the package.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence

import numpy as np

#: Rows generated at once when building a whole simulated image (bounds the temporaries).
STRIP_ROWS = 256


# --- synthetic scene ------------------------------------------------------------------------


def reflectivity(row0: int, col0: int, height: int, width: int,
                 full_shape: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic reflectivity (intensity, float32) for one window of a larger scene.

    The value at a pixel depends only on its coordinates in the full scene, so a scene built
    block by block is the same whatever the block size: slowly varying sinusoids over a range of
    about 20 dB, plus a checkerboard of "fields" (a 4× step every few hundred pixels) for edges.
    """
    rows, cols = full_shape
    r = (np.arange(row0, row0 + height, dtype=np.float32) / max(rows, 1))[:, None]
    c = (np.arange(col0, col0 + width, dtype=np.float32) / max(cols, 1))[None, :]
    smooth = (np.sin(2 * np.pi * 3 * r) * np.cos(2 * np.pi * 2 * c)
              + 0.5 * np.sin(2 * np.pi * 5 * (r + c)))
    rr = (np.arange(row0, row0 + height) // 700)[:, None]
    cc = (np.arange(col0, col0 + width) // 900)[None, :]
    fields = np.where((rr + cc) % 3 == 0, np.float32(4.0), np.float32(1.0))
    return (100.0 * np.exp(np.float32(1.5) * smooth) * fields).astype(np.float32)


def speckled_block(row0: int, col0: int, height: int, width: int, full_shape: tuple[int, int],
                   *, seed: int, kind: str = "intensity") -> np.ndarray:
    """One window of the synthetic scene times single-look speckle, as intensity or amplitude.

    The speckle of a block is drawn from a generator seeded with ``(seed, row0, col0)``: the same
    block always gets the same speckle, whatever order the blocks are generated in.
    """
    rng = np.random.default_rng((seed, row0, col0))
    speckle = rng.standard_exponential((height, width), dtype=np.float32)  # L = 1 intensity
    intensity = reflectivity(row0, col0, height, width, full_shape) * speckle
    np.maximum(intensity, np.float32(1e-6), out=intensity)  # the engine would mask exact zeros
    if kind == "amplitude":
        np.sqrt(intensity, out=intensity)
    return intensity


def simulated_intensity(shape: tuple[int, int], *, seed: int = 0) -> np.ndarray:
    """A whole float32 single-look intensity image, built strip by strip."""
    rows, cols = shape
    out = np.empty((rows, cols), dtype=np.float32)
    for row0 in range(0, rows, STRIP_ROWS):
        height = min(STRIP_ROWS, rows - row0)
        out[row0:row0 + height] = speckled_block(row0, 0, height, cols, shape, seed=seed)
    return out


# --- memory ---------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process image since
    it was started. ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not used there because the
    kernel carries the *parent's* peak into a child started by ``subprocess`` (vfork + exec: at
    exec, the maximum RSS of the memory being left, the parent's, is folded into the child's
    ``ru_maxrss``); measured: a child of a parent that once held 311 MB reports ru_maxrss 311 MB
    with VmHWM 9 MB. Elsewhere, ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_rss_source() -> str:
    """Which probe :func:`peak_rss_mb` uses here, for the tables' notes."""
    try:
        with open("/proc/self/status") as handle:
            if any(line.startswith("VmHWM:") for line in handle):
                return "VmHWM (/proc/self/status)"
    except OSError:
        pass
    return "ru_maxrss (getrusage RUSAGE_SELF)"


# --- child processes ------------------------------------------------------------------------


def run_child(script: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> dict:
    """Run ``python script args...`` in a fresh process; it prints one JSON object last."""
    child_env = dict(os.environ)
    child_env.update(env or {})
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                            env=child_env)
    if result.returncode != 0:
        raise RuntimeError(
            f"child {' '.join(args)} failed with exit code {result.returncode}:\n{result.stderr}"
        )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"child {' '.join(args)} printed nothing:\n{result.stderr}")
    return json.loads(lines[-1])


def emit(record: dict) -> None:
    """What a child prints for its parent: one JSON line."""
    print(json.dumps(record), flush=True)


# --- output ---------------------------------------------------------------------------------


def machine_line() -> str:
    """One line describing where the numbers come from."""
    from sardespeckle.evaluation.protocol import cpu_model  # the evaluation report's reading

    cpu = cpu_model() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} core(s) usable, Python {platform.python_version()}, "
            f"numpy {np.__version__}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (Markdown pipe syntax, so it can be pasted into a README)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(cells[0], widths)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]
    for row in cells[1:]:
        lines.append("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)
