"""Build the SAR-CNN training references from the co-registered despeckled series.

Reads ``sar/timeseries/{lely_21..30, marais2_20..30}.png`` from the shared data folder, builds a
change-aware temporal reference per site (:func:`sardespeckle.references.build_reference`) and
writes it as a ``float32`` amplitude GeoTIFF with its side files and JSON report::

    runs/references/lely_reference.tif      (+ _count.tif, _changes.tif, .json)
    runs/references/marais2_reference.tif   (columns 384:8192 of the series only)

The validation references ``sar/references/groundtruth/marais2_10_{0,1}.npy`` are crops of the
marais2 series (rows 0:512, cols 0:256), so the marais2 training reference leaves out columns
0:384 (the validation columns plus a margin wider than any training patch or network receptive
field): those columns are dropped before anything, looks estimation included, is computed.

The series are already despeckled: their spatial ENL is in the hundreds, but the date-to-date
fluctuation is much larger than that. The looks passed to the test are therefore estimated from
the temporal fluctuation itself (:func:`sardespeckle.references.estimate_temporal_looks`), and
single pixels are tested (``window_size=1``: the images are spatially smooth, a window would add
few looks and blur the change mask).

Usage::

    python tools/build_training_references.py [--data DIR] [--out DIR] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SITES = {
    # site: (dates, png threshold, first column kept)
    "lely": (range(21, 31), 235.90, 0),
    "marais2": (range(20, 31), 168.49, 384),
}


def build_site(site: str, data: Path, out: Path, *, overwrite: bool) -> dict:
    from sardespeckle.references import (
        build_reference,
        estimate_stack_looks,
        estimate_temporal_looks,
        read_png_series,
        write_reference,
    )

    dates, threshold, first_col = SITES[site]
    paths = [data / "sar" / "timeseries" / f"{site}_{date}.png" for date in dates]
    amplitude, valid = read_png_series(paths, threshold=threshold)
    amplitude, valid = amplitude[:, :, first_col:], valid[:, :, first_col:]
    intensity = amplitude * amplitude
    del amplitude
    spatial_looks = estimate_stack_looks(intensity, valid=valid)
    looks = estimate_temporal_looks(intensity, valid=valid, window_size=1)
    result = build_reference(intensity, looks=looks, kind="intensity", window_size=1,
                             valid=valid)
    extra = {
        "site": site,
        "inputs": [str(path) for path in paths],
        "png_threshold": threshold,
        "input_columns": [first_col, int(first_col + intensity.shape[2])],
        "looks_source": "estimate_temporal_looks (IQR of the date-to-date log-ratio, window 1)",
        "spatial_enl_of_dates": round(spatial_looks, 2),
        "note": (
            "already despeckled 8-bit series: 'looks' is the equivalent looks of the "
            "date-to-date fluctuation, not of speckle; pixels saturated (255) or 0 in a date are "
            "masked for that date; pixels masked in every date are NaN (nodata). expected_enl "
            "is dates used x temporal looks (date-to-date consistency); the measured (spatial) "
            "ENL is far higher because every date is already despeckled"
        ),
    }
    if first_col:
        extra["excluded_columns"] = [0, first_col]
        extra["exclusion_reason"] = (
            "columns 0:384 hold the validation references sar/references/groundtruth/"
            "marais2_10_{0,1}.npy (rows 0:512, cols 0:256) plus a margin: not used for training"
        )
    output = out / f"{site}_reference.tif"
    return write_reference(result, output, output_kind="amplitude", overwrite=overwrite,
                           extra_report=extra)


# --------------------------------------------------------------------------------------------
# documentation: synthetic validation numbers and figures (--docs)
# --------------------------------------------------------------------------------------------


def synthetic_scene(rows: int = 256, cols: int = 256, dates: int = 10):
    """Piecewise-constant truth and per-date reflectivities with changes (as in the tests)."""
    import numpy as np

    truth = np.full((rows, cols), 4.0)
    truth[: rows // 2, cols // 2:] = 30.0
    truth[rows // 2:, : cols // 2] = 1.0
    truth[rows // 2:, cols // 2:] = 12.0
    truth[20:44, 20:44] = 200.0
    truth[150:230, 150:170] = 60.0
    changed = np.repeat(truth[None], dates, axis=0)
    changed[2:5, 140:220, 20:100] *= 10.0   # a field brightening for three dates
    changed[7:9, 40:100, 140:240] *= 0.1    # a flood: two dark dates
    changed[8:, 180:240, 160:240] *= 8.0    # a construction in the last two dates
    changed[:, 60:90, 30:60] *= np.geomspace(0.25, 4, dates)[:, None, None]  # a steady trend
    return truth, changed


def synthetic_validation(seeds=range(5)) -> dict:
    import numpy as np

    from sardespeckle.references import build_reference
    from sardespeckle.speckle import enl, simulate_speckle

    def scores(estimate, truth):
        amplitude, reference = np.sqrt(estimate), np.sqrt(truth)
        peak = np.percentile(reference, 99)
        return (float(np.mean(np.abs(np.log(estimate / truth)))),
                float(10 * np.log10(peak**2 / np.mean((amplitude - reference) ** 2))))

    truth, changed = synthetic_scene()
    rows = {}
    for name, scene in (("no change", np.repeat(truth[None], 10, axis=0)),
                        ("with changes", changed)):
        values = {"mean": [], "change-aware": []}
        rejected = []
        for seed in seeds:
            stack = scene * simulate_speckle(scene.shape, 1, seed=seed)
            for method in values:
                result = build_reference(stack, looks=1, method=method)
                values[method].append(scores(result.reflectivity, truth))
            rejected.append(result.report["rejected_fraction"])
        rows[name] = {
            method: {"mean_abs_log_ratio": float(np.mean([v[0] for v in vals])),
                     "psnr_db": float(np.mean([v[1] for v in vals])),
                     "psnr_std": float(np.std([v[1] for v in vals]))}
            for method, vals in values.items()
        }
        rows[name]["rejected_fraction"] = float(np.mean(rejected))
    flat = np.full((10, 512, 512), 5.0) * simulate_speckle((10, 512, 512), 1, seed=99)
    result = build_reference(flat, looks=1)
    rows["homogeneous"] = {
        "false_alarm_design": 1e-3,
        "false_alarm_measured": float(result.change_mask.mean()),
        "mean_dates_used": float(result.dates_used.mean()),
        "enl_measured": float(enl(result.reflectivity)),
        "enl_estimate_looks": result.report["measured_enl"],
    }
    return rows


def _grey(values, low, high):
    import numpy as np

    scaled = np.clip((values - low) / (high - low), 0, 1)
    grey = (255 * np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[~np.isfinite(values)] = (40, 60, 140)
    return rgb


def _reduce(values, factor):
    import numpy as np

    if factor == 1:
        return values
    rows, cols = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    blocks = values[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN (masked)
        return np.nanmean(blocks, axis=(1, 3))


def _column_figure(panels, path: Path, titles) -> None:
    """Wide panels (RGB uint8 arrays) one above the other, each under its title, as PNG."""
    import numpy as np
    from PIL import Image, ImageDraw

    band = 14
    width = max(p.shape[1] for p in panels)
    canvas = Image.new("RGB", (width, sum(band + p.shape[0] for p in panels)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    top = 0
    for title, panel in zip(titles, panels):
        draw.text((2, top + 1), title, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (0, top + band))
        top += band + panel.shape[0]
    canvas.save(path, optimize=True)


def _figure(rows_of_panels, path: Path, titles) -> None:
    """Panels (RGB uint8 arrays) in a grid, a title above each column, written as PNG."""
    import numpy as np
    from PIL import Image, ImageDraw

    gap, band = 6, 14
    heights = [max(p.shape[0] for p in row) for row in rows_of_panels]
    widths = [max(row[i].shape[1] for row in rows_of_panels)
              for i in range(len(rows_of_panels[0]))]
    canvas = Image.new("RGB", (sum(widths) + gap * (len(widths) - 1),
                               band + sum(heights) + gap * (len(heights) - 1)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    left = 0
    for title, width in zip(titles, widths):
        draw.text((left + 2, 1), title, fill=(0, 0, 0))
        left += width + gap
    top = band
    for row, height in zip(rows_of_panels, heights):
        left = 0
        for panel, width in zip(row, widths):
            canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (left, top))
            left += width + gap
        top += height + gap
    pixels = np.asarray(canvas)
    if (pixels == pixels[..., :1]).all():  # no masked (coloured) pixel: grey is smaller
        canvas = canvas.convert("L")
    canvas.save(path, optimize=True)


def _result_panels(intensity, valid, result_mean, result, factor, dates):
    """date 0 | plain mean | change-aware | dates used | dates rejected, as RGB panels."""
    import numpy as np

    first = np.where(valid[0], intensity[0], np.nan)
    db = [10 * np.log10(_reduce(x, factor)) for x in
          (first, result_mean.reflectivity, result.reflectivity)]
    low, high = np.nanpercentile(db[2], [1, 99])
    used = _reduce(result.dates_used.astype(float), factor)
    rejected = _reduce(result.change_mask.sum(axis=0).astype(float), factor)
    return [_grey(x, low, high) for x in db] + [
        _grey(used, 0, dates), _grey(rejected, 0, max(2.0, float(np.nanmax(rejected))))]


def make_docs(data: Path, figures: Path) -> dict:
    import numpy as np

    from sardespeckle.references import (
        build_reference,
        estimate_temporal_looks,
        load_stack,
        read_png_series,
    )
    from sardespeckle.speckle import simulate_speckle

    figures.mkdir(parents=True, exist_ok=True)
    numbers = {"synthetic": synthetic_validation()}
    titles = ["date 0", "plain mean", "change-aware", "dates used", "dates rejected"]

    truth, changed = synthetic_scene()
    stack = changed * simulate_speckle(changed.shape, 1, seed=0)
    valid = np.ones(stack.shape, bool)
    panels = _result_panels(stack, valid, build_reference(stack, looks=1, method="mean"),
                            build_reference(stack, looks=1), 1, 10)
    low, high = np.percentile(10 * np.log10(truth), [1, 99])
    _figure([[_grey(10 * np.log10(truth), low, high)] + panels],
            figures / "references_synthetic.png", ["truth"] + titles)

    s1 = {}
    for site in ("lely", "limagne", "marais1", "marais2", "ramb"):
        loaded = load_stack([data / "sar" / "s1_stacks" / f"{site}_{d}.npy" for d in range(1, 6)],
                            kind="amplitude")
        window_looks = estimate_temporal_looks(loaded.intensity, window_size=3)
        pixel_looks = estimate_temporal_looks(loaded.intensity)
        white = build_reference(loaded.intensity, looks=1)
        result = build_reference(loaded.intensity, looks=1, window_looks=window_looks)
        mean = build_reference(loaded.intensity, looks=1, method="mean")
        s1[site] = {
            "pixel_temporal_looks": round(pixel_looks, 3),
            "window3_looks": round(window_looks, 3),
            "rejected_white_assumption": result_fraction(white),
            "rejected_measured_window_looks": result_fraction(result),
            "mean_dates_used": round(float(result.dates_used.mean()), 3),
            "measured_enl": result.report["measured_enl"],
            "measured_enl_plain_mean": mean.report["measured_enl"],
        }
        _figure([_result_panels(loaded.intensity, loaded.valid, mean, result, 1, 5)],
                figures / f"references_s1_{site}.png", titles)
    numbers["s1_stacks"] = s1

    for site, factor in (("lely", 4), ("marais2", 8)):
        dates, threshold, first_col = SITES[site]
        amplitude, valid = read_png_series(
            [data / "sar" / "timeseries" / f"{site}_{d}.png" for d in dates], threshold=threshold)
        intensity = amplitude[:, :, first_col:] ** 2
        valid = valid[:, :, first_col:]
        looks = estimate_temporal_looks(intensity, valid=valid)
        mean = build_reference(intensity, looks=looks, method="mean", valid=valid)
        result = build_reference(intensity, looks=looks, window_size=1, valid=valid)
        numbers[f"timeseries_{site}"] = {
            "temporal_looks": round(looks, 3),
            "rejected_fraction": result.report["rejected_fraction"],
            "rejected_fraction_per_date": result.report["rejected_fraction_per_date"],
            "mean_dates_used": result.report["mean_dates_used"],
        }
        columns = f"columns {first_col}:{first_col + intensity.shape[2]}"
        _column_figure(
            _result_panels(intensity, valid, mean, result, factor, len(dates)),
            figures / f"references_timeseries_{site}.png",
            [f"{site}: {title} ({columns}, block means 1/{factor}"
             + (f", black 0 to white {len(dates)})" if title == "dates used" else
                ", black 0 to white max)" if title == "dates rejected" else ", dB)")
             for title in titles],
        )
    return numbers


def result_fraction(result) -> float:
    return round(result.report["rejected_fraction"], 5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="shared data folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "references",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--site", choices=sorted(SITES), action="append", default=None,
                        help="site to build (repeatable; default: all)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--docs", action="store_true",
                        help="instead: print the validation numbers of docs/references.md and "
                             "write its figures docs/figures/references_*.png")
    args = parser.parse_args(argv)
    if args.docs:
        import json

        numbers = make_docs(args.data, ROOT / "docs" / "figures")
        print(json.dumps(numbers, indent=2))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for site in args.site or list(SITES):
        start = time.time()
        report = build_site(site, args.data, args.out, overwrite=args.overwrite)
        for path in report["outputs"].values():
            Path(path).chmod(0o644)  # temporary files are created 0600; let readers share them
        sys.stderr.write(
            f"{site}: {report['rows']}×{report['cols']}, {report['dates']} dates, looks "
            f"{report['looks']:.2f}, dates used {report['mean_dates_used']:.2f}, rejected "
            f"{100 * report['rejected_fraction']:.2f} %, nodata {report['pixels_without_data']} px,"
            f" measured ENL {report['measured_enl']} -> {report['outputs']['reference']} "
            f"({time.time() - start:.0f} s)\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
