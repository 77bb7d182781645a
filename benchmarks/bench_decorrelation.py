"""Correlated speckle: how much there is, and what none / subsample / whiten do about it.

Three parts, printed as tables:

1. **Sentinel-1 stacks** (``shared/data/sar/s1_stacks``: 5 groups × 5 co-registered dates,
   256² single-look amplitude). Input speckle correlation, measured three ways: on the whole
   image, on the most homogeneous windows (:func:`estimate_speckle_correlation`), and on the
   ratio of each date to the mean of the four *other* dates (the scene cancels; the ratio
   carries the date's speckle and, with a quarter of its variance, that of the 4-date mean).
   Then, for ``none`` and ``subsample``, the lag-1 correlation of the speckle the method sees
   (the components' for subsample), and of the ratio image noisy / despeckled
   (:func:`measure_residual_correlation`). ``whiten`` needs complex data: n/a here.
2. **TerraSAR-X SLC** (``tsx_slc/test_image_data.npy``, complex 256²): the same for
   ``none``, ``subsample`` and ``whiten``; for whiten the ratio image is also given against
   the whitened intensity (what the method despeckled).
3. **Simulated correlated SLC** over the speckle-free ``references/groundtruth`` images
   (Hamming-weighted band 0.67 × 0.86 of the sampling rate, Doppler shift 0.1: lag-1 correlation
   like Sentinel-1's), 3 speckle draws: PSNR against the reference (amplitude, peak = 99th
   percentile) for none, subsample (average and interleave recombination) and whiten.

Without trained SAR-CNN weights a classical filter stands in for the network
(``--method kuan`` by default). With weights::

    python benchmarks/bench_decorrelation.py --method sarcnn --weights PATH_OR_NAME

Reading the ratio-image column: for a perfect despeckler the ratio image *is* the speckle, so its
correlation equals the input's; below it, the output kept part of the speckle blobs; above it,
scene structure leaked into the ratio.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys

import _common

HERE = os.path.dirname(os.path.abspath(__file__))
SAR = os.path.join(HERE, "..", "..", "shared", "data", "sar")
GROUPS = ("lely", "limagne", "marais1", "marais2", "ramb")


def method_runner(method: str, params: dict):
    """``run(intensity, mode, combine) -> despeckled`` for a registered method.

    The method is built once with ``decorrelate='none'`` (networks) and wrapped here, so that the
    same code measures a classical filter and a network.
    """
    import numpy as np

    from sardespeckle.decorrelate import Subsampled
    from sardespeckle.methods import build_method, get_method

    spec = get_method(method)
    if "decorrelate" in spec.defaults:
        params = {**params, "decorrelate": "none"}
    built = build_method(method, looks=1, params=params)
    from sardespeckle.tiling import process_array

    def run(intensity, mode: str = "none", combine: str = "average"):
        function, halo = built.function, built.halo
        if mode == "subsample":
            function = Subsampled(function, halo=halo, combine=combine)
            halo = function.halo
        out = process_array(np.asarray(intensity, np.float32), function, halo=halo, tile=None,
                            batch_size=built.batch_size)
        return out

    return built, run


def correlation_pair(values) -> str:
    return f"{values[0]:.3f} / {values[1]:.3f}"


def mean_pairs(pairs):
    return (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))


def components_correlation(ratio):
    from sardespeckle.speckle import speckle_lag_correlation

    return mean_pairs([speckle_lag_correlation(ratio[dr::2, dc::2]) for dr in (0, 1) for dc in (0, 1)])


def stacks_part(run) -> list[list]:
    import numpy as np

    from sardespeckle.decorrelate import estimate_speckle_correlation, measure_residual_correlation
    from sardespeckle.speckle import speckle_lag_correlation

    rows = []
    for group in GROUPS:
        files = sorted(glob.glob(os.path.join(SAR, "s1_stacks", f"{group}_[0-9].npy")))
        if len(files) < 2:
            continue
        dates = [np.maximum(np.load(f).astype(np.float64) ** 2, 1e-6) for f in files]
        whole, homogeneous, loo, seen_sub = [], [], [], []
        ratios = {"none": [], "subsample": []}
        for t, intensity in enumerate(dates):
            others = np.mean([d for s, d in enumerate(dates) if s != t], axis=0)
            ratio = intensity / others
            whole.append(speckle_lag_correlation(intensity))
            homogeneous.append(estimate_speckle_correlation(intensity))
            loo.append(speckle_lag_correlation(ratio))
            seen_sub.append(components_correlation(ratio))
            for mode in ratios:
                out = run(intensity, mode)
                ratios[mode].append(measure_residual_correlation(intensity, out))
        rows.append([group, len(dates), correlation_pair(mean_pairs(whole)),
                     correlation_pair(mean_pairs(homogeneous)), correlation_pair(mean_pairs(loo)),
                     correlation_pair(mean_pairs(ratios["none"])), correlation_pair(mean_pairs(seen_sub)),
                     correlation_pair(mean_pairs(ratios["subsample"]))])
    return rows


def tsx_part(run) -> list[list] | None:
    import numpy as np

    from sardespeckle.decorrelate import (estimate_speckle_correlation, estimate_whitening_filter,
                                          measure_residual_correlation)
    from sardespeckle.speckle import speckle_lag_correlation

    path = os.path.join(SAR, "tsx_slc", "test_image_data.npy")
    if not os.path.exists(path):
        return None
    raw = np.load(path)
    slc = raw[..., 0].astype(np.float64) + 1j * raw[..., 1].astype(np.float64)
    intensity = np.maximum(np.abs(slc) ** 2, 1e-12)
    valid = np.ones(slc.shape, bool)
    whitened = np.maximum(estimate_whitening_filter(slc).whitened_intensity(slc, valid), 1e-12)
    rows = []
    for mode, image in (("none", intensity), ("subsample", intensity), ("whiten", whitened)):
        out = run(image, mode if mode == "subsample" else "none")
        seen = {"none": estimate_speckle_correlation(intensity),
                "whiten": estimate_speckle_correlation(whitened)}.get(mode)
        if mode == "subsample":
            seen = mean_pairs([estimate_speckle_correlation(intensity[dr::2, dc::2], window_size=8)
                               for dr in (0, 1) for dc in (0, 1)])
        rows.append([mode, correlation_pair(speckle_lag_correlation(image)),
                     correlation_pair(seen),
                     correlation_pair(measure_residual_correlation(intensity, out)),
                     correlation_pair(measure_residual_correlation(image, out)) if mode == "whiten" else "-",
                     float(np.mean(out) / np.mean(intensity))])
    return rows


def simulated_part(run, draws: int = 3) -> list[list]:
    import numpy as np

    from sardespeckle.decorrelate import estimate_whitening_filter, simulate_correlated_slc
    from sardespeckle.speckle import speckle_lag_correlation

    files = sorted(glob.glob(os.path.join(SAR, "references", "groundtruth", "*.npy")))
    rows = []
    for path in files:
        amplitude = np.load(path).astype(np.float64)
        reflectivity = amplitude**2
        peak = float(np.percentile(amplitude, 99))

        def psnr(estimate):
            error = np.sqrt(np.asarray(estimate, np.float64)) - amplitude
            return 10 * math.log10(peak**2 / float(np.mean(error**2)))

        scores: dict[str, list[float]] = {}
        correlation = []
        for seed in range(draws):
            slc = simulate_correlated_slc(reflectivity, band=(0.67, 0.86), doppler=0.1, seed=seed)
            noisy = np.maximum(np.abs(slc) ** 2, 1e-12)
            correlation.append(speckle_lag_correlation(noisy / reflectivity))
            valid = np.ones(slc.shape, bool)
            white = np.maximum(estimate_whitening_filter(slc).whitened_intensity(slc, valid), 1e-12)
            results = {
                "noisy": noisy,
                "none": run(noisy, "none"),
                "subsample (average)": run(noisy, "subsample", "average"),
                "subsample (interleave)": run(noisy, "subsample", "interleave"),
                "whiten": run(white, "none"),
            }
            for key, value in results.items():
                scores.setdefault(key, []).append(psnr(value))
        name = os.path.basename(path)
        rows.append([name, correlation_pair(mean_pairs(correlation))]
                    + [f"{np.mean(v):.2f} ± {np.std(v):.2f}" for v in scores.values()])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="kuan", help="registered method (default kuan)")
    parser.add_argument("--weights", default=None, help="weights for a network method")
    parser.add_argument("--precision", default="fp32", help="network precision (fp32)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a method parameter (repeatable)")
    parser.add_argument("--draws", type=int, default=3, help="speckle draws in part 3")
    args = parser.parse_args(argv)

    params = dict(item.split("=", 1) for item in args.param)
    from sardespeckle.methods import get_method

    if "weights" in get_method(args.method).defaults:
        params.setdefault("weights", args.weights)
        params.setdefault("precision", args.precision)
        params.setdefault("device", "cpu")
    elif args.weights:
        parser.error(f"method {args.method!r} takes no weights")
    built, run = method_runner(args.method, params)
    label = f"{built.name} {built.parameters}" + (f" weights {built.weights}" if built.weights else "")
    print(f"# bench_decorrelation: method {label}")
    print(f"# {_common.machine_line()}")
    print("# correlations are lag-1 of log-intensity, 'along rows / along columns' (horizontal / "
          "vertical neighbours; for SLC rows are azimuth lines)")

    rows = stacks_part(run)
    if rows:
        print("\n1. Sentinel-1 stacks (mean over the dates): input speckle correlation, and the "
              "ratio image noisy/despeckled for each mode (whiten: n/a, intensity-only data)")
        print(_common.table(["stack", "dates", "image", "homogeneous windows", "date / mean of others",
                             "ratio: none", "seen: subsample", "ratio: subsample"], rows))
    else:
        print("\n1. Sentinel-1 stacks: data not found", file=sys.stderr)

    rows = tsx_part(run)
    if rows:
        print("\n2. TerraSAR-X SLC 256² (no reference: 'seen' = homogeneous-window estimate on what "
              "the method is given; mean out/in: mean intensity kept)")
        print(_common.table(["mode", "image given", "seen (homogeneous)", "ratio vs |z|²",
                             "ratio vs whitened", "mean out/in"], rows))

    rows = simulated_part(run, args.draws)
    if rows:
        print(f"\n3. Simulated correlated SLC on the speckle-free references ({args.draws} draws), "
              "PSNR dB (amplitude, peak = 99th percentile)")
        print(_common.table(["reference", "speckle corr", "noisy", "none", "subsample (average)",
                             "subsample (interleave)", "whiten"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
