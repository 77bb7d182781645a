"""Throughput and peak memory of every classical filter, bare and through the tiled engine.

For each registered method of family "filter", built with its defaults for looks=1, on a seeded
SIZE×SIZE float32 simulated single-look intensity image:

* **bare**: one call of the built function on the whole array;
* **tiled**: ``sardespeckle.tiling.process_array(image, function, halo=..., tile=TILE)``.

Each (method, mode) pair runs in a fresh child process, which reports the best of ``--repeat``
timings and its peak RSS: the high-water mark of the whole child, i.e. interpreter + numpy/scipy
+ the input image + the method's temporaries; the "setup" column is the same mark taken just
before the first timed call. On Linux the mark is ``VmHWM`` from ``/proc/self/status``, not
``ru_maxrss``, which a child started by ``subprocess`` inherits from its parent's peak (see
``_common.peak_rss_mb``); elsewhere ``ru_maxrss``. The child also
hashes its output, so the table says whether the tiled result is bit-identical to the bare one.

Numbers are printed, never asserted on::

    python benchmarks/bench_filters.py                      # all filters, 2048², best of 3
    python benchmarks/bench_filters.py --size 1024 --methods lee,kuan --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import _common

SCRIPT = os.path.abspath(__file__)


def child(args: argparse.Namespace) -> None:
    """Time one method in one mode; print one JSON line."""
    import numpy as np

    from sardespeckle.methods import build_method
    from sardespeckle.tiling import process_array

    image = _common.simulated_intensity((args.size, args.size), seed=args.seed)
    built = build_method(args.child, looks=1)
    function = built.function
    if args.mode == "bare":
        def run():
            return function(image)
    else:
        def run():
            return process_array(image, function, halo=built.halo, tile=args.tile)
    # Warm-up on a small crop: lazy imports and first-call costs stay out of the timings.
    function(np.ascontiguousarray(image[:64, :64]))
    setup_rss = _common.peak_rss_mb()
    times = []
    digest = None
    for _ in range(args.repeat):
        started = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - started)
        if digest is None:
            digest = hashlib.sha1(np.ascontiguousarray(out, dtype=np.float32).tobytes()).hexdigest()
            shape_ok = out.shape == image.shape and out.dtype == np.float32
        del out
    _common.emit({
        "method": built.name,
        "mode": args.mode,
        "window": built.parameters.get("window_size"),
        "halo": built.halo,
        "best_s": min(times),
        "times_s": times,
        "setup_rss_mb": setup_rss,
        "peak_rss_mb": _common.peak_rss_mb(),
        "digest": digest,
        "shape_ok": shape_ok,
    })


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels (2048)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method names (default: every 'filter' method)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode; best kept (3)")
    parser.add_argument("--tile", type=int, default=512,
                        help="core tile side of the tiled run (512)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated image (0)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("bare", "tiled"), default="bare", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size < 64 or args.repeat < 1 or args.tile < 1:
        parser.error("expected --size ≥ 64, --repeat ≥ 1 and --tile ≥ 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0

    from sardespeckle.methods import get_method, list_methods

    if args.methods:
        names = [name.strip() for name in args.methods.split(",") if name.strip()]
        for name in names:
            get_method(name)  # a clear error for an unknown name, before any work
    else:
        names = [spec.name for spec in list_methods() if spec.family == "filter"]

    megapixels = args.size * args.size / 1e6
    print(f"# bench_filters: {args.size}×{args.size} float32 single-look intensity (seed "
          f"{args.seed}), looks=1, default parameters, tile={args.tile}, best of {args.repeat}")
    print(f"# {_common.machine_line()}")
    started = time.perf_counter()
    rows = []
    for name in names:
        common = ["--size", str(args.size), "--repeat", str(args.repeat), "--tile", str(args.tile),
                  "--seed", str(args.seed), "--child", name]
        bare = _common.run_child(SCRIPT, [*common, "--mode", "bare"])
        tiled = _common.run_child(SCRIPT, [*common, "--mode", "tiled"])
        rows.append([
            name, bare["window"], bare["halo"],
            megapixels / bare["best_s"], megapixels / tiled["best_s"],
            bare["best_s"], tiled["best_s"],
            bare["setup_rss_mb"], bare["peak_rss_mb"], tiled["peak_rss_mb"],
            ("yes" if bare["digest"] == tiled["digest"] else "NO")
            + ("" if bare["shape_ok"] and tiled["shape_ok"] else " (wrong shape/dtype!)"),
        ])
        print(f"  {name}: bare {bare['best_s']:.3f} s, tiled {tiled['best_s']:.3f} s",
              file=sys.stderr, flush=True)
    print()
    print(_common.table(
        ["method", "window", "halo", "MP/s bare", "MP/s tiled", "s bare", "s tiled",
         "setup RSS MB", "peak RSS MB bare", "peak RSS MB tiled", "tiled == bare"],
        rows,
    ))
    print()
    print(f"RSS: peak of a fresh child process per (method, mode), from "
          f"{_common.peak_rss_source()}; 'setup' is the mark just before the first timed call "
          "(interpreter, numpy/scipy, the input image, a warm-up on 64×64). The method's own "
          "peak is roughly peak minus setup.")
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
