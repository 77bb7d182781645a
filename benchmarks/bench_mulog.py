"""MuLoG on real and simulated SAR data: PSNR, timing, tiling halo, PolSAR/InSAR figures.

Parts (each prints its numbers and writes ``<out>/<part>.json``; figures go to ``docs/figures``)::

    python benchmarks/bench_mulog.py single   # marais2 references, simulated 1-look speckle
    python benchmarks/bench_mulog.py timing   # one 1024² image
    python benchmarks/bench_mulog.py halo     # tiled vs whole image, halos 16/32/64, 512²
    python benchmarks/bench_mulog.py polsar   # San Francisco AIRSAR, Sentinel-1 dual-pol, InSAR
    python benchmarks/bench_mulog.py report   # the tables of every part already run

``--denoisers bm3d,dncnn-natural,dncnn-sar`` runs ``single``, ``timing`` and ``halo`` with each
of these Gaussian denoisers (default ``bm3d``); ``--precision bf16`` runs the DnCNNs in bf16.

``--mulog-python PATH`` names the Python of a separate environment where the ``mulog`` PyPI
package (Deledalle et al., CeCILL) is installed; ``single`` and ``timing`` then also run its
MuLoG+BM3D on the same inputs, in a child process, as an independent comparison. That package is
never imported by sardespeckle (it pins numpy < 2, so it cannot share the project's
environment): ``python -m venv /tmp/mulog-venv && /tmp/mulog-venv/bin/pip install mulog``.

Data come from ``../shared/data`` (see its README); every part skips what is missing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
FIGURES = ROOT / "docs" / "figures"
SEEDS = (0, 1, 2)

# The worker that runs the mulog package lives in this file but must not import sardespeckle or
# _common: it runs in the other environment.
THEIR_WORKER = "--their-worker"


def their_worker(inputs: list[str], outputs: list[str], looks: float) -> None:
    """Run the mulog package's MuLoG+BM3D on intensity .npy files (other environment)."""
    import numpy as np
    from mulog.gaussian_denoisers import run_autoscaled_bm3d
    from mulog.mulog_algorithm import run_mulog

    times = []
    for source, target in zip(inputs, outputs):
        intensity = np.load(source).astype(np.float64)
        started = time.perf_counter()
        out = run_mulog(intensity, looks, run_autoscaled_bm3d)
        times.append(time.perf_counter() - started)
        np.save(target, np.real(np.asarray(out)).astype(np.float64).reshape(intensity.shape))
    print(json.dumps({"times_s": times}), flush=True)


if len(sys.argv) > 1 and sys.argv[1] == THEIR_WORKER:
    if __name__ == "__main__":
        count = (len(sys.argv) - 3) // 2
        their_worker(sys.argv[3:3 + count], sys.argv[3 + count:], float(sys.argv[2]))
        sys.exit(0)

import numpy as np  # noqa: E402

sys.path.insert(0, str(HERE))
import _common  # noqa: E402

from sardespeckle.covariance import phase_rgb, preview_rgb  # noqa: E402
from sardespeckle.mulog import bm3d_denoiser, mulog, mulog_covariance  # noqa: E402
from sardespeckle.mulog.method import denoiser_from_name  # noqa: E402
from sardespeckle.speckle import add_speckle  # noqa: E402


# --- helpers --------------------------------------------------------------------------------


def psnr(reference: np.ndarray, estimate: np.ndarray, peak: float) -> float:
    """``10 log10(P² / MSE)`` (amplitudes)."""
    return float(10 * np.log10(peak**2 / np.mean((estimate - reference) ** 2)))


def save_json(out: Path, name: str, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))


def run_theirs(mulog_python: str, intensities: list[np.ndarray], looks: float, work: Path,
               keys: list[str]) -> tuple[list[np.ndarray], list[float]]:
    """The mulog package's results, cached in ``work`` under ``keys`` (inputs are seeded)."""
    work.mkdir(parents=True, exist_ok=True)
    inputs, outputs, todo = [], [], []
    for intensity, key in zip(intensities, keys):
        if (work / f"theirs_{key}.json").is_file():
            continue
        inputs.append(str(work / f"in_{key}.npy"))
        outputs.append(str(work / f"theirs_{key}.npy"))
        todo.append(key)
        np.save(inputs[-1], intensity.astype(np.float64))
    if todo:
        result = subprocess.run(
            [mulog_python, __file__, THEIR_WORKER, str(looks), *inputs, *outputs],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"mulog package run failed:\n{result.stderr[-3000:]}")
        times = json.loads(result.stdout.strip().splitlines()[-1])["times_s"]
        for key, seconds in zip(todo, times):
            (work / f"theirs_{key}.json").write_text(json.dumps({"seconds": seconds}))
    return ([np.load(work / f"theirs_{key}.npy") for key in keys],
            [json.loads((work / f"theirs_{key}.json").read_text())["seconds"] for key in keys])


def to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low)
    return (255 * np.clip(scaled, 0, 1)).astype(np.uint8)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, optimize=True)
    size = path.stat().st_size
    print(f"wrote {path.relative_to(ROOT)} ({size / 1024:.0f} KiB)")
    if size > 1024 * 1024:
        raise RuntimeError(f"{path} is larger than 1 MB")


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    parts = []
    for index, panel in enumerate(panels):
        if panel.ndim == 2:
            panel = np.repeat(panel[..., None], 3, axis=2)
        padded = np.full((height, panel.shape[1], 3), 255, np.uint8)
        padded[: panel.shape[0]] = panel
        parts.append(padded)
        if index + 1 < len(panels):
            parts.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def load_covariance(name: str) -> np.ndarray:
    with gzip.open(DATA / "sar" / "polsar" / f"{name}.pickle.gz", "rb") as handle:
        return np.asarray(pickle.load(handle))


# --- parts ----------------------------------------------------------------------------------


def part_single(args) -> dict:
    """PSNR of MuLoG+BM3D on the marais2 references with simulated single-look speckle."""
    rows = []
    figure = None
    denoisers = {name: denoiser_from_name(name, precision=args.precision) for name in args.denoisers}
    for name in ("marais2_10_0", "marais2_10_1"):
        path = DATA / "sar" / "references" / "groundtruth" / f"{name}.npy"
        if not path.is_file():
            print(f"skip {name}: {path} not found")
            continue
        amplitude = np.load(path).astype(np.float64)
        peak = float(np.percentile(amplitude, 99))
        noisy = [add_speckle(amplitude**2, 1, seed=seed) for seed in SEEDS]
        results = {}
        for label, denoiser in denoisers.items():
            outs, seconds = [], []
            for intensity in noisy:
                started = time.perf_counter()
                outs.append(mulog(intensity, looks=1, denoiser=denoiser))
                seconds.append(time.perf_counter() - started)
            results[label] = (outs, seconds)
        ours, ours_t = results[args.denoisers[0]]
        theirs, theirs_t = (None, None)
        if args.mulog_python:
            theirs, theirs_t = run_theirs(args.mulog_python, noisy, 1.0, args.out / "work",
                                          [f"{name}_seed{seed}" for seed in SEEDS])
        for index, seed in enumerate(SEEDS):
            row = {
                "image": name, "seed": seed,
                "noisy_db": psnr(amplitude, np.sqrt(noisy[index]), peak),
                "ours_db": psnr(amplitude, np.sqrt(ours[index]), peak),
                "ours_s": ours_t[index],
                "ours_mean_ratio": float(ours[index].mean() / (amplitude**2).mean()),
                "ours_denoiser": args.denoisers[0],
            }
            for label, (outs, seconds) in results.items():
                row[f"ours_{label}_db"] = psnr(amplitude, np.sqrt(outs[index]), peak)
                row[f"ours_{label}_s"] = seconds[index]
            if theirs is not None:
                row.update({
                    "theirs_db": psnr(amplitude, np.sqrt(theirs[index]), peak),
                    "theirs_s": theirs_t[index],
                    "theirs_mean_ratio": float(theirs[index].mean() / (amplitude**2).mean()),
                })
                if "bm3d" in results:  # same denoiser family: how far apart the two MuLoGs are
                    row["agreement_bm3d_db"] = psnr(np.sqrt(theirs[index]),
                                                    np.sqrt(results["bm3d"][0][index]), peak)
            rows.append(row)
            print(row, flush=True)
        if figure is None:
            panels = [to_uint8(a, 0, peak) for a in
                      (amplitude, np.sqrt(noisy[0]), np.sqrt(ours[0]))
                      + ((np.sqrt(theirs[0]),) if theirs is not None else ())]
            figure = side_by_side(panels)
            if args.denoisers == ["bm3d"]:
                save_png(FIGURES / "mulog_single_marais2.png", figure)
    record = {"machine": _common.machine_line(), "denoisers": args.denoisers,
              "precision": args.precision, "rows": rows}
    save_json(args.out, "single", record)
    return record


def part_timing(args) -> dict:
    """Wall time of one MuLoG+BM3D run on a 1024² simulated single-look image."""
    image = _common.simulated_intensity((args.size, args.size), seed=0)
    record = {"machine": _common.machine_line(), "size": args.size, "precision": args.precision}
    for label in args.denoisers:
        denoiser = denoiser_from_name(label, precision=args.precision)
        started = time.perf_counter()
        mulog(image, looks=1, denoiser=denoiser)
        record[f"ours_{label}_s"] = time.perf_counter() - started
        print(record, flush=True)
    record["ours_s"] = record[f"ours_{args.denoisers[0]}_s"]
    if args.mulog_python:
        _, times = run_theirs(args.mulog_python, [image], 1.0, args.out / "work",
                              [f"timing_{args.size}"])
        record["theirs_s"] = times[0]
        print(record, flush=True)
    save_json(args.out, "timing", record)
    return record


def halo_scene(size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A realistic speckled scene (a despeckled Sentinel-1 crop times 1-look speckle), its clean
    intensity, and where it comes from."""
    path = DATA / "sar" / "timeseries" / "lely_21.png"
    if path.is_file():
        from PIL import Image

        png = np.asarray(Image.open(path), dtype=np.float64)
        crop = png[200:200 + size, 1000:1000 + size]
        clean = (np.maximum(crop, 1.0) / 255.0 * 235.90) ** 2
        return add_speckle(clean, 1, seed=0).astype(np.float32), clean, "lely_21.png crop"
    clean = np.concatenate([_common.reflectivity(r, 0, 1, size, (size, size)) for r in range(size)])
    return _common.simulated_intensity((size, size), seed=0), clean, "synthetic scene"


def strips(image: np.ndarray, method, *, halo: int, rows: int) -> np.ndarray:
    """Tiles that span the whole width: ``rows``-row cores with ``halo`` rows above and below.

    What the engine's tiling does with tiles as wide as the image (the same crop rule).
    """
    out = np.empty_like(image)
    height = image.shape[0]
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        top, bottom = max(start - halo, 0), min(stop + halo, height)
        result = method(np.ascontiguousarray(image[top:bottom]))
        out[start:stop] = result[start - top: stop - top]
    return out


def part_halo(args) -> dict:
    """Relative difference between tiled and whole-image MuLoG+BM3D for several halos."""
    from sardespeckle.mulog import make_mulog_method
    from sardespeckle.tiling import process_array

    image, clean, source = halo_scene(512)
    peak = float(np.percentile(np.sqrt(clean), 99))
    # Pixels within 8 px of a seam between core tiles (rows and, for squares, columns).
    cuts = [c for c in range(args.tile, 512, args.tile)]
    near = np.zeros(image.shape, bool)
    for cut in cuts:
        near[max(cut - 8, 0):cut + 8] = True
        if args.layout == "squares":
            near[:, max(cut - 8, 0):cut + 8] = True
    method = make_mulog_method(looks=1, denoiser=args.denoisers[0], precision=args.precision)
    started = time.perf_counter()
    whole = method(image)
    whole_s = time.perf_counter() - started
    # The floor: BM3D's block matching is discontinuous, so MuLoG+BM3D is not a continuous
    # function of its input. The whole image run again on an input perturbed by 1e-7 (relative)
    # shows how far two runs differ for reasons that no halo can remove.
    rng = np.random.default_rng(1)
    perturbed = (image * (1 + 1e-7 * rng.standard_normal(image.shape))).astype(np.float32)
    runs = [("floor: whole, input × (1 + 1e-7 noise)", lambda: method(perturbed))]
    for halo in args.halos:
        if args.layout == "squares":
            runs.append((halo, lambda h=halo: process_array(image, method, halo=h, tile=args.tile)))
        else:
            runs.append((halo, lambda h=halo: strips(image, method, halo=h, rows=args.tile)))
    rows = []
    for halo, run in runs:
        started = time.perf_counter()
        tiled = run()
        elapsed = time.perf_counter() - started
        relative = np.abs(tiled.astype(np.float64) / whole - 1.0)
        row = {
            "halo": halo, "tile": args.tile, "layout": args.layout, "seconds": elapsed,
            "median": float(np.median(relative)),
            "p99": float(np.percentile(relative, 99)),
            "p999": float(np.percentile(relative, 99.9)),
            "max": float(relative.max()),
            "share_over_1pct": float(np.mean(relative > 0.01)),
            "p99_near_seams": float(np.percentile(relative[near], 99)),
            "p99_elsewhere": float(np.percentile(relative[~near], 99)),
            "psnr_db": psnr(np.sqrt(clean), np.sqrt(tiled), peak),
        }
        rows.append(row)
        print(row, flush=True)
    record = {"machine": _common.machine_line(), "source": source, "whole_s": whole_s,
              "layout": args.layout, "denoiser": args.denoisers[0], "whole_psnr_db": psnr(np.sqrt(clean), np.sqrt(whole), peak),
              "noisy_psnr_db": psnr(np.sqrt(clean), np.sqrt(image), peak), "rows": rows}
    suffix = "" if args.denoisers[0] == "bm3d" else f"_{args.denoisers[0]}"
    save_json(args.out, f"halo_{args.layout}{suffix}", record)
    return record


def boxcar_coherence(covariance: np.ndarray, size: int = 5) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    def mean(values):
        return uniform_filter(values, size=size, mode="reflect")

    c12 = mean(covariance[..., 0, 1].real) + 1j * mean(covariance[..., 0, 1].imag)
    return np.abs(c12) / np.sqrt(mean(covariance[..., 0, 0].real) * mean(covariance[..., 1, 1].real))


def part_polsar(args) -> dict:
    """Covariance-field MuLoG on PolSAR, dual-pol and InSAR data, with figures."""
    denoiser = bm3d_denoiser()
    record: dict = {"machine": _common.machine_line()}

    if (DATA / "sar" / "polsar" / "sanfrancisco_airsar.pickle.gz").is_file():
        field = load_covariance("sanfrancisco_airsar")
        started = time.perf_counter()
        out = mulog_covariance(field, looks=2.7, denoiser=denoiser)
        record["sanfrancisco_s"] = time.perf_counter() - started
        before, scale = preview_rgb(field)  # Pauli RGB
        after, _ = preview_rgb(out, scale)
        save_png(FIGURES / "mulog_polsar_sanfrancisco.png", side_by_side([before, after]))
        record["sanfrancisco_min_eig"] = float(np.linalg.eigvalsh(out).min())
        print(record, flush=True)

    if (DATA / "sar" / "polsar" / "labrador_sentinel1.pickle.gz").is_file():
        field = load_covariance("labrador_sentinel1")
        started = time.perf_counter()
        out = mulog_covariance(field, looks=1.2, denoiser=denoiser)
        record["labrador_s"] = time.perf_counter() - started
        before, limits = preview_rgb(field)  # VV, VH, VV/VH in dB
        after, _ = preview_rgb(out, limits)
        save_png(FIGURES / "mulog_dualpol_labrador.png", side_by_side([before, after]))
        record["labrador_min_eig"] = float(np.linalg.eigvalsh(out).min())
        print(record, flush=True)

    mat = DATA / "sar" / "insar_pair" / "insar_test_data.mat"
    if mat.is_file():
        from scipy.io import loadmat

        pair = loadmat(mat)
        z1 = pair["ampl_master"].astype(np.float64)
        z2 = pair["ampl_slave"].astype(np.float64) * np.exp(-1j * pair["dphase"].astype(np.float64))
        # With z2 = |z2| e^{−iφ}, the interferogram z1·z2* = |z1||z2| e^{iφ}: its phase is dphase.
        field = np.empty(z1.shape + (2, 2), dtype=np.complex128)
        field[..., 0, 0] = np.abs(z1) ** 2
        field[..., 1, 1] = np.abs(z2) ** 2
        field[..., 0, 1] = z1 * np.conj(z2)
        field[..., 1, 0] = np.conj(field[..., 0, 1])
        record["insar_phase_convention_error"] = float(np.max(np.abs(
            np.angle(field[..., 0, 1] * np.exp(-1j * pair["dphase"]))[np.abs(z1) > 0])))
        started = time.perf_counter()
        out = mulog_covariance(field, looks=1, denoiser=denoiser)
        record["insar_s"] = time.perf_counter() - started
        coherence_before = boxcar_coherence(field)
        coherence_after = np.abs(out[..., 0, 1]) / np.sqrt(out[..., 0, 0].real * out[..., 1, 1].real)
        phase_before = np.angle(field[..., 0, 1])
        phase_after = np.angle(out[..., 0, 1])
        top = side_by_side([phase_rgb(phase_before), phase_rgb(phase_after)])
        bottom = side_by_side([to_uint8(coherence_before, 0, 1), to_uint8(coherence_after, 0, 1)])
        grid = np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom], axis=0)
        save_png(FIGURES / "mulog_insar.png", grid)
        record["insar_mean_coherence_before_boxcar5"] = float(coherence_before.mean())
        record["insar_mean_coherence_after"] = float(coherence_after.mean())
        # Phase noise: circular std of the phase difference between neighbours.
        for label, phase in (("before", phase_before), ("after", phase_after)):
            diff = np.angle(np.exp(1j * (phase[:, 1:] - phase[:, :-1])))
            record[f"insar_neighbour_phase_std_{label}"] = float(np.sqrt(np.mean(diff**2)))
        print(record, flush=True)

    save_json(args.out, "polsar", record)
    return record


def part_report(args) -> None:
    single = args.out / "single.json"
    if single.is_file():
        data = json.loads(single.read_text())
        rows = data["rows"]
        headers = ["image", "seed", "noisy dB", "ours dB", "ours s"]
        has_theirs = rows and "theirs_db" in rows[0]
        # Files before 2026-11-26 compared the package with the *first* denoiser ("agreement_db");
        # only a BM3D-vs-BM3D figure says how far apart the two implementations are.
        agreement = next((key for key in ("agreement_bm3d_db", "agreement_db")
                          if rows and key in rows[0]), None)
        if agreement == "agreement_db" and data.get("denoisers", ["bm3d"])[0] != "bm3d":
            agreement = None
        if has_theirs:
            headers += ["mulog pkg dB", "mulog pkg s"] + (["BM3D ours vs pkg dB"] if agreement else [])
        table_rows = []
        for row in rows:
            cells = [row["image"], row["seed"], row["noisy_db"], row["ours_db"], row["ours_s"]]
            if has_theirs:
                cells += [row["theirs_db"], row["theirs_s"]] + ([row[agreement]] if agreement else [])
            table_rows.append(cells)
        print(data["machine"])
        print(_common.table(headers, table_rows))
        for label in data.get("denoisers", []):
            values = np.array([row[f"ours_{label}_db"] for row in rows])
            seconds = np.array([row[f"ours_{label}_s"] for row in rows])
            print(f"MuLoG+{label} ({data.get('precision', 'fp32')}): {values.mean():.2f} ± "
                  f"{values.std():.2f} dB, {seconds.mean():.1f} s per image")
        for key in ("noisy_db", "ours_db") + (("theirs_db",) if has_theirs else ()) + (
                (agreement,) if agreement else ()):
            values = np.array([row[key] for row in rows])
            print(f"{key}: {values.mean():.2f} ± {values.std():.2f}")
    halos = sorted(p.stem for p in args.out.glob("halo_*.json"))
    for name in ("timing", *halos, "polsar"):
        path = args.out / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            if name.startswith("halo"):
                print(f"halo study ({data['layout']}, {data.get('denoiser', 'bm3d')}) on {data['source']}, "
                      f"whole image {data['whole_s']:.0f} s, PSNR noisy "
                      f"{data.get('noisy_psnr_db', float('nan')):.2f} dB, whole "
                      f"{data.get('whole_psnr_db', float('nan')):.2f} dB")
                print(_common.table(
                    ["halo", "s", "median", "p99", "p99.9", "max", "share > 1 %",
                     "p99 near seams", "p99 elsewhere", "PSNR dB"],
                    [[r["halo"], r["seconds"], f"{r['median']:.2%}", f"{r['p99']:.2%}",
                      f"{r['p999']:.2%}", f"{r['max']:.1%}", f"{r['share_over_1pct']:.1%}",
                      f"{r.get('p99_near_seams', float('nan')):.2%}",
                      f"{r.get('p99_elsewhere', float('nan')):.2%}",
                      f"{r.get('psnr_db', float('nan')):.3f}"]
                     for r in data["rows"]]))
            else:
                print(name, json.dumps(data, indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["single", "timing", "halo", "polsar", "report"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_mulog"),
                        help="folder for the JSON results and scratch files")
    parser.add_argument("--mulog-python", default=None,
                        help="python of an environment with the mulog PyPI package")
    parser.add_argument("--size", type=int, default=1024, help="side of the timing image")
    parser.add_argument("--denoisers", type=lambda text: text.split(","), default=["bm3d"],
                        help="comma-separated Gaussian denoisers for single/timing/halo "
                             "(bm3d, dncnn-natural, dncnn-sar)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="precision of the DnCNN denoisers")
    parser.add_argument("--tile", type=int, default=256, help="core tile of the halo study")
    parser.add_argument("--halos", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--layout", choices=["squares", "strips"], default="squares",
                        help="halo study: square tiles of the engine, or full-width strips")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    {"single": part_single, "timing": part_timing, "halo": part_halo, "polsar": part_polsar,
     "report": part_report}[args.part](args)


if __name__ == "__main__":
    main()
