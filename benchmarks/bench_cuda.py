"""SAR-CNN and MuLoG's DnCNNs on a CUDA GPU: agreement with the CPU, precision, throughput.

Needs a CUDA build of torch and a GPU (it says so and exits 0 otherwise). No rasterio needed:
files are ``.npy``. Four parts, printed as tables (numbers are never asserted on):

(a) **agreement**, SAR-CNN on a 1024² synthetic single-look image (``_common``): CUDA fp32
    against the CPU in fp32 (max and mean |Δ log A|), and CUDA tiles of 128, 256, 512 px
    against the CUDA whole image.
(b) **precision**: PSNR on amplitude (peak = 99th percentile of the truth) of CUDA fp32, bf16
    and fp16 against the synthetic truth, 3 speckle draws.
(c) **throughput** ``despeckle_file`` ``.npy`` → ``.npy`` (float32 amplitude, SIZE², 4096² by
    default) in fp32, bf16 and fp16, after a warm-up call, against a bare forward pass of the
    same folded channels-last network on one 1024² tensor (CUDA-synchronised, best of 3);
    peak GPU memory (``torch.cuda.max_memory_allocated``) and peak RSS of the process. Where
    rasterio is missing (``despeckle_file`` opens every file inside a GDAL environment) the
    in-memory array API ``despeckle`` runs instead, the same tiled engine without the file
    I/O; the table says which.
(d) **MuLoG** with ``dncnn-sar`` (the hybrid) on a 512² synthetic image, L = 1, 6 iterations:
    CUDA against the CPU (fp32 both; max |Δ log A|) and the time of each.

Weights: the package's default SAR-CNN weights unless ``--weights NAME|PATH``::

    python benchmarks/bench_cuda.py
    python benchmarks/bench_cuda.py --only c --sizes 4096,8192
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time

import numpy as np

import _common

#: Where the "GPU" side runs; ``--device cpu`` runs the same script on the CPU (a smoke check of
#: the script itself: small sizes, numbers not comparable).
DEVICE = "cuda"
PRECISIONS = ("fp32", "bf16", "fp16")


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _reset_peak() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gpu_mib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None


def _log_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """max and mean of ½|log(a / b)| (intensities: the difference of log-amplitudes)."""
    d = 0.5 * np.abs(np.log(a.astype(np.float64) / b.astype(np.float64)))
    return float(d.max()), float(d.mean())


def _sarcnn(image, weights, precision, device, tile=None):
    from sardespeckle.api import despeckle

    params = {"weights": weights, "precision": precision, "device": device, "decorrelate": "none"}
    return despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=tile)


def agreement(weights: str) -> list[list]:
    image = _common.simulated_intensity((1024, 1024), seed=1)
    rows = []
    started = time.perf_counter()
    cpu = _sarcnn(image, weights, "fp32", "cpu")
    rows.append(["cpu fp32 (reference)", None, 0.0, 0.0, time.perf_counter() - started])
    _sarcnn(image[:256, :256], weights, "fp32", DEVICE)  # CUDA context, cuDNN plans
    started = time.perf_counter()
    out = _sarcnn(image, weights, "fp32", DEVICE)
    rows.append([f"{DEVICE} fp32 (TF32 off: models.threads.full_fp32)", None,
                 *_log_diff(out, cpu), time.perf_counter() - started])
    whole = _sarcnn(image, weights, "fp32", DEVICE)
    for tile in (128, 256, 512):
        started = time.perf_counter()
        out = _sarcnn(image, weights, "fp32", DEVICE, tile=tile)
        rows.append([f"{DEVICE} fp32 tiles vs {DEVICE} whole", tile, *_log_diff(out, whole),
                     time.perf_counter() - started])
    return rows


def precision_psnr(weights: str, draws: int = 3) -> list[list]:
    from sardespeckle.metrics import psnr_amplitude

    truth = _common.reflectivity(0, 0, 1024, 1024, (1024, 1024)).astype(np.float64)
    rows = []
    for draw in range(draws):
        rng = np.random.default_rng(11 + draw)
        noisy = (truth * rng.standard_exponential(truth.shape)).astype(np.float32)
        scores = {p: psnr_amplitude(np.sqrt(truth), np.sqrt(_sarcnn(noisy, weights, p, DEVICE)))
                  for p in PRECISIONS}
        fp16 = scores.get("fp16", math.nan)  # CUDA only
        rows.append([draw, psnr_amplitude(np.sqrt(truth), np.sqrt(noisy)), scores["fp32"],
                     scores["bf16"], fp16, scores["bf16"] - scores["fp32"],
                     fp16 - scores["fp32"]])
    rows.append(["mean"] + [float(np.mean([r[k] for r in rows])) for k in range(1, 7)])
    return rows


def bare_forward(weights: str, precision: str, repeats: int = 3) -> float:
    """MP/s of the folded channels-last network on one 1024² tensor on CUDA."""
    import torch

    from sardespeckle.models.inference import load_sarcnn

    loaded = load_sarcnn(weights, precision=precision, device=DEVICE)
    network, dtype = loaded.denoiser.network, loaded.denoiser._dtype()
    x = torch.rand(1, 1, 1024, 1024, device=DEVICE).contiguous(memory_format=torch.channels_last)
    best = math.inf
    with torch.inference_mode():
        network.forward_mixed(x, dtype)
        _sync()
        for _ in range(repeats):
            started = time.perf_counter()
            network.forward_mixed(x, dtype)
            _sync()
            best = min(best, time.perf_counter() - started)
    return 1024 * 1024 / 1e6 / best


def throughput(weights: str, sizes: list[int], workdir: str) -> list[list]:
    import torch

    from sardespeckle.api import despeckle, despeckle_file

    try:
        import rasterio  # noqa: F401 - despeckle_file needs it, even for .npy
        files = True
    except ImportError:
        files = False
    rows = []
    for size in sizes:
        source = os.path.join(workdir, f"in_{size}.npy")
        amplitude = np.empty((size, size), np.float32)
        for row0 in range(0, size, 1024):
            height = min(1024, size - row0)
            amplitude[row0:row0 + height] = _common.speckled_block(
                row0, 0, height, size, (size, size), seed=0, kind="amplitude")
        np.save(source, amplitude)
        del amplitude
        for precision in PRECISIONS:
            params = {"weights": weights, "precision": precision, "device": DEVICE,
                      "decorrelate": "none"}
            output = os.path.join(workdir, f"out_{size}_{precision}.npy")
            if files:
                warm = os.path.join(workdir, "warm.npy")
                np.save(warm, np.load(source, mmap_mode="r")[:1100, :1100])
                despeckle_file(warm, output, method="sarcnn", looks=1, kind="amplitude", overwrite=True,
                               params=params)
                _reset_peak()
                started = time.perf_counter()
                report = despeckle_file(source, output, method="sarcnn", looks=1, kind="amplitude",
                                        overwrite=True, params=params)
                seconds = time.perf_counter() - started
                how, tile, halo = "file → file", report.tile, report.halo
                os.remove(output)
            else:
                image = np.load(source) ** 2
                despeckle(image[:1100, :1100], method="sarcnn", looks=1, kind="intensity", params=params)
                _reset_peak()
                started = time.perf_counter()
                despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params)
                seconds = time.perf_counter() - started
                how, tile, halo = "array → array", None, None
                del image
            engine = size * size / 1e6 / seconds
            bare = bare_forward(weights, precision)
            rows.append([f"{size}²", how, precision, tile, halo, seconds, engine, bare,
                         engine / bare, _peak_gpu_mib(),
                         _common.peak_rss_mb()])
        os.remove(source)
    return rows


def mulog_hybrid() -> list[list]:
    from sardespeckle.api import despeckle

    truth = _common.reflectivity(0, 0, 512, 512, (512, 512)).astype(np.float64)
    noisy = (truth * np.random.default_rng(3).standard_exponential(truth.shape)).astype(np.float32)
    rows, outputs = [], {}
    despeckle(noisy[:128, :128], method="mulog", looks=1, kind="intensity",
              params={"denoiser": "dncnn-sar", "device": DEVICE, "precision": "fp32"})
    for device, precision in (("cpu", "fp32"), (DEVICE, "fp32"), (DEVICE, "bf16")):
        started = time.perf_counter()
        outputs[device, precision] = despeckle(
            noisy, method="mulog", looks=1, kind="intensity",
            params={"denoiser": "dncnn-sar", "device": device, "precision": precision})
        seconds = time.perf_counter() - started
        rows.append([device, precision, seconds,
                     *_log_diff(outputs[device, precision], outputs["cpu", "fp32"])])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="SAR-CNN weights (default: the package's)")
    parser.add_argument("--only", default="abcd", help="which parts to run, e.g. 'ac'")
    parser.add_argument("--sizes", default="4096", help="sides of the throughput files, e.g. 4096,8192")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: run the script's own code on the CPU (a smoke check; fp16 left out)")
    args = parser.parse_args(argv)
    import torch

    global DEVICE, PRECISIONS
    DEVICE = args.device
    PRECISIONS = ("fp32", "bf16", "fp16") if DEVICE == "cuda" else ("fp32", "bf16")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("# bench_cuda: torch sees no CUDA device; nothing to measure")
        return 0
    from sardespeckle.models.inference import default_sarcnn_weights

    weights = args.weights or default_sarcnn_weights()
    gpu = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU smoke check, no GPU"
    print(f"# bench_cuda: weights {weights}; {gpu}, torch {torch.__version__}")
    print(f"# {_common.machine_line()}")
    workdir = tempfile.mkdtemp(prefix="sardespeckle-cuda-")
    parts = [
        ("a", "(a) SAR-CNN agreement, 1024² synthetic single-look intensity "
              "(|Δ log A| against the row's reference)",
         ["run", "tile", "max |Δ log A|", "mean |Δ log A|", "s"], lambda: agreement(weights)),
        ("b", "(b) PSNR on amplitude against the synthetic truth, 1024², CUDA",
         ["draw", "noisy dB", "fp32 dB", "bf16 dB", "fp16 dB", "bf16 − fp32", "fp16 − fp32"],
         lambda: precision_psnr(weights)),
        ("c", "(c) SAR-CNN on CUDA, despeckle_file .npy → .npy (float32 amplitude; the array "
              "API without rasterio) vs a bare forward pass on one 1024² tensor",
         ["image", "run", "precision", "tile", "halo", "wall s", "engine MP/s", "bare MP/s",
          "engine/bare", "peak GPU MiB", "peak RSS MiB"],
         lambda: throughput(weights, [int(s) for s in args.sizes.split(",")], workdir)),
        ("d", "(d) MuLoG + dncnn-sar, 512² synthetic, L = 1, 6 iterations "
              "(|Δ log A| against the CPU in fp32)",
         ["device", "precision", "s", "max |Δ log A|", "mean |Δ log A|"], mulog_hybrid),
    ]
    failed = 0
    try:
        for key, title, headers, run in parts:
            if key not in args.only:
                continue
            try:
                rows = run()
            except Exception as error:  # noqa: BLE001 - report and go on with the other parts
                failed += 1
                print(f"\n{title}: FAILED: {type(error).__name__}: {error}", flush=True)
                continue
            print(f"\n{title}:\n{_common.table(headers, rows)}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
