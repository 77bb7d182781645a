"""SAR-CNN inference: seams, bf16 accuracy, file → file throughput against a bare forward pass.

Four measurements, printed as tables (numbers are never asserted on):

(a) **tiled vs whole**, fp32: max relative difference between the whole-image output
    (``tile=None``) and tiles of 128, 256 and 512 px, on a 1024² mosaic of real single-look
    Sentinel-1 crops (4 × 4 of the 256² dates in ``shared/data/sar/s1_stacks``; simulated
    speckle when the data is absent).
(b) **bf16 vs fp32** on a real 1024² crop (temporal mean of the ten Lely dates in
    ``shared/data/sar/timeseries``; a smooth synthetic reflectivity when the data is absent)
    with three draws of simulated single-look speckle: PSNR of each against the reference
    (amplitude, peak = 99th percentile of the reference amplitude, SAR_NOTES §4), their
    difference, and the PSNR of bf16 against fp32.
(c) **throughput** ``despeckle_file`` on a SIZE² float32 amplitude GeoTIFF (4096² by default),
    in fp32 and in bf16, in fresh child processes, and in the same child the throughput of a
    bare ``model(x)`` of the same folded, channels-last network on one 1024² tensor (best of
    ``--repeats``); the ratio engine / bare is what the engine loses to tiling, halo, log/exp,
    I/O.
(d) **peak RSS** of each of those children (``VmHWM``); ``--big`` adds a 16384² run (long:
    about an hour on a 2-core CPU without AMX).

Weights: random (seeded He-normal, the real architecture: depth 19, 64 features) unless
``--weights NAME|PATH`` is given; the tables say which. Timings depend on the load of the
machine: run it when nothing else runs, and compare numbers of the same run only::

    python benchmarks/bench_sarcnn.py                       # a, b, c, d on 4096²
    python benchmarks/bench_sarcnn.py --only c --tile 512   # throughput with 512-px tiles
    python benchmarks/bench_sarcnn.py --weights sarcnn-s1-l1 --big
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import shutil
import sys
import tempfile
import time

import _common

SCRIPT = os.path.abspath(__file__)
HERE = os.path.dirname(SCRIPT)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # for tests/_random_dncnn.py
STACKS = os.path.join(HERE, "..", "..", "shared", "data", "sar", "s1_stacks")
TIMESERIES = os.path.join(HERE, "..", "..", "shared", "data", "sar", "timeseries")


# --- weights ----------------------------------------------------------------------------------


def random_weights(path: str, seed: int = 0) -> str:
    """Save a depth-19, 64-feature DnCNN with random weights that keep the signal alive."""
    import numpy as np
    import torch
    from _random_dncnn import he_randomize  # tests/: the conformance tests' randomiser

    from sardespeckle.models import DnCNN, normalize_log_amplitude, save_weights

    net = DnCNN(depth=19)
    he_randomize(net, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        net.eval()
        rng = np.random.default_rng(seed)
        sample = np.exp(rng.normal(5, 1, (64, 64))) * rng.exponential(1.0, (64, 64))
        x = torch.from_numpy(normalize_log_amplitude(sample))[None, None]
        # Scale the last layer so that the predicted log-speckle has the size of real speckle.
        scale = 0.056 / float(net(x).std())
        net.layers[-1].weight.mul_(scale)
        net.layers[-1].bias.mul_(scale)
    save_weights(net, path, name=f"random-seed{seed}", training_data="none: random weights")
    return path


# --- (a) tiled vs whole -----------------------------------------------------------------------


def real_mosaic(size: int = 1024):
    """A size² single-look intensity mosaic of 256² S1 crops, or None when the data is absent."""
    import numpy as np

    files = sorted(glob.glob(os.path.join(STACKS, "*_[0-9].npy")))
    if not files:
        return None
    out = np.empty((size, size), np.float32)
    k = 0
    for r in range(0, size, 256):
        for c in range(0, size, 256):
            crop = np.load(files[k % len(files)]).astype(np.float64) ** 2
            out[r:r + 256, c:c + 256] = np.maximum(crop, 1e-6)[: size - r, : size - c]
            k += 1
    return out


def tiled_vs_whole(weights: str, tiles, threads: int | None, modes=("none", "subsample")) -> dict:
    import numpy as np

    from sardespeckle.api import despeckle

    image = real_mosaic()
    source = "S1 mosaic (4×4 crops of shared/data/sar/s1_stacks, single look)"
    if image is None:
        image = _common.simulated_intensity((1024, 1024), seed=1)
        source = "simulated single-look speckle"
    params = {"weights": weights, "precision": "fp32", "device": "cpu", "decorrelate": "none",
              "threads": threads or 0}
    rows = []
    for decorrelate in modes:
        params["decorrelate"] = decorrelate
        started = time.perf_counter()
        whole = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=None)
        whole_s = time.perf_counter() - started
        for tile in tiles:
            started = time.perf_counter()
            tiled = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=tile)
            seconds = time.perf_counter() - started
            diff = np.abs(tiled.astype(np.float64) / whole - 1)
            rows.append([decorrelate, tile, float(diff.max()), float(diff.mean()), whole_s, seconds])
    return {"source": source, "rows": rows}


# --- (b) bf16 vs fp32 -------------------------------------------------------------------------


def real_reflectivity(size: int = 1024):
    """A size² real reflectivity (intensity): the temporal mean of the ten 8-bit Lely amplitude
    dates of ``shared/data/sar/timeseries`` (squared), columns 1024 on; None when absent.

    Ten single-look-like dates leave some speckle (ENL ≈ 10 at most); that does not matter
    here, where fp32 and bf16 are scored against the same image."""
    import numpy as np
    from PIL import Image

    files = sorted(glob.glob(os.path.join(TIMESERIES, "lely_*.png")))
    if not files:
        return None
    stack = [np.asarray(Image.open(f), dtype=np.float64)[:size, 1024:1024 + size] ** 2 for f in files]
    mean = np.mean(stack, axis=0)
    if mean.shape != (size, size):
        return None
    return np.maximum(mean, np.min(mean[mean > 0]))


def precision_accuracy(weights: str, threads: int | None, draws: int = 3) -> dict:
    import numpy as np

    from sardespeckle.api import despeckle

    size = 1024
    reference = real_reflectivity(size)
    source = "real 1024² crop (mean of the 10 Lely dates, shared/data/sar/timeseries)"
    if reference is None:
        reference = _common.reflectivity(0, 0, size, size, (size, size)).astype(np.float64)
        source = "smooth synthetic reflectivity (the real data is absent)"
    amplitude = np.sqrt(reference)
    peak = float(np.percentile(amplitude, 99))

    def psnr(estimate, truth):
        error = np.sqrt(estimate.astype(np.float64)) - truth
        return 10 * math.log10(peak**2 / float(np.mean(error**2)))

    rows = []
    for draw in range(draws):
        rng = np.random.default_rng(7 + draw)
        noisy = (reference * rng.standard_exponential((size, size))).astype(np.float32)
        outputs = {}
        for precision in ("fp32", "bf16"):
            params = {"weights": weights, "precision": precision, "device": "cpu",
                      "decorrelate": "none", "threads": threads or 0}
            outputs[precision] = despeckle(noisy, method="sarcnn", looks=1, kind="intensity", params=params, tile=512)
        log_diff = 0.5 * np.abs(np.log(outputs["bf16"].astype(np.float64) / outputs["fp32"]))
        rows.append([draw, psnr(noisy, amplitude), psnr(outputs["fp32"], amplitude),
                     psnr(outputs["bf16"], amplitude),
                     psnr(outputs["bf16"], amplitude) - psnr(outputs["fp32"], amplitude),
                     psnr(outputs["bf16"], np.sqrt(outputs["fp32"].astype(np.float64))),
                     float(log_diff.mean()), float(log_diff.max())])
    mean = ["mean"] + [float(np.mean([row[k] for row in rows])) for k in range(1, 7)]
    mean.append(float(np.max([row[7] for row in rows])))
    return {"source": source, "rows": rows + [mean]}


# --- (c, d) throughput and memory (children) --------------------------------------------------


def bare_forward(weights: str, precision: str, threads: int | None, repeats: int) -> tuple[float, float]:
    """MP/s of ``model(x)`` on one (1, 1, 1024, 1024) tensor: the folded channels-last network
    of the method, in the same precision (``DnCNN.forward_mixed``), under inference_mode; best
    of ``repeats``, in wall time and in CPU time of the process (all threads)."""
    import torch

    from sardespeckle.models.inference import load_sarcnn

    loaded = load_sarcnn(weights, precision=precision, device="cpu", threads=threads)
    network = loaded.denoiser.network
    x = torch.rand(1, 1, 1024, 1024).contiguous(memory_format=torch.channels_last)
    dtype = loaded.denoiser._dtype()  # the engine's own forward: hidden layers in bf16
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    best, best_cpu = math.inf, math.inf
    try:
        with torch.inference_mode():
            network.forward_mixed(x[:, :, :128, :128], dtype)  # oneDNN primitive creation
            for _ in range(repeats):
                started, cpu = time.perf_counter(), time.process_time()
                network.forward_mixed(x, dtype)
                best = min(best, time.perf_counter() - started)
                best_cpu = min(best_cpu, time.process_time() - cpu)
    finally:
        torch.set_num_threads(previous)
    return 1024 * 1024 / 1e6 / best, 1024 * 1024 / 1e6 / best_cpu


def child_throughput(source: str, output: str, weights: str, precision: str, tile: int | None,
                     threads: int | None, repeats: int, batch_tiles: int | None) -> dict:
    import rasterio  # noqa: F401 - imported before the baseline, as despeckle_file would
    import torch  # noqa: F401

    from sardespeckle import methods
    from sardespeckle.api import despeckle_file

    if batch_tiles:
        methods.NETWORK_BATCH_TILES = batch_tiles
    baseline = _common.peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    report = despeckle_file(source, output, method="sarcnn", looks=1, tile=tile, overwrite=True,
                            params={"weights": weights, "precision": precision, "device": "cpu",
                                    "decorrelate": "none", "threads": threads or 0})
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = _common.peak_rss_mb()
    bare, bare_cpu = bare_forward(weights, precision, threads, repeats) if repeats else (None, None)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "baseline_rss_mb": baseline,
            "peak_rss_mb": peak, "tile": report.tile, "halo": report.halo, "bare_mp_s": bare,
            "bare_mp_cpu_s": bare_cpu,
            "torch_threads": threads or __import__("torch").get_num_threads()}


def make_input(workdir: str, size: int) -> str:
    import bench_engine

    path = bench_engine.input_path(workdir, size, 0)
    if not bench_engine.input_is_current(path, size, 0):
        print(f"  creating {size}×{size} input ...", file=sys.stderr, flush=True)
        _common.run_child(os.path.join(HERE, "bench_engine.py"), ["--child-create", path, str(size), "0"])
    return path


# --- main -------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="weights name or file (default: random)")
    parser.add_argument("--only", default="abcd", help="which parts to run, e.g. 'ab' or 'c'")
    parser.add_argument("--size", type=int, default=4096, help="side of the throughput file")
    parser.add_argument("--big", action="store_true", help="also run 16384² (long)")
    parser.add_argument("--tile", type=int, default=None, help="core tile (default: the method's)")
    parser.add_argument("--batch-tiles", type=int, default=None,
                        help="tiles per engine batch (default: the method's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--precisions", default="fp32,bf16", help="for part c (fp32,bf16)")
    parser.add_argument("--modes", default="none,subsample", help="decorrelations for part a")
    parser.add_argument("--repeats", type=int, default=2, help="bare forward repeats (best of)")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: temporary)")
    parser.add_argument("--child", nargs=4, metavar=("IN", "OUT", "WEIGHTS", "PRECISION"),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        source, output, weights, precision = args.child
        _common.emit(child_throughput(source, output, weights, precision, args.tile, args.threads,
                                      args.repeats, args.batch_tiles))
        return 0

    workdir = args.workdir or tempfile.mkdtemp(prefix="sardespeckle-sarcnn-")
    os.makedirs(workdir, exist_ok=True)
    try:
        if args.weights:
            weights, which = args.weights, f"weights {args.weights}"
        else:
            weights = random_weights(os.path.join(workdir, "random-sarcnn.pt"))
            which = "RANDOM weights (depth 19, 64 features, seed 0): accuracy numbers say nothing about quality"
        print(f"# bench_sarcnn: {which}")
        print(f"# {_common.machine_line()}; load average {os.getloadavg()[0]:.2f} at start")
        if "a" in args.only:
            result = tiled_vs_whole(weights, (128, 256, 512), args.threads, args.modes.split(","))
            print(f"\n(a) tiled vs whole-image output, fp32, 1024² {result['source']}:")
            print(_common.table(["decorrelate", "tile", "max rel diff", "mean rel diff", "whole s",
                                 "tiled s"], result["rows"]))
        if "b" in args.only:
            result = precision_accuracy(weights, args.threads)
            print(f"\n(b) bf16 vs fp32, simulated single-look speckle on a {result['source']}, "
                  "tile 512 (PSNR on amplitude, peak = 99th percentile of the reference):")
            print(_common.table(
                ["draw", "noisy dB", "fp32 dB", "bf16 dB", "bf16 − fp32 dB", "bf16 vs fp32 dB",
                 "mean |Δ log A|", "max |Δ log A|"], result["rows"]))
        if "c" in args.only or "d" in args.only:
            sizes = [args.size] + ([16384] if args.big else [])
            rows = []
            for size in sizes:
                source = make_input(workdir, size)
                for precision in args.precisions.split(","):
                    output = os.path.join(workdir, f"out_{size}_{precision}.tif")
                    extra = []
                    for flag, value in (("--tile", args.tile), ("--threads", args.threads),
                                        ("--batch-tiles", args.batch_tiles)):
                        if value:
                            extra += [flag, str(value)]
                    print(f"  sarcnn {precision} on {size}² ...", file=sys.stderr, flush=True)
                    load = os.getloadavg()[0]
                    result = _common.run_child(SCRIPT, [*extra, "--repeats", str(args.repeats), "--child",
                                                        source, output, weights, precision])
                    engine = size * size / 1e6 / result["seconds"]
                    engine_cpu = size * size / 1e6 / result["cpu_seconds"]
                    bare, bare_cpu = result["bare_mp_s"], result["bare_mp_cpu_s"]
                    rows.append([f"{size}²", precision, result["tile"], result["halo"],
                                 result["torch_threads"], result["seconds"], engine, bare,
                                 engine / bare if bare else None, engine_cpu, bare_cpu,
                                 engine_cpu / bare_cpu if bare_cpu else None,
                                 result["baseline_rss_mb"], result["peak_rss_mb"], load])
                    os.remove(output)
            print("\n(c, d) despeckle_file GeoTIFF → GeoTIFF (float32 amplitude, deflate) vs a bare "
                  "forward pass on one 1024² tensor, same child process:")
            print(_common.table(["image", "precision", "tile", "halo", "threads", "wall s",
                                 "engine MP/s", "bare MP/s", "engine/bare", "engine MP/cpu-s",
                                 "bare MP/cpu-s", "engine/bare (cpu)", "RSS after imports MB",
                                 "peak RSS MB", "load avg"], rows))
            print(f"RSS: {_common.peak_rss_source()} of the child; wall s: open + looks + build + "
                  "tiled run + write; MP/cpu-s: megapixels per second of CPU time of the child "
                  "(all its threads), less sensitive than wall time to other processes; load avg: "
                  "1-min load average when the child started (the machine has other users: "
                  "compare rows of one run).")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
