"""``sardespeckle covariance``: MuLoG on covariance fields (dual-pol, InSAR, PolSAR) from the
command line. Parsing and messages only; :mod:`sardespeckle.covariance` reads and writes the
files, :func:`sardespeckle.mulog.mulog_covariance` does the work."""

from __future__ import annotations

import argparse
import sys
import time

from ._args import positive_float, positive_float_or_auto, positive_int

EXIT_OK = 0


def add_covariance_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``covariance`` to the main parser's sub-parsers."""
    parser = subparsers.add_parser(
        "covariance", help="despeckle dual-pol, InSAR or PolSAR covariance fields (MuLoG)",
        description=(
            "Despeckle a field of D×D covariance matrices with MuLoG (matrix-log ADMM, Wishart "
            "likelihood). INPUT is one .npy field (rows, cols, D, D) complex, one .npy stack of "
            "D single-look complex channels (rows, cols, D), one GeoTIFF of D complex bands or "
            "2·D real bands in (real, imaginary) pairs (SNAP's i_VV q_VV i_VH q_VH), or D files "
            "of co-registered single-look complex channels (.npy or GeoTIFF; e.g. VV VH, or the "
            "two images of an interferometric pair), whose covariance k·kᴴ is formed (one look). OUTPUT is .npy "
            "(rows, cols, D, D) complex64 or a GeoTIFF of D² float32 bands (C11…CDD, then Re and "
            "Im of each Cij, i<j) with the first GeoTIFF input's georeferencing. The whole "
            "field is held in memory. See docs/mulog.md."),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="covariance .npy, channel-stack .npy or GeoTIFF, or 2-4 channel "
                             "files")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                        help="output .npy or .tif/.tiff (never an input)")
    parser.add_argument("--looks", type=positive_float, default=None, metavar="L",
                        help="looks of the field (default: 1 when built from channels; required "
                             "for a covariance .npy)")
    parser.add_argument("--denoiser", default="bm3d", metavar="NAME|PATH",
                        help="bm3d (default; pip install 'sardespeckle[bm3d]'), dncnn-sar, "
                             "dncnn-natural, dncnn-sar-blind, dncnn-natural-blind, or a Gaussian "
                             "DnCNN weights file")
    parser.add_argument("--iterations", type=positive_int, default=6, metavar="T",
                        help="ADMM iterations (default: %(default)s)")
    parser.add_argument("--lam", type=positive_float_or_auto, default=None, metavar="auto|X",
                        help="prior weight λ (default: auto, the denoiser's own; 1 for bm3d)")
    parser.add_argument("--preview", default=None, metavar="PNG",
                        help="also write input | output side by side: Pauli RGB for D = 3; "
                             "for D = 2 an RGB of C11, C22, C11/C22 (dB) over the phase of C12 "
                             "(the interferogram of an InSAR pair)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def run_covariance_command(args: argparse.Namespace) -> int:
    """Run ``covariance``; errors propagate as :mod:`sardespeckle.errors` types."""
    import os

    import numpy as np

    from sardespeckle.covariance import (check_memory, fill_nodata, nodata_mask, preview_rows,
                                         read_covariance_input, save_side_by_side_png,
                                         write_covariance)
    from sardespeckle.errors import UsageError
    from sardespeckle.io.base import check_output_path
    from sardespeckle.io.preview import check_png_path
    from sardespeckle.mulog import mulog_covariance
    from sardespeckle.mulog.admm import resolve_prior_weight
    from sardespeckle.mulog.method import (denoiser_from_name, denoiser_weights_id,
                                           resolve_mulog_precision)

    check_output_path(args.output, inputs=tuple(args.inputs), overwrite=args.overwrite)
    if args.preview is not None:
        check_png_path(args.preview, args.overwrite)
    field, like, single_look = read_covariance_input(args.inputs)
    if args.looks is None and not single_look:
        raise UsageError("a covariance field's looks are not in the file: pass --looks L")
    looks = 1.0 if args.looks is None else args.looks
    check_memory(field.shape)
    invalid = nodata_mask(field)
    field = fill_nodata(field, invalid)
    precision = resolve_mulog_precision("auto", args.denoiser)
    denoiser = denoiser_from_name(args.denoiser, precision=precision)
    lam = resolve_prior_weight(denoiser, looks, args.lam)
    rows, cols, dim = field.shape[0], field.shape[1], field.shape[-1]
    if not args.quiet:
        sys.stderr.write(f"{rows}×{cols} field of {dim}×{dim} matrices, L = {looks:g}, "
                         f"denoiser {args.denoiser} ({precision}), λ = {lam:.3g}, "
                         f"{args.iterations} iterations"
                         + (f", {int(invalid.sum())} missing pixels (written as NaN)"
                            if invalid.any() else "") + "\n")
    started = time.perf_counter()

    live = sys.stderr.isatty()

    def progress(iterate) -> None:
        if not args.quiet:
            sys.stderr.write(f"{chr(13) if live else ''}iteration {iterate.k}/{iterate.iterations}"
                             + ("" if live else "\n"))
            sys.stderr.flush()

    out = mulog_covariance(field, looks=looks, denoiser=denoiser, iterations=args.iterations,
                           lam=lam, callback=progress, valid=~invalid)
    elapsed = time.perf_counter() - started
    out[invalid] = complex(np.nan, np.nan)
    tags = {"method": "mulog-covariance", "denoiser": args.denoiser, "looks": looks,
            "iterations": args.iterations, "lam": lam, "precision": precision,
            "inputs": [os.path.basename(p) for p in args.inputs]}
    weights = denoiser_weights_id(args.denoiser)
    if weights is not None:
        tags["weights"] = weights
    write_covariance(args.output, out, like=like, tags=tags, inputs=args.inputs,
                     overwrite=args.overwrite)
    if args.preview is not None:
        shown = fill_nodata(out, invalid)  # previews draw missing pixels like their neighbours
        save_side_by_side_png(args.preview, preview_rows(field, shown), overwrite=args.overwrite)
    if not args.quiet:
        sys.stderr.write(f"{chr(13) if live else ''}wrote {args.output} in {elapsed:.1f} s"
                         + (f" and {args.preview}" if args.preview else "") + "\n")
    return EXIT_OK
