"""File → file throughput and peak memory of the tiled engine on large GeoTIFFs.

Creates SIZE×SIZE float32 *amplitude* GeoTIFFs (tiled 256×256, deflate, EPSG:32630, 10 m pixels)
holding a smooth synthetic reflectivity times seeded single-look speckle. Each file is written
strip by strip (256 rows at a time, GDAL block cache capped at 64 MB), so creating it never
holds the whole image in memory. Then, for each method, ``sardespeckle.api.despeckle_file`` turns
it into a new GeoTIFF, in a fresh child process that reports its wall time and its peak RSS, so
the number is of that run alone: imports + engine + rasterio/GDAL, including GDAL's block cache.
On Linux the peak is ``VmHWM`` from ``/proc/self/status`` rather than ``ru_maxrss``, which a
child started by ``subprocess`` inherits from its parent's peak (see ``_common.peak_rss_mb``).
The same is done on a smaller file (``--small-size``, 4096 by default) to show whether memory
stays flat as the image grows.

Finally every output is checked against its input: same shape, CRS and transform (OK/FAIL);
the script exits with status 1 on any FAIL. Numbers are printed, never asserted on::

    python benchmarks/bench_engine.py                         # 16384² and 4096², boxcar
    python benchmarks/bench_engine.py --methods boxcar,lee    # also lee
    python benchmarks/bench_engine.py --size 2048 --small-size 512   # quick
    python benchmarks/bench_engine.py --gdal-cachemax 64      # cap GDAL's cache in the runs (MB)

The 16384² input is about 1 GiB on disk (speckle hardly compresses) and so is each output;
``--workdir`` keeps them (and reuses an input made with the same size and seed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import _common

SCRIPT = os.path.abspath(__file__)
BLOCK = 256
CRS = "EPSG:32630"
ORIGIN = (500000.0, 5200000.0)  # UTM 30N, west of France
PIXEL = 10.0


def input_path(workdir: str, size: int, seed: int) -> str:
    return os.path.join(workdir, f"bench_{size}_seed{seed}_amplitude.tif")


def create_input(path: str, size: int, seed: int) -> dict:
    """Write the synthetic amplitude GeoTIFF strip by strip (runs in a child)."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    started = time.perf_counter()
    profile = dict(
        driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=CRS,
        transform=Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1]), tiled=True,
        blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )
    partial = path + ".partial"

    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(partial, "w", **profile) as dst:
        dst.set_band_description(1, "Amplitude_VV")
        dst.update_tags(BENCH_SIZE=str(size), BENCH_SEED=str(seed))
        for row0 in range(0, size, BLOCK):
            height = min(BLOCK, size - row0)
            strip = _common.speckled_block(row0, 0, height, size, (size, size), seed=seed,
                                           kind="amplitude")
            dst.write(strip, 1, window=Window(0, row0, size, height))
    os.replace(partial, path)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": _common.peak_rss_mb()}


def input_is_current(path: str, size: int, seed: int) -> bool:
    import rasterio

    if not os.path.exists(path):
        return False
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            return (src.shape == (size, size) and tags.get("BENCH_SIZE") == str(size)
                    and tags.get("BENCH_SEED") == str(seed))
    except Exception:  # noqa: BLE001 - an unreadable leftover is simply rebuilt
        return False


def run_once(source: str, output: str, method: str, tile: int | None) -> dict:
    """Despeckle ``source`` into ``output`` (runs in a child); report time and memory."""
    import rasterio  # noqa: F401 - imported before the baseline, as despeckle_file would
    import scipy.ndimage  # noqa: F401

    from sardespeckle.api import despeckle_file
    from sardespeckle.methods import get_method

    get_method(method)  # loads the registry and the filters
    baseline = _common.peak_rss_mb()  # after importing numpy/scipy/rasterio/sardespeckle
    started = time.perf_counter()
    report = despeckle_file(source, output, method=method, looks=1, tile=tile, overwrite=True)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _common.peak_rss_mb(),
        "input_kind": report.input_kind,
        "tile": report.tile,
        "halo": report.halo,
        "parameters": report.parameters,
    }


def open_once(source: str) -> dict:
    """Time opening the input alone (kind detection reads a decimated copy of the raster)."""
    from sardespeckle.io import open_source

    started = time.perf_counter()
    with open_source(source) as opened:
        kind = opened.kind
    return {"seconds": time.perf_counter() - started, "kind": kind}


def verify(source: str, output: str) -> tuple[bool, str]:
    """Same shape, CRS and transform; a sample window finite and positive."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(source) as src, rasterio.open(output) as dst:
        problems = []
        if dst.shape != src.shape:
            problems.append(f"shape {dst.shape} != {src.shape}")
        if dst.crs != src.crs:
            problems.append(f"CRS {dst.crs} != {src.crs}")
        if dst.transform != src.transform:
            problems.append(f"transform {tuple(dst.transform)} != {tuple(src.transform)}")
        side = min(512, dst.width, dst.height)
        row0, col0 = (dst.height - side) // 2, (dst.width - side) // 2
        sample = dst.read(1, window=Window(col0, row0, side, side))
        if not (np.isfinite(sample).all() and (sample > 0).all()):
            problems.append("central window not finite and positive")
        method = dst.tags().get("SARDESPECKLE_METHOD")
    if problems:
        return False, "; ".join(problems)
    return True, f"{dst.shape[0]}×{dst.shape[1]}, {src.crs}, same transform, method tag {method}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384, help="side of the large file (16384)")
    parser.add_argument("--small-size", type=int, default=4096,
                        help="side of the small file run for comparison (4096; 0 to skip)")
    parser.add_argument("--methods", default="boxcar",
                        help="comma-separated methods (default boxcar; e.g. boxcar,lee)")
    parser.add_argument("--tile", type=int, default=None, help="core tile side (package default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speckle (0)")
    parser.add_argument("--workdir", default=None,
                        help="folder for the files (kept; default: a temporary folder, removed)")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the despeckled outputs (default: delete each after checking)")
    parser.add_argument("--gdal-cachemax", type=int, default=None, metavar="MB",
                        help="set GDAL_CACHEMAX (MB) in the despeckling runs (default: GDAL's "
                             "own, 5%% of RAM)")
    parser.add_argument("--child-create", nargs=3, metavar=("PATH", "SIZE", "SEED"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-run", nargs=3, metavar=("IN", "OUT", "METHOD"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-open", metavar="IN", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size < 64 or (args.small_size and args.small_size < 64):
        parser.error("expected sizes ≥ 64 pixels")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_create:
        path, size, seed = args.child_create
        _common.emit(create_input(path, int(size), int(seed)))
        return 0
    if args.child_run:
        source, output, method = args.child_run
        _common.emit(run_once(source, output, method, args.tile))
        return 0
    if args.child_open:
        _common.emit(open_once(args.child_open))
        return 0

    from sardespeckle.methods import get_method

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        get_method(method)
    sizes = sorted({s for s in (args.small_size, args.size) if s})
    workdir = args.workdir or tempfile.mkdtemp(prefix="sardespeckle-bench-")
    os.makedirs(workdir, exist_ok=True)
    run_env = {"GDAL_CACHEMAX": str(args.gdal_cachemax)} if args.gdal_cachemax else {}
    cache_note = (f"GDAL_CACHEMAX={args.gdal_cachemax} MB" if args.gdal_cachemax
                  else f"GDAL_CACHEMAX={os.environ.get('GDAL_CACHEMAX', 'default (5% of RAM)')}")

    print(f"# bench_engine: float32 amplitude GeoTIFF (tiled {BLOCK}, deflate, {CRS}), "
          f"single-look speckle seed {args.seed}; despeckle_file looks=1, methods "
          f"{', '.join(methods)}; {cache_note}")
    print(f"# {_common.machine_line()}; workdir {workdir}")
    rows, checks, created = [], [], []
    try:
        for size in sizes:
            source = input_path(workdir, size, args.seed)
            if input_is_current(source, size, args.seed):
                created.append([size, "reused", None, None, _mb(source)])
            else:
                print(f"  creating {size}×{size} input ...", file=sys.stderr, flush=True)
                made = _common.run_child(SCRIPT, ["--child-create", source, str(size),
                                                  str(args.seed)])
                created.append([size, "created", made["seconds"], made["peak_rss_mb"],
                                _mb(source)])
            opened = _common.run_child(SCRIPT, ["--child-open", source], env=run_env)
            for method in methods:
                output = os.path.join(workdir, f"bench_{size}_{method}_despeckled.tif")
                print(f"  {method} on {size}×{size} ...", file=sys.stderr, flush=True)
                extra = ["--tile", str(args.tile)] if args.tile else []
                result = _common.run_child(SCRIPT, [*extra, "--child-run", source, output,
                                                    method], env=run_env)
                ok, detail = verify(source, output)
                checks.append((size, method, ok, detail))
                megapixels = size * size / 1e6
                rows.append([
                    f"{size}×{size}", method, result["tile"], result["halo"], _mb(source),
                    _mb(output), opened["seconds"], result["seconds"],
                    megapixels / result["seconds"], result["baseline_rss_mb"],
                    result["peak_rss_mb"], result["peak_rss_mb"] - result["baseline_rss_mb"],
                ])
                if not args.keep_outputs:
                    os.remove(output)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("Input files (creation runs in its own child; RSS = its peak):")
    print(_common.table(["size", "input", "create s", "create peak RSS MB", "file MB"], created))
    print()
    print(_common.table(
        ["image", "method", "tile", "halo", "in MB", "out MB", "open s", "wall s", "MP/s",
         "RSS after imports MB", "peak RSS MB", "peak - imports MB"],
        rows,
    ))
    print()
    print("wall s: despeckle_file alone (open + kind detection + tiled run + atomic rename), in a "
          "fresh child; 'open s' is opening the input alone (kind detection reads a decimated "
          "copy of the raster), in another child. RSS: peak of the run's child, from "
          f"{_common.peak_rss_source()}.")
    print()
    failed = False
    for size, method, ok, detail in checks:
        print(f"{'OK  ' if ok else 'FAIL'} {size}×{size} {method}: {detail}")
        failed |= not ok
    return 1 if failed else 0


def _mb(path: str) -> float:
    return os.path.getsize(path) / (1024 * 1024)


if __name__ == "__main__":
    raise SystemExit(main())
