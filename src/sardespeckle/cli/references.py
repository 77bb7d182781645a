"""``sardespeckle references build``: the command line of :mod:`sardespeckle.references`.

Parsing and messages only; :func:`sardespeckle.references.build_reference_files` does the work
(:mod:`sardespeckle.cli.main` adds the parser and dispatches to :func:`run_references_command`).
"""

from __future__ import annotations

import argparse
import sys

from sardespeckle.errors import OutOfMemoryError

from ._args import odd_positive_int, positive_float, positive_float_or_auto, positive_int

EXIT_OK = 0


def _false_alarm(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1), got {text!r}")
    return value


def add_references_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``references`` (with its ``build`` sub-command) to the main parser's sub-parsers."""
    references = subparsers.add_parser(
        "references", help="speckle-free references from multitemporal stacks",
        description="Temporal references of co-registered dates, leaving out changed dates.",
    )
    actions = references.add_subparsers(dest="references_command", metavar="ACTION")
    build = actions.add_parser(
        "build", help="build a reference from co-registered dates",
        description=(
            "Average co-registered dates (GeoTIFF/.npy, or 8-bit PNG with --png-threshold), "
            "leaving out at each pixel the dates that a ratio test finds changed. Writes REF, "
            "REF_count (dates used), REF_changes (per date: 0 kept, 1 changed, 255 invalid) and "
            "REF.json (the report)."
        ),
    )
    build.add_argument("stack", nargs="+", metavar="STACK",
                       help="one file per date, a folder of dates or a quoted glob "
                            "('site/*.tif'): at least 3 distinct dates (2 with --method mean); "
                            "a folder or glob gives its .tif/.tiff/.npy files sorted by name "
                            "(.png when there are none), without the files of a reference build")
    build.add_argument("-o", "--output", required=True, metavar="REF",
                       help="reference file (.tif/.tiff or .npy)")
    build.add_argument("--looks", type=positive_float_or_auto, default=None, metavar="L",
                       help="looks of each date, or 'auto' (default: estimated from the "
                            "date-to-date fluctuation and reported)")
    build.add_argument("--kind", choices=("intensity", "amplitude", "db", "complex"),
                       default=None, help="what the dates hold (default: detected per file)")
    build.add_argument("--output-kind", choices=("intensity", "amplitude"),
                       default="intensity", help="what to write (default: %(default)s)")
    build.add_argument("--png-threshold", type=positive_float, default=None, metavar="THR",
                       help="for 8-bit PNG dates: the amplitude of grey level 255 "
                            "(A = png / 255 * THR; 0 and 255 are masked)")
    build.add_argument("--method", choices=("change-aware", "mean"), default="change-aware",
                       help="test and drop changed dates, or plain mean (default: %(default)s)")
    build.add_argument("--false-alarm", type=_false_alarm, default=None, metavar="P",
                       help="false-alarm probability of one test (default: 0.001; change-aware "
                            "only, as the three options below)")
    build.add_argument("--window-size", type=odd_positive_int, default=None, metavar="K",
                       help="odd side of the window whose mean is tested, at most the dates' "
                            "smaller side (default: 3)")
    build.add_argument("--window-looks", type=positive_float_or_auto, default=None, metavar="LW",
                       help="looks of a K×K window mean, or 'auto' (default: measured on the "
                            "stack, which accounts for spatially correlated speckle)")
    build.add_argument("--max-iterations", type=positive_int, default=None, metavar="N",
                       help="most re-estimate/re-test rounds (default: 10)")
    build.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    build.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    return references


def run_references_command(args: argparse.Namespace) -> int:
    """Run ``references build``; errors propagate as :mod:`sardespeckle.errors` types."""
    from sardespeckle.errors import UsageError

    if getattr(args, "references_command", None) != "build":
        raise UsageError("expected an action, got none; try 'sardespeckle references build -h'")
    from sardespeckle.references import build_reference_files, expand_dates

    test_options = {"--false-alarm": args.false_alarm, "--window-size": args.window_size,
                    "--window-looks": args.window_looks, "--max-iterations": args.max_iterations}
    given = [option for option, value in test_options.items() if value is not None]
    if args.method == "mean" and given:
        raise UsageError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the change "
                         "test, which --method mean does not run: leave "
                         f"{'it' if len(given) == 1 else 'them'} out, or use --method "
                         "change-aware")
    dates, left_out = expand_dates(args.stack, output=args.output)
    if not args.quiet and (left_out or dates != list(args.stack)):
        sys.stderr.write(
            f"{len(dates)} date{'' if len(dates) == 1 else 's'} found in "
            f"{' '.join(args.stack)}"
            + (f" (left out, written by a reference build: "
               f"{', '.join(left_out)})" if left_out else "") + "\n")
    window_looks = "auto" if args.window_looks in (None, "auto") else args.window_looks
    false_alarm = 1e-3 if args.false_alarm is None else args.false_alarm
    window_size = 3 if args.window_size is None else args.window_size
    max_iterations = 10 if args.max_iterations is None else args.max_iterations
    try:
        report = build_reference_files(
            dates, args.output, looks=args.looks, kind=args.kind,
            output_kind=args.output_kind, overwrite=args.overwrite,
            png_threshold=args.png_threshold, method=args.method, false_alarm=false_alarm,
            max_iterations=max_iterations, window_size=window_size,
            window_looks=window_looks,
        )
    except MemoryError as error:
        # the generic message of cli/main.py suggests options of other commands (--tile)
        raise OutOfMemoryError(
            f"out of memory building a reference of {len(dates)} dates: the whole stack "
            "is held in memory; hint: crop the dates (all to the same window) or use fewer "
            "of them"
        ) from error
    if not args.quiet:
        test = report.get("test", {})
        sys.stderr.write(
            f"{report['dates']} dates, {report['rows']}×{report['cols']}, looks "
            f"{report['looks']:.3g} ({report['looks_source']}), method {report['method']}"
            + (f" (window {test['window_size']}, false alarm {test['false_alarm']:g})"
               if test else "") + "\n"
            f"dates used: mean {report['mean_dates_used']:.2f}, rejected "
            f"{100 * report['rejected_fraction']:.2f} % of valid dates; ENL expected "
            f"{report['expected_enl']:.3g}, measured {report['measured_enl']}\n"
            f"wrote {report['outputs']['reference']} ({report['output_kind']}) with "
            f"{report['outputs']['count']}, {report['outputs']['changes']}, "
            f"{report['outputs']['report']}\n"
        )
    return EXIT_OK
