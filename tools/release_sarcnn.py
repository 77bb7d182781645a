"""Export a SAR-CNN training run as package weights, measure it, and write its model card.

    python tools/release_sarcnn.py RUN_DIR NAME [--shared ../shared]

1. writes src/sardespeckle/models/weights/NAME.pt from the run's latest checkpoint (a finished
   run brought back without it: from its final weights, ``export_weights``);
2. measures PSNR (amplitude, 99th-percentile peak) on the validation references
   (shared/data/sar/references/groundtruth, simulated speckle of the run's looks, seeds 0, 1,
   2), next to the best classical filter (Kuan 7×7) and the noisy input;
3. writes docs/model_cards/NAME.md (data, preprocessing, steps, wall time, hardware, PSNR,
   validation curve) and prints the registry entry to paste into models/weights.py (complete
   its description).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import numpy as np

from sardespeckle.api import despeckle
from sardespeckle.models.weights import REGISTRY, WEIGHTS_DIR, sha256_file
from sardespeckle.speckle import add_speckle
from sardespeckle.training import TrainConfig, amplitude_psnr, export_weights

ROOT = Path(__file__).resolve().parents[1]
#: Released weights whose run record is not ``training_runs/NAME``: the run folder they were
#: exported from.
RELEASED_FROM = {"sarcnn-s1-l1-v2": "sarcnn-s1-l1-gain", "sarcnn-s1-l1-v3": "sarcnn-s1-l1-cos2"}


def wall_time_and_curve(log_path: Path) -> tuple[float, int, list[tuple[int, float]]]:
    """Total seconds over every call of the run (the clock restarts at each resume)."""
    total, last_seconds, last_step, curve = 0.0, 0.0, 0, []
    with open(log_path) as handle:
        for row in csv.DictReader(handle):
            seconds, step = float(row["seconds"]), int(row["step"])
            if seconds < last_seconds:
                total += last_seconds
            last_seconds, last_step = seconds, step
            if row["validation_psnr"]:
                curve.append((step, float(row["validation_psnr"])))
    return total + last_seconds, last_step, curve


def phases(run_dir: Path) -> list[tuple[Path, TrainConfig, float, int, list[tuple[int, float]]]]:
    """The run and, following ``init_from`` back to other run folders, the runs it started from
    (oldest first): ``(folder, config, seconds, last step, validation curve)`` each."""
    chain = []
    folder: Path | None = run_dir
    while folder is not None:
        config = TrainConfig.load(folder / "config.json")
        seconds, step, curve = wall_time_and_curve(folder / "log.csv")
        chain.append((folder, config, seconds, step, curve))
        if config.init_from in REGISTRY:
            # Released weights: their committed run record (phase folders oldest first), or the
            # last run folder they were exported from, followed further back.
            record = ROOT / "training_runs" / RELEASED_FROM.get(str(config.init_from),
                                                                str(config.init_from))
            folders = sorted(record.glob("phase*"))
            if not folders:
                folder = record
                continue
            for earlier in reversed(folders):
                earlier_config = TrainConfig.load(earlier / "config.json")
                chain.append((earlier, earlier_config, *wall_time_and_curve(earlier / "log.csv")))
            break
        source = Path(config.init_from) if config.init_from else None
        if source is not None and source.is_file():
            source = source.parent
        folder = source if source is not None and (source / "log.csv").exists() else None
    return chain[::-1]


def looks_words(looks: float) -> str:
    """``"single-look"`` or ``"4.4-look"``."""
    return "single-look" if looks == 1 else f"{looks:g}-look"


def describe_schedule(config: TrainConfig) -> str:
    """The learning-rate schedule of a phase in words."""
    start = f"{config.decay_at * config.steps:.0f}"
    warmup = (f", warmed up linearly over {config.warmup_steps} steps"
              if config.warmup_steps else "")
    if config.schedule == "cosine":
        return (f"Adam lr {config.learning_rate:g}{warmup}, down a half cosine from step {start} "
                f"to {config.learning_rate * config.decay:g}")
    return f"Adam lr {config.learning_rate:g}{warmup}, × {config.decay:g} after {start} steps"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--hardware", default="2-core AMD EPYC, no GPU, shared with other work",
                        help="where the run trained, for the card's wall-time line")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing weights file of that name")
    args = parser.parse_args()

    config = TrainConfig.load(args.run_dir / "config.json")
    target = WEIGHTS_DIR / f"{args.name}.pt"
    digest = export_weights(args.run_dir, target, name=args.name, overwrite=args.overwrite)
    chain = phases(args.run_dir)
    seconds = sum(phase[2] for phase in chain)
    step, patches, curve, schedule = 0, 0, [], []
    for folder, phase_config, _, phase_steps, phase_curve in chain:
        patches += phase_steps * phase_config.batch_size
        curve += [(step + s, p) for s, p in phase_curve]
        schedule.append(f"{phase_steps} steps of {phase_config.batch_size} × {phase_config.patch_size}² "
                        f"({phase_config.precision}"
                        + (f", gains log-uniform in {list(phase_config.gain_range)}" if phase_config.gain_range else "")
                        + (f", correlated speckle on {phase_config.speckle_band_share:.0%} (band "
                           f"{phase_config.speckle_band[0]:g}–{phase_config.speckle_band[1]:g})"
                           if phase_config.speckle_band else "")
                        + f") from {'random' if step == 0 else 'the previous phase'}: "
                        f"{describe_schedule(phase_config)} (`{folder.name}`)")
        step += phase_steps

    references = sorted((args.shared / "data/sar/references/groundtruth").glob("*.npy"))
    table = {"noisy": [], "kuan 7×7": [], args.name: []}
    looks = config.looks
    for path in references:
        amplitude = np.load(path)
        for seed in range(3):
            noisy = np.sqrt(add_speckle(amplitude**2, looks, seed=seed)).astype(np.float32)
            table["noisy"].append(amplitude_psnr(amplitude, noisy))
            kuan = despeckle(noisy, method="kuan", looks=looks, kind="amplitude",
                             params={"window_size": 7})
            table["kuan 7×7"].append(amplitude_psnr(amplitude, kuan))
            ours = despeckle(noisy, method="sarcnn", looks=looks, kind="amplitude",
                             params={"weights": str(target), "precision": "fp32",
                                     "decorrelate": "none"})
            table[args.name].append(amplitude_psnr(amplitude, ours))
    psnr = float(np.mean(table[args.name]))

    lines = [
        f"# Model card: `{args.name}`",
        "",
        "SAR-CNN (Dalsasso, Yang, Denis, Tupin, Yang, Remote Sensing 2020) trained by this "
        f"project for **{looks_words(looks)} Sentinel-1** intensity/amplitude.",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| file | `src/sardespeckle/models/weights/{target.name}` |",
        f"| sha256 | `{digest}` |",
        f"| architecture | DnCNN depth {config.depth}, {config.features} features, batch norm, "
        "residual on normalised log-amplitude |",
        f"| looks | {config.looks:g} |",
        "| normalisation | x = (½ log I − m)/(M − m), M = 10.089038980848645, m = −1.429329123112601 |",
        f"| training data | {config.notes} |",
        f"| patches | {config.batch_size} × {config.patch_size}² per step in the last phase, 8 flips/rotations, "
        f"fresh Gamma({config.looks:g}) speckle per draw"
        + ("" if config.speckle_band is None else
           f" ({config.speckle_band_share:.0%} of the patches: spatially correlated speckle of "
           f"{config.looks:g} looks, band fractions {config.speckle_band[0]:g}–"
           f"{config.speckle_band[1]:g}, Hamming 0.75)") + " |",
        f"| loss / optimiser | {'ℓ1' if config.loss == 'l1' else 'ℓ2'} on the debiased log-amplitude; " + "; then ".join(schedule) + " |",
        f"| steps done | **{step}** in all |",
        f"| wall time | {seconds / 3600:.2f} h on {platform.processor() or platform.machine()} "
        f"({args.hardware}), {config.precision} |",
        f"| validation PSNR | **{psnr:.2f} dB** (mean over {len(references)} references × 3 draws) |",
        "",
        f"## Validation (simulated {looks_words(looks)} speckle, PSNR on amplitude, peak = 99th "
        "percentile)",
        "",
        "Validation references: `shared/data/sar/references/groundtruth/marais2_10_{0,1}.npy`, "
        "kept out of training (they are crops of the marais2 series at columns 0:256; training "
        "used columns 384 onwards). They were not used to choose the checkpoint: the card "
        "describes the latest checkpoint.",
        "",
        "| method | mean ± std (dB) |",
        "| --- | --- |",
    ]
    for method, values in table.items():
        lines.append(f"| {method} | {np.mean(values):.2f} ± {np.std(values):.2f} |")
    lines += ["", "Validation PSNR during training (fixed draws, same references):", "",
              "| step | PSNR (dB) |", "| --- | --- |"]
    lines += [f"| {s} | {p:.2f} |" for s, p in curve]
    lines += ["", "## Use", "", "```bash",
              f"sardespeckle run s1_slc_amplitude.tif -o out.tif --method sarcnn --weights {args.name}",
              "```", "",
              "Real SLC speckle is spatially correlated; see `docs/sarcnn.md` for `--decorrelate`.",
              "", "## Limits", "",
              "* Trained on two agricultural/coastal Sentinel-1 sites only (Lely, Marais 2);",
              "  references are temporal averages of an unknown despeckler's 8-bit outputs "
              "(quantisation, clipping at the 8-bit ceiling, residual smoothing).",
              f"* {looks_words(looks).capitalize()} speckle only (`run` notes a mismatch of 1.5× "
              "or more); other looks need another training.",
              f"* Short training: {step} steps, {patches / 1e6:.1f} M patches in all "
              "(the DnCNN lineage trains for ~50 epochs of far more patches)."]
    card = ROOT / "docs/model_cards" / f"{args.name}.md"
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text("\n".join(lines) + "\n")
    print(json.dumps({k: [float(np.mean(v)), float(np.std(v))] for k, v in table.items()}))
    extra = "" if config.looks == 1 else f", looks={config.looks:g}"
    if config.speckle_band is not None:
        extra += (f", speckle_band=({config.speckle_band[0]:g}, {config.speckle_band[1]:g}), "
                  f"speckle_band_share={config.speckle_band_share:g}")
    print(f"""
    "{args.name}": _sarcnn_s1(
        "{args.name}", "{digest}", {psnr:.2f},
        "{step} steps"{extra}),""")


if __name__ == "__main__":
    main()
