"""Throughput of file → file despeckling: one process against a Dask LocalCluster.

Creates a SIZE×SIZE float32 amplitude GeoTIFF (8192² by default; the same synthetic scene,
tiling and speckle as ``bench_engine.py``, made by it), then for each method runs
``sardespeckle.api.despeckle_file`` twice, each in a fresh child process:

* **single**: in the child itself (the engine with its read-ahead thread);
* **cluster**: with ``client=`` a ``LocalCluster`` of ``--workers`` processes of one thread
  each, started in the child. The cluster's start and the workers' first imports are timed
  apart (``start s``), so that the throughput is of the run alone, like the single-process one.

MP/s = megapixels / wall seconds of ``despeckle_file``. The outputs of the two modes are then
compared block by block: the classical filters must be identical; a network may round
differently (its tiles are batched differently), so its largest relative difference is printed.

SAR-CNN runs with the registered default weights when ``sardespeckle weights`` lists some, else
with a random-weights DnCNN of the real architecture (depth 19, 64 features, seeded as in the
conformance tests); the output says which. Throughput does not depend on the weights' values.
Numbers are printed, never asserted on; they depend on the load of the machine::

    python benchmarks/bench_dask.py                          # 8192², sarcnn and kuan, 2 workers
    python benchmarks/bench_dask.py --size 1024              # quick check
    python benchmarks/bench_dask.py --methods kuan --workers 4 --workdir /data/bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import _common
import bench_engine

SCRIPT = os.path.abspath(__file__)
ENGINE_SCRIPT = os.path.abspath(bench_engine.__file__)
COMPARE_ROWS = 256


def random_weights_file(path: str) -> str:
    """A depth-19, 64-feature DnCNN with seeded default-initialised weights."""
    import torch

    from sardespeckle.models import DnCNN, save_weights

    torch.manual_seed(0)
    network = DnCNN(depth=19, features=64).eval()
    save_weights(network, path, name="bench-random-dncnn19", training_data="none (random)")
    return path


def sarcnn_weights(workdir: str) -> tuple[str | None, str]:
    """The weights to run SAR-CNN with (``None``: the registry default) and a sentence saying so."""
    from sardespeckle.models.weights import list_weights

    registered = [entry.name for entry in list_weights()]
    if registered:
        return None, ("SAR-CNN weights: the registered default (registered: "
                      f"{', '.join(registered)})")
    path = random_weights_file(os.path.join(workdir, "bench-random-dncnn19.pt"))
    return path, ("SAR-CNN weights: none registered, so RANDOM weights (DnCNN depth 19, 64 "
                  "features, torch.manual_seed(0)): the throughput is real, the output is not")


def run_child_mode(mode: str, source: str, output: str, method: str, weights: str | None,
                   workers: int, tile: int | None) -> dict:
    """Despeckle ``source`` once (runs in a child); report wall time and the cluster's start."""
    import rasterio  # noqa: F401 - imported before timing, as in bench_engine
    import scipy.ndimage  # noqa: F401

    from sardespeckle.api import despeckle_file
    from sardespeckle.methods import get_method

    params = {"weights": weights} if weights and "weights" in get_method(method).defaults else {}
    options = dict(method=method, looks=1, tile=tile, params=params, overwrite=True)
    if mode == "single":
        started = time.perf_counter()
        report = despeckle_file(source, output, **options)
        return {"seconds": time.perf_counter() - started, "start_seconds": None,
                "tile": report.tile, "halo": report.halo}
    from sardespeckle.scale import dask_client

    started = time.perf_counter()
    with dask_client(workers=workers) as client:
        client.run(_import_for, method)  # the workers' imports, as the single child has done
        start_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = despeckle_file(source, output, client=client, **options)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "start_seconds": start_seconds, "tile": report.tile,
            "halo": report.halo}


def _import_for(method: str) -> None:
    import rasterio  # noqa: F401
    import scipy.ndimage  # noqa: F401

    from sardespeckle.methods import get_method

    if get_method(method).family == "cnn":
        import torch  # noqa: F401


def compare(first: str, second: str) -> str:
    """``identical`` or the largest relative difference, read block by block."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    worst = 0.0
    with rasterio.open(first) as a, rasterio.open(second) as b:
        if a.shape != b.shape:
            return f"DIFFERENT shapes {a.shape} and {b.shape}"
        for row0 in range(0, a.height, COMPARE_ROWS):
            window = Window(0, row0, a.width, min(COMPARE_ROWS, a.height - row0))
            x, y = a.read(1, window=window), b.read(1, window=window)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return "DIFFERENT masks"
            both = ~np.isnan(x)
            diff = np.abs(x[both].astype(np.float64) - y[both]) / np.abs(x[both])
            worst = max(worst, float(diff.max(initial=0.0)))
    return "identical" if worst == 0.0 else f"max rel diff {worst:.2e}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="image side (8192)")
    parser.add_argument("--methods", default="sarcnn,kuan",
                        help="comma-separated methods (default sarcnn,kuan)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (2)")
    parser.add_argument("--tile", type=int, default=None, help="core tile side (method default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speckle (0)")
    parser.add_argument("--workdir", default=None,
                        help="folder for the files (kept; default: a temporary folder, removed)")
    parser.add_argument("--child", nargs=6, metavar=("MODE", "IN", "OUT", "METHOD", "WEIGHTS",
                                                     "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size < 64:
        parser.error("expected a size ≥ 64 pixels")
    if args.workers < 1:
        parser.error("expected at least 1 worker")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        mode, source, output, method, weights, workers = args.child
        _common.emit(run_child_mode(mode, source, output, method, weights or None,
                                    int(workers), args.tile))
        return 0

    from sardespeckle.methods import get_method
    from sardespeckle.tiling import plan_tiles

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        get_method(method)
    workdir = args.workdir or tempfile.mkdtemp(prefix="sardespeckle-bench-dask-")
    os.makedirs(workdir, exist_ok=True)
    size, megapixels = args.size, args.size * args.size / 1e6
    notes = []
    rows = []
    try:
        source = bench_engine.input_path(workdir, size, args.seed)
        if not bench_engine.input_is_current(source, size, args.seed):
            print(f"  creating {size}×{size} input ...", file=sys.stderr, flush=True)
            _common.run_child(ENGINE_SCRIPT, ["--child-create", source, str(size), str(args.seed)])
        for method in methods:
            weights = ""
            if get_method(method).family == "cnn":
                path, note = sarcnn_weights(workdir)
                weights = path or ""
                notes.append(note)
            outputs, results = {}, {}
            for mode in ("single", "cluster"):
                outputs[mode] = os.path.join(workdir, f"bench_{size}_{method}_{mode}.tif")
                print(f"  {method} {mode} on {size}×{size} ...", file=sys.stderr, flush=True)
                extra = ["--tile", str(args.tile)] if args.tile else []
                results[mode] = _common.run_child(SCRIPT, [*extra, "--child", mode, source,
                                                           outputs[mode], method, weights,
                                                           str(args.workers)])
            agreement = compare(outputs["single"], outputs["cluster"])
            single = results["single"]["seconds"]
            tiles = len(plan_tiles((size, size), tile=results["single"]["tile"],
                                   align=bench_engine.BLOCK))
            if tiles < 2 * args.workers:
                notes.append(f"{method}: only {tiles} tile(s) at this size, too few to keep "
                             f"{args.workers} workers busy (use a larger --size)")
            for mode in ("single", "cluster"):
                result = results[mode]
                rows.append([
                    method, mode, 1 if mode == "single" else args.workers, result["tile"],
                    tiles, result["halo"], result["start_seconds"], result["seconds"],
                    megapixels / result["seconds"], single / result["seconds"],
                    agreement if mode == "cluster" else "",
                ])
            for path in outputs.values():
                os.remove(path)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"# bench_dask: {size}×{size} float32 amplitude GeoTIFF (tiled {bench_engine.BLOCK}, "
          f"deflate), single-look speckle seed {args.seed}; despeckle_file looks=1")
    print(f"# {_common.machine_line()}")
    print()
    print(_common.table(["method", "mode", "workers", "tile", "tiles", "halo", "start s", "wall s",
                         "MP/s", "speed-up", "cluster vs single"], rows))
    print()
    print("wall s: despeckle_file alone, in a fresh child (imports done before timing); "
          "cluster: LocalCluster of one-thread worker processes, 'start s' = starting it and the "
          "workers' imports (not in wall s); each worker builds the method once, at its first "
          "tile. speed-up = single wall s / this wall s.")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
