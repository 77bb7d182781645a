"""``sardespeckle covariance``: MuLoG on covariance fields (dual-pol, InSAR, PolSAR) from the
command line. Parsing and messages only;
:func:`sardespeckle.covariance.despeckle_covariance_files` does the work."""

from __future__ import annotations

import argparse
import sys

from ._args import (
    false_alarm_or_off,
    positive_float_or_auto,
    positive_float_or_auto_word,
    positive_int,
)

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
            "two images of an interferometric pair), whose covariance k·kᴴ is formed (one "
            "look), or one GeoTIFF of D² real bands whose descriptions name the matrix elements "
            "(this command's output; SNAP's C11, C12_real, C12_imag…, or T for coherency). "
            "OUTPUT is .npy "
            "(rows, cols, D, D) complex64 or a GeoTIFF of D² float32 bands (C11…CDD, then Re and "
            "Im of each Cij, i<j; T… for a coherency input) with the first GeoTIFF input's georeferencing. The whole "
            "field is held in memory. See docs/mulog.md."),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="covariance .npy or GeoTIFF, channel-stack .npy or GeoTIFF, or 2-4 "
                             "channel files")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                        help="output .npy or .tif/.tiff (never an input)")
    parser.add_argument("--looks", type=positive_float_or_auto_word, default=None, metavar="L|auto",
                        help="looks of the field (default: 1 when built from channels; required "
                             "for a stored field, .npy or GeoTIFF); auto: measured on the "
                             "field's most homogeneous areas, as run does")
    parser.add_argument("--denoiser", default="bm3d", metavar="NAME|PATH",
                        help="bm3d (default; pip install 'sardespeckle[bm3d]'), dncnn-sar, "
                             "dncnn-natural, dncnn-sar-blind, dncnn-natural-blind, registered "
                             "Gaussian weights by name, or a Gaussian DnCNN weights file")
    parser.add_argument("--iterations", type=positive_int, default=6, metavar="T",
                        help="ADMM iterations (default: %(default)s)")
    parser.add_argument("--lam", type=positive_float_or_auto, default=None, metavar="auto|X",
                        help="prior weight λ (default: auto, the denoiser's own; 1 for bm3d)")
    parser.add_argument("--decorrelate", choices=("auto", "none", "subsample"), default="auto",
                        help="subsample: despeckle the four polyphase components (every other "
                             "row and column) separately and average them back, for single-look "
                             "channels whose speckle is spatially correlated (SLC); auto "
                             "(default): subsample when the field is single-look and its "
                             "measured speckle correlation exceeds 0.1, as run does")
    parser.add_argument("--keep-targets", type=false_alarm_or_off, default=None, metavar="PFA",
                        help="keep the input matrix of strong scatterers (a diagonal channel "
                             "brighter than speckle allows over its despeckled surroundings, at "
                             "this false-alarm rate, e.g. 1e-5; 0 or off: off, the default): "
                             "MuLoG's denoisers dim them, and scenes full of them (cities) lose "
                             "total power; rates above about 1e-4 keep speckle peaks too and "
                             "brighten the output")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where a DnCNN denoiser runs (default auto: CUDA when available; "
                             "BM3D runs on the CPU)")
    parser.add_argument("--preview", default=None, metavar="PNG",
                        help="also write input | output side by side: Pauli RGB for D = 3; "
                             "for D = 2 an RGB of C11, C22, C11/C22 (dB) over the phase of C12 "
                             "(the interferogram of an InSAR pair), faded where the coherence "
                             "is low; D = 2 or 3 only (refused "
                             "before any work for D = 4)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def run_covariance_command(args: argparse.Namespace) -> int:
    """Run ``covariance``; errors propagate as :mod:`sardespeckle.errors` types."""
    from sardespeckle.covariance import (
        despeckle_covariance_files,
        despeckled_input_notes,
        unused_band_notes,
    )

    live = sys.stderr.isatty()
    if not args.quiet:  # before the work, not after it
        for note in unused_band_notes(args.inputs) + despeckled_input_notes(args.inputs):
            sys.stderr.write(f"note: {note}\n")

    def progress(iterate) -> None:
        if not args.quiet:
            sys.stderr.write(f"{chr(13) if live else ''}iteration {iterate.k}/{iterate.iterations}"
                             + ("" if live else "\n"))
            sys.stderr.flush()

    def on_plan(plan: dict) -> None:  # what was decided, before the work
        if args.quiet:
            return
        if plan["looks_note"]:
            sys.stderr.write(f"note: {plan['looks_note']}\n")
        if plan["looks_source"] == "measured":
            sys.stderr.write(f"looks: {plan['looks']:g} (measured)\n")
        if args.decorrelate == "auto":
            sys.stderr.write(f"note: decorrelate={plan['decorrelate']} "
                             f"({plan['decorrelate_reason']})"
                             + ("; MuLoG runs on each of its 4 polyphase components"
                                if plan["decorrelate"] == "subsample" else "") + "\n")

    report = despeckle_covariance_files(
        args.inputs, args.output, looks=args.looks, denoiser=args.denoiser,
        iterations=args.iterations, lam=args.lam, decorrelate=args.decorrelate,
        preview=args.preview, overwrite=args.overwrite, progress=progress, device=args.device,
        on_plan=on_plan, keep_targets=args.keep_targets)
    if not args.quiet:
        sys.stderr.write(
            f"{chr(13) if live else ''}{report['rows']}×{report['cols']} field of "
            f"{report['dim']}×{report['dim']} matrices, L = {report['looks']:g}, denoiser "
            f"{report['denoiser']} ({report['precision']}, {report['device']}), "
            f"λ = {report['lam']:.3g}, "
            f"{report['iterations']} iteration{'' if report['iterations'] == 1 else 's'}"
            + (f", {report['missing']} missing pixels (written as NaN)" if report["missing"]
               else "")
            + (f", {report['kept_targets']} strong-scatterer pixels kept"
               if report["kept_targets"] is not None else "")
            + f": {report['seconds']:.1f} s\n"
            f"wrote {report['output']}" + (f" and {report['preview']}" if report["preview"]
                                            else "") + "\n")
        if report["kept_rank_deficient"]:
            sys.stderr.write(
                f"note: {report['kept_rank_deficient']} of the {report['kept_targets']} kept "
                f"pixels hold rank-deficient input matrices ({report['looks']:g} look(s), "
                f"{report['dim']} channels): coherence 1 by construction there (a point "
                "target's own measurement, not an estimate)\n")
    return EXIT_OK
