"""The ``sardespeckle`` command line: parsing, progress bars and exit codes only.

Exit codes: 0 success, 1 runtime error, 2 usage error, 130 interrupted, 143 terminated, 141
output pipe closed. Errors are one line on
stderr with a hint; ``--debug`` shows the traceback. Heavy modules (numpy, rasterio, torch) are
imported inside the sub-commands so that ``sardespeckle --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from ._args import (band_or_all, false_alarm_or_off, non_negative_int, positive_float,
                    positive_float_or_auto, positive_int, simulated_looks)
from ._progress import Progress

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell tool reports when its reader went away
EXIT_HUNG_UP = 129  # 128 + SIGHUP


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same clean-up runs (temporary
    outputs deleted, training checkpointed)."""


class _HungUp(KeyboardInterrupt):
    """SIGHUP (the terminal closed, an SSH session dropped), handled like SIGTERM."""


def _raise_terminated(signum, frame) -> None:
    raise _HungUp() if signum == signal.SIGHUP else _Terminated()

KINDS = ("intensity", "amplitude", "db", "complex")


class _Parser(argparse.ArgumentParser):
    """argparse with our usage-error format (one line + hint, exit 2; after the usage lines
    when the arguments themselves are wrong: unknown, missing, too many)."""

    def error(self, message: str) -> None:  # pragma: no cover - exercised through main()
        if not message.startswith("argument "):  # a bad value names its option: enough
            self.print_usage(sys.stderr)
        sys.stderr.write(f"sardespeckle: error: {message}\n  hint: {self.prog} --help\n")
        raise SystemExit(EXIT_USAGE)


def _param_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip().replace("-", "_"), value.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sardespeckle",
        description="Remove speckle from SAR images (GeoTIFF or .npy), keeping georeferencing.",
        epilog="Run 'sardespeckle COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run", help="despeckle an image (or a batch of images) into new files",
        description="Despeckle INPUT (.tif/.tiff/.npy) into OUTPUT, tile by tile. Several inputs, "
                    "a folder or a quoted glob ('scenes/*.tif') run a batch: each scene is "
                    "written under its own name into the folder OUTPUT, scenes whose output "
                    "exists are skipped unless --overwrite, a failed scene does not stop the "
                    "others (exit 1 at the end if any failed). --scheduler/--workers compute the "
                    "tiles on a Dask cluster (pip install 'sardespeckle[dask]').")
    run.add_argument("input", nargs="+", metavar="INPUT",
                     help="input GeoTIFF or .npy file; several files, a folder or a glob for a "
                          "batch")
    run.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="output file (.tif/.tiff or .npy), never the input; for a batch, the "
                          "output folder (created if missing)")
    run.add_argument("-m", "--method", default=None,
                     help="method name (see 'sardespeckle methods'; default: sarcnn, SAR-CNN "
                          "with the shipped weights)")
    run.add_argument("--looks", type=positive_float_or_auto, default=None, metavar="L",
                     help="number of looks of the input, or 'auto' (default: 1 for complex input, "
                          "else estimated from homogeneous windows and reported)")
    run.add_argument("--kind", choices=KINDS, default=None,
                     help="what the input holds (default: detected, and the reason is printed)")
    run.add_argument("--output-kind", choices=KINDS[:3], default=None,
                     help="what to write (default: the input kind; complex input → intensity)")
    run.add_argument("--band", type=band_or_all, default=1, metavar="N|all",
                     help="the GeoTIFF band to despeckle, from 1 (default 1; e.g. 2 for VH in a "
                          "VV, VH file), into a one-band output; all: every band, each on its "
                          "own, into a GeoTIFF of as many bands")
    run.add_argument("--complex-layout", choices=("last", "first", "bands"), default=None,
                     help="read real/imaginary parts from a 3-D .npy (axis last/first) or from "
                          "two GeoTIFF bands")
    run.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                     help="core tile side in pixels (default 512; 1024 for sarcnn; rounded up "
                          "to a multiple of 256, the blocks of a GeoTIFF output)")
    run.add_argument("--window-size", type=positive_int, default=None, metavar="N",
                     help="window size of a classical filter (odd)")
    run.add_argument("--keep-targets", type=false_alarm_or_off, default=None, metavar="PFA",
                     help="keep the input value of strong scatterers (pixels brighter than "
                          "speckle allows over their despeckled surroundings, at this false-alarm "
                          "rate, e.g. 1e-5; 0 or off: off, the default); any method "
                          "(-p keep_targets=PFA)")
    run.add_argument("--weights", default=None, metavar="NAME|PATH",
                     help="network weights: a name from 'sardespeckle weights' or a file")
    run.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                     help="network arithmetic (default: bf16 where the CPU/GPU has it, else fp32)")
    run.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                     help="where a network runs (default auto: CUDA when available)")
    run.add_argument("--decorrelate", choices=("auto", "none", "subsample", "whiten"), default=None,
                     help="decorrelate the speckle before sarcnn or mulog (sarcnn's default, auto: "
                          "whiten complex input; correlated single-look input: none with "
                          "weights trained on correlated speckle (without --weights: "
                          "sarcnn-s1-l1-corr3w), subsample with others or when more correlated "
                          "than they learnt; multilooked input: none, or subsample above a "
                          "correlation of 0.18 without such weights for its looks; else none; "
                          "mulog's default: none)")
    run.add_argument("--denoiser", default=None, metavar="NAME",
                     help="MuLoG's Gaussian denoiser: bm3d (needs the bm3d extra), dncnn-natural "
                          "(fixed-σ natural-image DnCNNs, one picked per iteration), "
                          "dncnn-natural-blind, dncnn-sar (SAR-trained: the hybrid), "
                          "dncnn-sar-blind, registered Gaussian weights by name "
                          "('sardespeckle weights'), or a Gaussian-denoiser weights file FILE.pt "
                          "from 'sardespeckle train' (default bm3d)")
    run.add_argument("--iterations", type=positive_int, default=None, metavar="T",
                     help="MuLoG's ADMM iterations (default 6)")
    run.add_argument("-p", "--param", type=_param_arg, action="append", default=[],
                     metavar="NAME=VALUE", help="a method parameter (repeatable)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (a batch skips scenes whose output exists "
                          "without it)")
    run.add_argument("--preview", metavar="PNG", default=None,
                     help="also write a side-by-side PNG (input | output); single input only")
    cluster = run.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS", default=None,
                         help="compute the tiles on the Dask cluster of this scheduler "
                              "(tcp://HOST:8786); its workers must read INPUT at the same path")
    cluster.add_argument("--workers", type=positive_int, default=None, metavar="N",
                         help="compute the tiles on a local Dask cluster of N worker processes "
                              "(one thread each), started for this run")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar, summary or notes (a batch still lists what it "
                          "skipped and what failed)")

    info = sub.add_parser("info", help="describe an image: size, kind, georeferencing, looks")
    info.add_argument("input", metavar="INPUT", help="GeoTIFF or .npy file to describe")
    info.add_argument("--kind", choices=KINDS, default=None,
                      help="what the file holds (default: detected, and the reason printed)")
    info.add_argument("--band", type=positive_int, default=1, metavar="N",
                      help="the GeoTIFF band to describe (kind, looks), from 1 (default 1)")
    info.add_argument("--complex-layout", choices=("last", "first", "bands"), default=None,
                      help="read real/imaginary parts from a 3-D .npy (axis last/first) or "
                           "from two GeoTIFF bands")
    info.add_argument("--json", action="store_true", help="print JSON")

    sim = sub.add_parser("simulate", help="multiply a clean image by simulated speckle")
    sim.add_argument("input", metavar="CLEAN",
                     help="speckle-free image (GeoTIFF or .npy) to multiply by simulated speckle")
    sim.add_argument("-o", "--output", required=True, metavar="NOISY",
                     help="output file (.tif or .npy), of the clean image's kind")
    sim.add_argument("--looks", type=simulated_looks, required=True, metavar="L",
                     help="looks of the simulated speckle (a number > 0, at most 10000)")
    sim.add_argument("--seed", type=non_negative_int, required=True,
                     help="seed of the speckle draw (an integer >= 0)")
    sim.add_argument("--kind", choices=KINDS[:3], default=None,
                     help="what the clean image holds (default: detected)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing output")

    prev = sub.add_parser("preview", help="side-by-side PNG of one or more images")
    prev.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="one or more images (GeoTIFF or .npy), one panel each, side by side on "
                           "one shared dB stretch")
    prev.add_argument("-o", "--output", required=True, metavar="PNG", help="PNG file to write")
    prev.add_argument("--kind", choices=KINDS, default=None,
                      help="kind of every input (default: detected per file)")
    prev.add_argument("--complex-layout", choices=("last", "first", "bands"), default=None,
                      help="read real/imaginary parts from a 3-D .npy (axis last/first) or "
                           "from two GeoTIFF bands (the inputs that hold them)")
    prev.add_argument("--band", type=int, default=1, metavar="N",
                      help="the band shown of every input of several bands, from 1 (default 1; "
                           "e.g. 2 for VH of a VV, VH file); one-band inputs show their band")
    prev.add_argument("--titles", default=None, help="comma-separated panel titles")
    prev.add_argument("--overwrite", action="store_true", help="replace an existing PNG")

    methods = sub.add_parser("methods", help="list the despeckling methods")
    methods.add_argument("--json", action="store_true",
                         help="print JSON: a list of methods with their family, description "
                              "and parameter defaults")

    weights = sub.add_parser("weights", help="list the registered network weights, or describe "
                                             "weights files",
                             description="List the registered network weights; --verify checks "
                                         "each file's sha256 (exit 1 if any is missing or differs). "
                                         "With FILE arguments (e.g. a training run's RUN_DIR/NAME.pt, "
                                         "or a registered name), check and describe those instead "
                                         "(exit 1 if any cannot be).")
    weights.add_argument("files", nargs="*", metavar="FILE",
                         help="weights files or registered names to check and describe "
                              "(default: every registered one)")
    weights.add_argument("--verify", action="store_true", help="check every file's sha256")
    weights.add_argument("--json", action="store_true",
                         help="print JSON: a list of weights (with each one's 'verify' status "
                              "under --verify, its 'error' when it cannot be described)")

    from .covariance import add_covariance_parser
    from .references import add_references_parser
    from .train import add_train_parser

    add_covariance_parser(sub)
    add_references_parser(sub)
    add_train_parser(sub)

    from .evaluate import add_evaluate_parser

    add_evaluate_parser(sub)
    _accept_debug_anywhere(parser)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The parser of the command (and sub-command) ``args`` came through, else ``parser``."""
    for action in parser._actions:  # argparse keeps its sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _command_parser(action.choices[name], args)
    return parser


def _accept_debug_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--debug`` also follow the command name (``sardespeckle run ... --debug``); given
    there it sets the same flag as before the command."""
    for action in parser._actions:  # argparse keeps its sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                   help="show tracebacks on errors")
                _accept_debug_anywhere(child)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, with its usage line
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from .. import __version__

        print(f"sardespeckle {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler = _COMMANDS[args.command]
    base = sys.modules.get("sardespeckle.io.base")
    if base is not None:  # a command called again in one process reports its own files
        base.PUBLISHED.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_terminated)
        if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # under nohup it stays ignored
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        with warnings.catch_warnings():
            # Library warnings as one line, like the notes (not Python's file:line: Category).
            warnings.showwarning = _show_warning
            # Dask's client, closed while SIGTERM unwinds a --scheduler run, leaves this one
            # behind: noise after our "terminated" line, not something a user can act on.
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    message="coroutine 'Client._close' was never awaited")
            code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here (below), not at interpreter exit
        return code
    except _Terminated:
        _remove_temporaries()
        sys.stderr.write(f"sardespeckle: terminated; {_written_before()}\n")
        return EXIT_TERMINATED
    except _HungUp:
        _remove_temporaries()
        with contextlib.suppress(OSError):  # the terminal may be gone
            sys.stderr.write(f"sardespeckle: hung up; {_written_before()}\n")
        return EXIT_HUNG_UP
    except KeyboardInterrupt:
        _remove_temporaries()
        sys.stderr.write(f"sardespeckle: interrupted; {_written_before()}\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our standard output went away (`sardespeckle info X | head`): stop
        # quietly, as a shell tool would, with the status of a process killed by SIGPIPE.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:  # noqa: BLE001 - the CLI boundary turns every error into a code
        if args.debug:
            raise
        return _report_error(error)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit raises nothing more."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _written_before() -> str:
    """What an interrupted command leaves: nothing, or the files it completed before (a batch's
    finished scenes, or an output the interrupt struck just after)."""
    base = sys.modules.get("sardespeckle.io.base")
    done = list(base.PUBLISHED) if base is not None else []
    if not done:
        return "no output was written"
    return (f"{len(done)} file(s) had been written before it (the last: {done[-1]}); "
            "nothing in progress was kept")


def _remove_temporaries() -> None:
    """Delete the hidden temporary outputs an interrupt left, wherever it struck (even while a
    file was being created, before the writer that owns it could clean up)."""
    base = sys.modules.get("sardespeckle.io.base")  # never imported: nothing was written
    if base is not None:
        base.remove_temporaries()


def _report_error(error: BaseException) -> int:
    from ..errors import SardespeckleError, UsageError

    if isinstance(error, UsageError):
        sys.stderr.write(f"sardespeckle: error: {error}\n")
        return EXIT_USAGE
    if isinstance(error, SardespeckleError):
        sys.stderr.write(f"sardespeckle: error: {error}\n")
        return EXIT_RUNTIME
    if isinstance(error, MemoryError):
        sys.stderr.write("sardespeckle: error: out of memory; hint: use a smaller --tile where "
                         "the command has one, or a smaller input\n")
        return EXIT_RUNTIME
    import errno

    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        sys.stderr.write("sardespeckle: error: file too large for this filesystem or for the "
                         "process's file-size limit (ulimit -f)"
                         f"{f' while writing {error.filename}' if error.filename else ''}; "
                         "nothing was published\n")
        return EXIT_RUNTIME
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        sys.stderr.write("sardespeckle: error: no space left on the device (or over quota) "
                         f"while writing{f' {error.filename}' if error.filename else ''}; "
                         "outputs are written whole or not at all: free some space and rerun\n")
        return EXIT_RUNTIME
    if type(error).__name__ == "RasterioIOError" and "Write failed" in str(error):
        # GDAL's reason (often "No space left on device") is printed above by GDAL itself
        sys.stderr.write("sardespeckle: error: GDAL could not write a GeoTIFF (a full disk, "
                         "most often: see GDAL's message above); nothing was published\n")
        return EXIT_RUNTIME
    if isinstance(error, OSError) and error.filename is not None:
        # The system refused a file operation (permissions, a read-only or full disk, a path
        # under /proc or /sys): a plain message, not an internal error.
        sys.stderr.write(f"sardespeckle: error: cannot use {error.filename}: "
                         f"{error.strerror or error}\n")
        return EXIT_RUNTIME
    sys.stderr.write(
        f"sardespeckle: internal error: {type(error).__name__}: {error}\n"
        "  hint: rerun with --debug for the traceback and report it\n"
    )
    return EXIT_RUNTIME


def _run_params(args: argparse.Namespace) -> dict:
    from ..errors import UsageError

    params = dict(args.param)
    options = {name: getattr(args, name) for name in (
        "window_size", "weights", "precision", "device", "decorrelate", "denoiser", "iterations",
        "keep_targets") if getattr(args, name) is not None}
    for name, value in options.items():
        if name in params and str(params[name]) != str(value):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"expected {name} once, got {flag} {value} and -p {name}="
                             f"{params[name]}; keep one of them")
    params.update(options)
    return params


@contextlib.contextmanager
def _scene_runner(args: argparse.Namespace, params: dict):
    """``run(input, output, progress) -> RunReport`` in this process, or on the Dask cluster of
    --scheduler / --workers (one cluster for every scene of a batch)."""
    from ..api import DEFAULT_METHOD, despeckle_file

    options = dict(method=args.method or DEFAULT_METHOD, looks=args.looks, kind=args.kind,
                   output_kind=args.output_kind, complex_layout=args.complex_layout,
                   tile=args.tile, params=params, overwrite=args.overwrite, band=args.band)
    with contextlib.ExitStack() as stack:
        if args.scheduler is not None or args.workers is not None:
            from ..scale.cluster import LazyClient, require_dask

            require_dask()
            # started when the first tile is sent: the checks of the input and the output,
            # and a batch's skipped scenes, come first
            options["client"] = LazyClient(stack, scheduler=args.scheduler,
                                           workers=args.workers)
        yield lambda source, target, progress: despeckle_file(source, target, progress=progress,
                                                              **options)


def _cmd_run(args: argparse.Namespace) -> int:
    from ..scale.batch import is_batch

    params = _run_params(args)
    if is_batch(args.input, args.output):
        return _run_batch(args, params)
    if args.preview:
        _check_preview_path(args)
    bar = Progress("despeckling", unit="tile", quiet=args.quiet)
    try:
        with _scene_runner(args, params) as run:
            report = run(args.input[0], args.output, bar)
    finally:
        bar.close()
    if not args.quiet:
        sys.stderr.write(_run_summary(report))
    if args.preview:
        from ..io import read_preview_panel, save_preview

        # With --band all the preview shows band 1, in and out.
        panels = [read_preview_panel(report.input, kind=args.kind,
                                     band=1 if args.band == "all" else args.band,
                                     complex_layout=args.complex_layout),
                  read_preview_panel(args.output, kind=report.output_kind)]
        save_preview(panels, args.preview, titles=["input", f"{report.method}"],
                     overwrite=args.overwrite)
        if not args.quiet:
            sys.stderr.write(f"wrote preview {args.preview}"
                             + (" (band 1; 'sardespeckle preview INPUT OUTPUT --band N' shows "
                                "another)" if args.band == "all" else "") + "\n")
    return EXIT_OK


def _check_preview_path(args: argparse.Namespace) -> None:
    """Refuse a --preview that could not be written, before any work: not a .png (so neither
    the input nor the output), in a missing folder, or existing without --overwrite."""
    from ..io.preview import check_png_path

    check_png_path(args.preview, args.overwrite)


def _run_summary(report) -> str:
    rows, cols = report.shape
    mpix = rows * cols / 1e6
    return (
        f"input kind: {report.input_kind} ({report.kind_reason})\n"
        f"looks: {report.looks:g} ({report.looks_source})\n"
        f"method: {report.method} {json.dumps(report.parameters, sort_keys=True, default=repr)}"
        + (f" weights={report.weights}" if report.weights else "") + "\n"
        + "".join(f"note: {note}\n" for note in report.notes)
        + f"wrote {report.output} ({report.output_kind}, {rows}×{cols}) in "
        f"{report.seconds:.1f} s ({mpix / max(report.seconds, 1e-9):.2f} MP/s)\n"
    )


def _run_batch(args: argparse.Namespace, params: dict) -> int:
    """Every scene into the folder -o, one progress bar over the scenes, a summary at the end."""
    from ..api import DEFAULT_METHOD
    from ..errors import UsageError
    from ..methods import get_method
    from ..scale.batch import batch_pairs, despeckle_batch

    if args.preview:
        raise UsageError("expected a single input with --preview, got a batch; preview the "
                         "scenes one by one with 'sardespeckle preview'")
    get_method(args.method or DEFAULT_METHOD).resolve(params)  # a bad option fails every scene
    pairs = batch_pairs(args.input, args.output)
    bar = Progress("scenes", unit="scene", quiet=args.quiet)

    def on_scene(source: str, status: str, detail) -> None:
        if status == "failed":
            text = _error_text(detail)
            # most messages name the file already: not once more in front
            named = text if str(source) in text else f"{source}: {text}"
            bar.write(f"sardespeckle: error: {named}\n")
        elif status == "written" and not args.quiet:
            rate = detail.shape[0] * detail.shape[1] / 1e6 / max(detail.seconds, 1e-9)
            bar.write(f"wrote {detail.output} ({detail.method}, {rate:.2f} MP/s)\n"
                      + "".join(f"  note: {note}\n" for note in detail.notes))

    try:
        with _scene_runner(args, params) as run:
            report = despeckle_batch(pairs, lambda s, t: run(s, t, None),
                                     overwrite=args.overwrite, progress=bar, on_scene=on_scene)
    finally:
        bar.close()
    summary = (f"batch: {len(report.written)} written, {len(report.skipped)} skipped, "
               f"{len(report.failed)} failed, of {len(pairs)} scene(s) into {args.output}\n")
    if report.skipped:
        summary += ("  skipped (the output exists; --overwrite replaces it): "
                    + ", ".join(os.path.basename(target) for target in report.skipped) + "\n")
    sys.stderr.write(summary + "".join(f"  failed: {source}\n" for source, _ in report.failed))
    return EXIT_RUNTIME if report.failed else EXIT_OK


def _error_text(error: BaseException) -> str:
    from ..errors import SardespeckleError

    if isinstance(error, SardespeckleError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _json_safe(value):
    """``value`` with non-finite floats as the strings ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"`` (strict JSON has no NaN; ``null`` would read as "no nodata"), as the
    ``.npy`` sidecars write a NaN nodata."""
    import math
    import numbers

    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _cmd_info(args: argparse.Namespace) -> int:
    from ..api import estimate_source_looks
    from ..errors import InvalidInputError, UnknownKindError
    from ..io import open_source

    try:
        source = open_source(args.input, kind=args.kind, complex_layout=args.complex_layout,
                             band=args.band)
        unknown = None
    except UnknownKindError as error:
        # Still describe the file (size, georeferencing, bands): only the kind is unknown.
        with warnings.catch_warnings():  # what the error says, not a warning about the stand-in
            warnings.simplefilter("ignore", UserWarning)
            source = open_source(args.input, kind="intensity",
                                 complex_layout=args.complex_layout, band=args.band)
        unknown = error
    with source:
        info = dict(source.info())
        if unknown is not None:
            info["kind"] = "unknown"
            info["kind_reason"] = str(unknown)
            info["estimated_looks"] = None
            info["estimated_looks_note"] = "unavailable: the kind is unknown (pass --kind)"
        else:
            try:  # what run would refuse in the values (dB as intensity, no phase...)
                source.value_shares()
            except InvalidInputError as error:
                info["problem"] = f"run refuses it: {error}"
            try:
                info["estimated_looks"] = round(estimate_source_looks(source), 3)
            except Exception as error:  # noqa: BLE001 - a failed estimate is reported, not fatal
                info["estimated_looks"] = None  # a number or null, for JSON readers
                info["estimated_looks_note"] = f"unavailable: {error}"
    if args.json:
        print(json.dumps(_json_safe(info), indent=2, default=str))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import open_source, write_array
    from ..speckle import check_speckle_underflow, simulate_speckle
    from ..window import Window

    from ..errors import InvalidInputError
    from ..io.base import without_layout_hint

    try:
        source = open_source(args.input, kind=args.kind)
    except InvalidInputError as error:
        raise without_layout_hint(
            error, "simulate multiplies a clean, real image (intensity, amplitude or dB; "
            "--kind) by speckle: complex data and real/imaginary parts are speckled already",
            markers=("--complex-layout", "--kind complex")) from None
    with source:
        kind = source.kind
        if kind == "complex":
            from ..errors import UsageError

            raise UsageError("simulate expects a clean intensity/amplitude/dB image, got complex")
        intensity, valid = source.read_intensity(Window.full(source.shape))
        speckle = simulate_speckle(source.shape, args.looks, kind="intensity", seed=args.seed)
        noisy = np.where(valid, intensity * speckle, np.nan).astype(np.float32)
        check_speckle_underflow(noisy, valid, args.looks, args.input)
        from ..io.kinds import from_intensity

        # Masked pixels stay nodata: the input's nodata value in a GeoTIFF, NaN in a .npy.
        to_npy = str(args.output).lower().endswith(".npy")
        nodata = np.nan if to_npy or source.nodata is None else float(source.nodata)
        out = from_intensity(noisy, valid, kind, nodata_out=nodata)
        write_array(args.output, out, like=source, kind=kind, nodata=None if to_npy else nodata,
                    overwrite=args.overwrite,
                    tags={"SARDESPECKLE_SIMULATED_LOOKS": f"{args.looks:g}",
                          "SARDESPECKLE_SEED": str(args.seed), "SARDESPECKLE_KIND": kind})
    if not valid.any():
        sys.stderr.write("note: the input has no valid pixel (every pixel is nodata, NaN, zero "
                         "or negative): the output is all nodata\n")
    from ..io.raster import stored_tags

    earlier = stored_tags(args.input).get("SARDESPECKLE_SIMULATED_LOOKS")
    if earlier:
        sys.stderr.write(f"note: {args.input} already holds simulated {earlier}-look speckle "
                         f"(its tags say so): the output has two layers of it, not "
                         f"{args.looks:g}-look speckle on a clean image\n")
    sys.stderr.write(f"wrote {args.output} ({kind}, {args.looks:g}-look speckle, seed {args.seed})\n")
    return EXIT_OK


def _layout_if_held(path: str, layout: str | None) -> str | None:
    """``layout`` for a file that can hold it (a 3-D ``.npy``, a GeoTIFF of several bands),
    else None: one ``preview`` shows an SLC beside its despeckled 2-D result."""
    if layout is None:
        return None
    if path.lower().endswith(".npy"):
        import numpy as np

        try:
            return layout if np.load(path, mmap_mode="r").ndim == 3 else None
        except (OSError, ValueError):
            return layout  # unreadable: let the reader report it
    if layout != "bands":  # 'last'/'first' describe .npy arrays only
        return None
    import rasterio

    try:
        with rasterio.open(path) as dataset:
            return layout if dataset.count >= 2 else None
    except rasterio.errors.RasterioError:
        return layout


def _band_count(path: str) -> int:
    """Bands of a GeoTIFF (1 for anything else; its panel was read, so it is readable)."""
    if not path.lower().endswith((".tif", ".tiff")):
        return 1
    from ..io.geotiff import read_header

    return read_header(path).count


def _cmd_preview(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import read_preview_panel, save_preview

    from ..errors import InvalidInputError, UsageError
    from ..references import side_output_of

    for path in args.inputs:
        side = side_output_of(path)
        if side is not None and side[0] == "changes":
            raise InvalidInputError(
                f"expected an image, got {path}: the per-date change codes (0 kept, 1 changed, "
                f"255 invalid) that 'references build' wrote beside {side[1]}, which a dB "
                f"stretch cannot show (code 0 would be masked); preview the reference or its "
                f"_count file, or read the codes with numpy/rasterio")
    titles = args.titles.split(",") if args.titles else [p.split("/")[-1] for p in args.inputs]
    if args.band < 1:
        raise UsageError(f"expected --band N with N >= 1, got {args.band}")
    bands = {path: _band_count(path) for path in args.inputs}
    panels = [read_preview_panel(path, kind=args.kind, band=args.band if bands[path] > 1 else 1,
                                 complex_layout=_layout_if_held(path, args.complex_layout))
              for path in args.inputs]
    save_preview(panels, args.output, titles=titles, overwrite=args.overwrite)
    for path, panel in zip(args.inputs, panels):
        with np.errstate(invalid="ignore"):
            if not np.any(np.isfinite(panel) & (panel > 0)):
                sys.stderr.write(f"note: {path} has no valid pixel (all NaN, nodata or zero): "
                                 "its panel is drawn in the masked colour\n")
    for path in args.inputs:
        if bands[path] > 1 and args.complex_layout != "bands":
            sys.stderr.write(f"note: {path} has {bands[path]} bands: its panel shows band "
                             f"{args.band}" + (" (--band N shows another)" if args.band == 1
                                               else "") + "\n")
    if len({panel.shape for panel in panels}) > 1:
        sys.stderr.write("note: the panels differ in size ("
                         + ", ".join(f"{p.shape[0]}×{p.shape[1]}" for p in panels)
                         + "): they are drawn side by side, not on one grid\n")
    sys.stderr.write(f"wrote {args.output}\n")
    return EXIT_OK


def _cmd_methods(args: argparse.Namespace) -> int:
    from ..api import DEFAULT_METHOD
    from ..methods import list_methods

    specs = list_methods()
    if args.json:
        print(json.dumps([{"name": spec.name, "family": spec.family,
                           "description": spec.description,
                           "default": spec.name == DEFAULT_METHOD,
                           "parameters": {**spec.defaults, "keep_targets": None}}
                          for spec in specs], indent=2, default=repr))
        return EXIT_OK
    width = max(len(s.name) for s in specs)
    for spec in specs:
        mark = " (default)" if spec.name == DEFAULT_METHOD else ""
        defaults = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
        print(f"{spec.name:<{width}}  [{spec.family}] {spec.description}{mark}")
        if defaults:
            print(f"{'':<{width}}    parameters: {defaults}")
    print("every method also takes keep_targets=PFA (run --keep-targets PFA; default off): "
          "strong scatterers keep their input value")
    return EXIT_OK


def _weights_record(name: str, meta: dict, sha256: str, filename: str) -> dict:
    """What 'sardespeckle weights' says of one weights file, as a dict (``meta``: the meta
    dict of a file, or a registry entry as a dict: the same keys)."""
    import dataclasses

    from ..models.weights import Architecture

    keys = ("looks", "trained_sigma", "sigma_range", "domain", "norm_min", "norm_max",
            "validation_psnr", "training_data", "training_level", "speckle_band",
            "speckle_band_share", "description")
    return {"name": name, "file": str(filename), "sha256": sha256,
            "architecture": dataclasses.asdict(Architecture.from_dict(meta.get("architecture"))),
            **{key: meta.get(key) for key in keys}}


def _describe_weights(record: dict) -> None:
    """The lines of 'sardespeckle weights' for one weights file, from its
    :func:`_weights_record` (what ``--json`` prints)."""
    arch = record["architecture"]
    psnr = record["validation_psnr"]
    psnr = "n/a" if psnr is None else f"{psnr:.2f} dB"
    if record["trained_sigma"] is not None:
        noise = f"Gaussian noise σ = {record['trained_sigma'] * 255:g}/255"
    elif record["sigma_range"] is not None:
        low, high = record["sigma_range"]
        noise = f"Gaussian noise σ in [{low * 255:g}, {high * 255:g}]/255 (blind)"
    else:
        noise = f"looks: {record['looks']:g}"
    print(f"{record['name']}\n  architecture: {arch['kind']} depth={arch['depth']} "
          f"features={arch['features']} channels={arch['channels']}\n"
          f"  {noise}  domain: {record['domain']}\n"
          f"  sha256: {record['sha256'][:16]}  file: {record['file']}\n"
          f"  validation PSNR: {psnr}\n  training data: {record['training_data'] or 'n/a'}")
    if record["training_level"] is not None:
        print(f"  training level (median intensity, level=auto): "
              f"{record['training_level']:.6g}")
    if record["speckle_band"] is not None and record["speckle_band_share"]:
        low, high = record["speckle_band"]
        print(f"  speckle: spatially correlated on {record['speckle_band_share']:.0%} of the "
              f"training patches (band fractions {low:g}-{high:g}): decorrelate=auto gives it "
              f"correlated data of its looks as they are, at full resolution")
    if record["description"]:
        print(f"  {record['description']}")


def _cmd_weights(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from ..errors import SardespeckleError, UsageError
    from ..models.weights import REGISTRY, list_weights, load_weights, sha256_file

    records: list[dict] = []  # --json: printed at the end, one list

    def describe(name: str, meta: dict, sha256: str, filename: str, **extra) -> None:
        record = _weights_record(name, meta, sha256, filename)
        if args.json:
            records.append({**record, **extra})
        else:
            _describe_weights(record)
            for key, value in extra.items():
                print(f"  {key}: {value}")

    def emit() -> None:
        if args.json:
            print(json.dumps(_json_safe(records), indent=2, default=str))

    if args.files:
        if args.verify:
            raise UsageError("--verify checks the registered weights; a FILE is always checked "
                             "(format, architecture, finite tensors) when it is described")
        failed = 0
        for given in args.files:  # a registered name or a file; each described or refused
            try:
                _, meta = load_weights(given)
            except SardespeckleError as error:
                if len(args.files) == 1 and not args.json:
                    raise
                sys.stderr.write(f"sardespeckle: error: {error}\n")
                records.append({"name": os.path.basename(given), "file": given,
                                "error": str(error)})
                failed += 1
                continue
            if given in REGISTRY:  # checked by loading (sha256 included); the entry says more
                entry = REGISTRY[given]
                describe(entry.name, dataclasses.asdict(entry), entry.sha256, entry.filename)
                continue
            describe(meta.get("name") or os.path.basename(given), meta, sha256_file(given),
                     given)
        emit()
        if failed:
            sys.stderr.write(f"sardespeckle: error: {failed} of {len(args.files)} weights could "
                             "not be described\n")
            return EXIT_RUNTIME
        return EXIT_OK
    entries = list_weights()
    if not entries and not args.json:
        print("no weights registered yet; pass a weights file to 'run --weights PATH'")
        return EXIT_OK
    failed = 0
    for entry in entries:
        extra = {}
        if args.verify:
            if not entry.path.is_file():
                status, failed = f"MISSING ({entry.path})", failed + 1
            elif sha256_file(entry.path) != entry.sha256:
                status, failed = "SHA256 MISMATCH (corrupt or modified)", failed + 1
            else:
                status = "ok"
            extra["verify"] = status
        describe(entry.name, dataclasses.asdict(entry), entry.sha256, entry.filename, **extra)
    if args.verify:
        from ..models.weights import USER_WEIGHTS_LEFT_OUT

        for path, why in USER_WEIGHTS_LEFT_OUT.items():  # in SARDESPECKLE_WEIGHTS_PATH
            if args.json:
                records.append({"name": os.path.basename(path), "file": path,
                                "verify": f"LEFT OUT ({why})"})
            else:
                print(f"{os.path.basename(path)}\n  file: {path}\n  verify: LEFT OUT ({why})")
            failed += 1
    emit()
    if failed:
        sys.stderr.write(f"sardespeckle: error: {failed} weights file(s) failed verification\n")
        return EXIT_RUNTIME
    return EXIT_OK


def _cmd_covariance(args: argparse.Namespace) -> int:
    from .covariance import run_covariance_command

    return run_covariance_command(args)


def _cmd_references(args: argparse.Namespace) -> int:
    from .references import run_references_command

    return run_references_command(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import run_train_command

    return run_train_command(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run_evaluate_command

    return run_evaluate_command(args)


_COMMANDS = {
    "run": _cmd_run,
    "info": _cmd_info,
    "simulate": _cmd_simulate,
    "preview": _cmd_preview,
    "methods": _cmd_methods,
    "weights": _cmd_weights,
    "covariance": _cmd_covariance,
    "references": _cmd_references,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
