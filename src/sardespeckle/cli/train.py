"""``sardespeckle train``: train SAR-CNN or a Gaussian DnCNN for MuLoG, in resumable chunks."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from ._args import positive_int
from ._progress import Progress


def add_train_parser(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train SAR-CNN or a Gaussian DnCNN for MuLoG (resumable)",
        description=(
            "Train SAR-CNN on speckle-free reference images with simulated speckle drawn on the "
            "fly. Give a JSON config (see docs/training.md) or the references as options; with "
            "a config, or to resume with --run-dir alone, the configuration is the file's and "
            "only --threads, --max-steps and -q apply. The "
            "run folder keeps config.json, log.csv and checkpoint.pt: rerunning the same command "
            "resumes exactly where it stopped. The finished weights are RUN_DIR/NAME.pt, usable "
            "with 'sardespeckle run --method sarcnn --weights RUN_DIR/NAME.pt'. A config with "
            "\"task\": \"gaussian\" trains a Gaussian DnCNN for MuLoG instead (grey images or "
            "SAR log-images; docs/training.md, 'Gaussian DnCNNs for MuLoG')."
        ),
    )
    train.add_argument("config", nargs="?", default=None, metavar="CONFIG",
                       help="JSON training configuration (task sarcnn or gaussian)")
    train.add_argument("--run-dir", required=True, metavar="DIR",
                       help="run folder (created; resumed when it holds a checkpoint)")
    train.add_argument("--references", nargs="+", action="extend", default=None, metavar="REF",
                       help="speckle-free reference files (.tif/.npy), instead of a CONFIG "
                            "(repeatable: the files add up)")
    train.add_argument("--validation", nargs="+", action="extend", default=None, metavar="REF",
                       help="held-out reference files for validation PSNR (repeatable)")
    train.add_argument("--kind", default=None, choices=("intensity", "amplitude", "db"),
                       help="what the reference files hold (default: detected)")
    train.add_argument("--looks", type=float, default=None,
                       help="looks of the simulated speckle (default: 1)")
    train.add_argument("--steps", type=int, default=None,
                       help="training steps (default: 20000)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="patches per step (default: 64)")
    train.add_argument("--patch-size", type=int, default=None,
                       help="side of the square patches in pixels (default: 40)")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="Adam's peak learning rate, then lowered by --schedule (default: "
                            "0.001)")
    train.add_argument("--schedule", choices=("step", "cosine"), default=None,
                       help="step (default): x 0.1 from 60 %% of the steps; cosine: down a half "
                            "cosine from 60 %% of the steps to 0.1 x at the end")
    train.add_argument("--warmup-steps", type=int, default=None, metavar="N",
                       help="ramp the learning rate up linearly over the first N steps "
                            "(default: 0; use a few hundred with --init-from)")
    train.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                       help="auto (default): bf16 autocast where the device computes bf16 "
                            "natively (CPU with AVX512-BF16 or AMX, CUDA), else fp32")
    train.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                       help="auto (default): CUDA when torch sees a GPU, else the CPU")
    train.add_argument("--gain-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                       help="multiply each clean patch by a gain log-uniform in [LOW, HIGH] "
                            "(e.g. 1e-4 100: a network for any level, σ0 or digital numbers; "
                            "default: none, the references' own levels)")
    train.add_argument("--seed", type=int, default=None,
                       help="seed of the patches and speckle draws (default: 0)")
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads (overrides the config; a run may resume with another "
                            "value, which changes the rounding: bit-identical resumes need the "
                            "same one)")
    train.add_argument("--name", default=None,
                       help="name of the final weights, RUN_DIR/NAME.pt (default: sarcnn)")
    train.add_argument("--init-from", default=None, metavar="WEIGHTS|RUN",
                       help="start from these weights (a name from 'sardespeckle weights', a "
                            "weights file, or a run folder/checkpoint.pt) instead of random ones")
    train.add_argument("--max-steps", type=positive_int, default=None, metavar="N",
                       help="stop (with a checkpoint) after N steps in this call (N >= 1)")
    train.add_argument("--export", metavar="PT", default=None,
                       help="only write the weights of the latest checkpoint to PT and exit (a "
                            "finished run without its checkpoint: its final weights, renamed; an "
                            "existing PT is replaced only with --overwrite; the run's own files "
                            "and its references never are)")
    train.add_argument("--overwrite", action="store_true",
                       help="with --export: replace an existing PT")
    train.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar (the start and end lines are still printed)")


# The options that make up a run's configuration (given with --references; a CONFIG file or a
# resumed run's config.json holds them instead), and their defaults.
_CONFIG_OPTIONS = {
    "--validation": "validation", "--kind": "kind", "--looks": "looks", "--steps": "steps",
    "--batch-size": "batch_size", "--patch-size": "patch_size",
    "--learning-rate": "learning_rate", "--schedule": "schedule",
    "--warmup-steps": "warmup_steps", "--precision": "precision", "--device": "device",
    "--seed": "seed", "--name": "name", "--init-from": "init_from", "--gain-range": "gain_range",
}
_CLI_DEFAULTS = {
    "looks": 1.0, "steps": 20000, "batch_size": 64, "patch_size": 40, "learning_rate": 1e-3,
    "schedule": "step", "warmup_steps": 0, "precision": "auto", "device": "auto", "seed": 0,
    "name": "sarcnn",
}


def _refuse_options_of_a_config(given: dict, holder: str) -> None:
    """Options that would change a configuration are refused, never silently ignored."""
    from ..errors import UsageError

    if given:
        raise UsageError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set by {holder}, not by "
            f"options: edit the configuration (or train with --references and options alone); "
            f"with a CONFIG or a run to resume only --threads, --max-steps and -q apply"
        )


def run_train_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from ..training import TrainConfig, export_weights, train
    from ..training.trainer import check_run_folder

    if args.export is not None:
        ignored = ([f"CONFIG {args.config}"] if args.config else []) + [
            option for option, key in (("--references", "references"),
                                       *((o, k) for o, k in _CONFIG_OPTIONS.items()))
            if getattr(args, key, None) not in (None, [], ())]
        if ignored:
            raise UsageError(f"--export writes the weights of the run in --run-dir as they are; "
                             f"{', '.join(ignored)} would be ignored: leave "
                             f"{'it' if len(ignored) == 1 else 'them'} out")
        digest = export_weights(args.run_dir, args.export, overwrite=args.overwrite)
        from ..models.weights import load_weights

        _, meta = load_weights(args.export)
        sys.stderr.write(f"wrote {args.export}: {meta.get('description', '')} "
                         f"(sha256 {digest[:12]})\n")
        return 0
    if args.overwrite:
        raise UsageError("--overwrite only applies to --export (a run folder is resumed, never "
                         "overwritten; use a new --run-dir to start again)")
    check_run_folder(Path(args.run_dir))
    if args.config and args.references:
        raise UsageError("give either a CONFIG file or --references, not both")
    given = {option: getattr(args, dest) for option, dest in _CONFIG_OPTIONS.items()
             if getattr(args, dest) is not None}
    if args.config:
        _refuse_options_of_a_config(given, f"the config file {args.config}")
        config = TrainConfig.load(args.config)
    elif args.references:
        value = {dest: (getattr(args, dest) if getattr(args, dest) is not None else default)
                 for dest, default in _CLI_DEFAULTS.items()}
        config = TrainConfig.from_dict({
            "references": [{"path": p, "kind": args.kind} for p in args.references],
            "validation": [{"path": p, "kind": args.kind} for p in args.validation or ()],
            **value, "init_from": args.init_from, "gain_range": args.gain_range,
        })
    elif (Path(args.run_dir) / "config.json").exists():
        _refuse_options_of_a_config(
            given, f"the run's {Path(args.run_dir) / 'config.json'} (a run keeps its "
                   f"configuration; start a new --run-dir for another)")
        config = TrainConfig.load(Path(args.run_dir) / "config.json")
    else:
        raise UsageError("give a CONFIG file or --references (or a --run-dir to resume)")

    if args.threads is not None:
        config = TrainConfig.from_dict({**config.as_dict(), "threads": args.threads})
    # The bar starts with the training (on_start), once train() has checked every input: an
    # error about a reference or the run folder comes alone, not under an empty bar.
    bar = None

    def progress(step: int, total: int, loss: float) -> None:
        if bar is not None:
            bar(step, total, f"loss {loss:.4f}")

    def on_start(step: int, precision: str, device: str) -> None:
        nonlocal bar
        what = (f"resuming {args.run_dir} at step {step}/{config.steps}" if step
                else f"new run {args.run_dir}: {config.steps} steps")
        sys.stderr.write(f"{what} ({precision} on {device})\n")
        bar = Progress("training", unit="step", quiet=args.quiet, leave=True, initial=step)

    try:
        result = train(config, args.run_dir, max_steps=args.max_steps, progress=progress,
                       on_start=on_start)
    finally:
        if bar is not None:
            bar.close()
    psnr = "" if result.last_validation_psnr is None else \
        f", validation PSNR {result.last_validation_psnr:.2f} dB"
    if result.finished:
        sys.stderr.write(f"finished {result.step} steps{psnr}; weights: {result.weights_path}\n")
        if config.task == "gaussian":
            sys.stderr.write(f"a Gaussian denoiser: use it in MuLoG with --method mulog --denoiser "
                             f"{result.weights_path} (docs/mulog.md)\n")
    elif result.interrupted_by is not None:
        with contextlib.suppress(OSError):  # a hang-up may have closed the terminal
            sys.stderr.write(f"interrupted at step {result.step}/{config.steps}{psnr}, "
                             "checkpoint written; rerun the same command to resume\n")
        from .main import EXIT_HUNG_UP, EXIT_INTERRUPTED, EXIT_TERMINATED

        return {signal.SIGTERM: EXIT_TERMINATED, signal.SIGHUP: EXIT_HUNG_UP}.get(
            result.interrupted_by, EXIT_INTERRUPTED)
    else:
        sys.stderr.write(f"stopped at step {result.step}/{config.steps}{psnr}; rerun the same "
                         "command to resume\n")
    return 0
