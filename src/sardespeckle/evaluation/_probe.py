"""Child process of the speed protocol: time one despeckler and measure its peak memory.

Run as ``python -m sardespeckle.evaluation._probe`` with a JSON specification on stdin
(``{"candidate": {...}, "size": N, "looks": L, "seed": S, "mode": "time" | "memory"}``); writes
one JSON line on stdout: ``{"walls": [...], "cpus": [...], "memory_mib": ..., "note": ...}``.
A fresh process is used so that the memory it reports belongs to this despeckler only.
"""

from __future__ import annotations

import gc
import json
import sys


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (Linux), or ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux ≥ 4.0); False when refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def main() -> int:
    import numpy as np

    from sardespeckle.evaluation.protocol import (
        TIMED_RUNS,
        WARMUP_SIDE,
        Candidate,
        _time_run,
        speed_scene,
    )

    spec = json.loads(sys.stdin.read())
    candidate = Candidate(**spec["candidate"])
    size, looks, seed = int(spec["size"]), float(spec["looks"]), int(spec["seed"])

    image = speed_scene(size, looks=looks, seed=seed)
    side = min(size, WARMUP_SIDE)
    candidate.run(np.ascontiguousarray(image[:side, :side]))
    gc.collect()

    report: dict = {"walls": [], "cpus": [], "memory_mib": None, "note": ""}
    if spec["mode"] == "time":
        for _ in range(TIMED_RUNS):
            wall, cpu = _time_run(candidate, image)
            report["walls"].append(wall)
            report["cpus"].append(cpu)
    else:
        reset = _reset_peak()
        before = _status_kib("VmRSS")
        candidate.run(image)
        peak = _status_kib("VmHWM")
        if before is not None and peak is not None:
            report["memory_mib"] = max(peak - before, 0) / 1024.0
            if not reset:
                report["note"] = "peak RSS could not be reset: it may include earlier peaks"
        else:
            report["note"] = "no /proc/self/status: memory not measured"
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - run in a child process
    raise SystemExit(main())
