"""``sardespeckle evaluate``: compare despecklers on references and real images, write a report."""

from __future__ import annotations

import argparse
import sys

from ._args import simulated_looks
from ._progress import Progress


def _method_param(text: str) -> tuple[str, str, str]:
    method, sep, rest = text.partition(":")
    name, sep2, value = rest.partition("=")
    if not sep or not sep2 or not method.strip() or not name.strip():
        raise argparse.ArgumentTypeError(f"expected METHOD:NAME=VALUE, got {text!r}")
    return method.strip(), name.strip().replace("-", "_"), value.strip()


def _peer_python(text: str) -> tuple[str, str]:
    peer, sep, python = text.partition("=")
    if not sep or not peer.strip() or not python.strip():
        raise argparse.ArgumentTypeError(f"expected PEER=PYTHON, got {text!r}")
    return peer.strip(), python.strip()


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _speed_size(text: str) -> int:
    value = _count(0)(text)
    if 0 < value < 64:
        raise argparse.ArgumentTypeError(f"expected 0 (skip) or a side of at least 64, got {text!r}")
    return value


def add_evaluate_parser(subparsers) -> None:
    """Add the ``evaluate`` sub-command to ``subparsers``."""
    evaluate = subparsers.add_parser(
        "evaluate", help="compare despecklers (PSNR/SSIM on references, ENL/ratio on real data)",
        description=(
            "Evaluate despeckling methods and write a report (report.md, self-contained "
            "report.html, results.csv, results.json, PNG crops) into --out. Full reference: "
            "speckle-free references get seeded simulated speckle, PSNR on amplitude with the "
            "99th-percentile peak (SAR-CNN paper), SSIM and the edge-preservation index β per "
            "draw. No reference (--real): ENL on homogeneous areas, ratio-image "
            "mean/variance/structure, radiometric bias. Speed "
            "and memory of every method on a simulated image. Other packages' despecklers "
            "(--peers) run here or, with --peer-python, in a child process of another Python "
            "environment. See docs/evaluation.md."
        ),
    )
    evaluate.add_argument("--references", nargs="+", default=[], metavar="REF",
                          help="speckle-free reference images (.npy/.tif; intensity, amplitude "
                               "or dB, real)")
    evaluate.add_argument("--real", nargs="+", default=[], metavar="FILE",
                          help="real speckled images for the no-reference protocol")
    evaluate.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
    evaluate.add_argument("--methods", type=_names, default=["all"], metavar="LIST",
                          help="comma-separated method names, or 'all' (default): every "
                               "registered method that can be built here; LABEL=METHOD "
                               "evaluates METHOD under its own column (e.g. "
                               "mulog-dncnn-sar=mulog with --param mulog-dncnn-sar:denoiser=dncnn-sar)")
    evaluate.add_argument("--param", type=_method_param, action="append", default=[],
                          metavar="METHOD:NAME=VALUE",
                          help="a method parameter (repeatable); METHOD is the column label when "
                               "--methods gives one")
    evaluate.add_argument("--peers", default="auto", metavar="LIST",
                          help="other packages' despecklers: 'auto' (default: those installed), "
                               "'none', or comma-separated names (sar2sar, mulog-bm3d)")
    evaluate.add_argument("--peer-python", type=_peer_python, action="append", default=[],
                          metavar="PEER=PYTHON",
                          help="run PEER in a child process of another environment's "
                               "interpreter, e.g. mulog-bm3d=/tmp/mulog-venv/bin/python for a "
                               "package that cannot be installed here (repeatable; with "
                               "--peers auto the peer is evaluated too)")
    evaluate.add_argument("--looks", type=simulated_looks, default=1.0, metavar="L",
                          help="looks of the simulated speckle and of the real images (default 1)")
    evaluate.add_argument("--draws", type=_count(1), default=3, metavar="N",
                          help="speckle draws per reference (default 3; the spread over "
                               "the draws needs at least 2)")
    evaluate.add_argument("--seed", type=_count(0), default=0, help="base seed (default 0)")
    evaluate.add_argument("--kind", choices=("intensity", "amplitude", "db"), default=None,
                          help="what the files hold (default: detected)")
    evaluate.add_argument("--complex-layout", choices=("last", "first", "bands"), default=None,
                          help="real/imaginary layout of complex --real files (applied to the "
                               "files it fits: 3-D .npy, multi-band GeoTIFF)")
    evaluate.add_argument("--speed-size", type=_speed_size, default=1024, metavar="PX",
                          help="side of the simulated image for speed/memory (0: skip; else at "
                               "least 64; default 1024)")
    evaluate.add_argument("--memory", choices=("subprocess", "tracemalloc"), default="subprocess",
                          help="memory probe: peak RSS of a child process (default) or "
                               "tracemalloc in this process")
    evaluate.add_argument("--enl-window", type=_count(4), default=32, metavar="PX",
                          help="side of the homogeneous windows (default 32)")
    evaluate.add_argument("--enl-count", type=_count(1), default=8, metavar="N",
                          help="number of homogeneous windows per image (default 8)")
    evaluate.add_argument("--crop", type=_count(8), default=128, metavar="PX",
                          help="side of the crops shown in the report (default 128)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing report")
    evaluate.add_argument("-q", "--quiet", action="store_true",
                          help="no progress bar, summary or notes on the terminal (the notes "
                               "stay in the report)")


def run_evaluate_command(args: argparse.Namespace) -> int:
    """Run ``sardespeckle evaluate``; returns the exit code."""
    from ..errors import UsageError
    from ..evaluation import check_report_folder, run_evaluation, write_report
    from ..evaluation.protocol import unique_names
    from ..evaluation.report import REPORT_FILES, figure_names

    if not args.references and not args.real:
        raise UsageError("give --references (full reference) and/or --real (no reference)")
    # before the work, not after: the report's files and every figure it may write
    images = unique_names(args.references or [], args.real or [])
    check_report_folder(args.out, overwrite=args.overwrite, names=[
        *REPORT_FILES, *figure_names(images, scatter=bool(args.references and args.speed_size))])
    params: dict[str, dict[str, str]] = {}
    for method, name, value in args.param:
        params.setdefault(method, {})[name] = value
    peers = args.peers if args.peers in ("auto", "none") else _names(args.peers)
    peer_python: dict[str, str] = {}
    for peer, python in args.peer_python:
        if peer.removeprefix("peer:") in peer_python:
            raise UsageError(f"--peer-python given twice for {peer!r}")
        peer_python[peer.removeprefix("peer:")] = python

    progress = Progress("evaluating", unit="run", quiet=args.quiet)

    try:
        result = run_evaluation(
            references=args.references, real=args.real, methods=args.methods, params=params,
            peers=peers, peer_python=peer_python, looks=args.looks, draws=args.draws, seed=args.seed, kind=args.kind,
            complex_layout=args.complex_layout, speed_size=args.speed_size, memory=args.memory,
            enl_window=args.enl_window, enl_count=args.enl_count, crop=args.crop,
            progress=progress,
        )
    finally:
        progress.close()
    paths = write_report(result, args.out, overwrite=args.overwrite)
    if not args.quiet:
        for note in result.notes:
            sys.stderr.write(f"note: {note}\n")
        if result.full_reference is not None:
            table = result.full_reference.table("psnr")
            ranked = sorted(zip(table.columns, table.mean[-1]), key=lambda item: -item[1])
            summary = ", ".join(f"{name} {value:.2f}" for name, value in ranked)
            sys.stderr.write(f"average PSNR (dB): {summary}\n")
        sys.stderr.write(f"wrote {paths['markdown']}, {paths['html']}, {paths['csv']}, "
                         f"{paths['json']}\n")
    return 0
