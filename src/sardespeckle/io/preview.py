"""Quick-look PNGs: panels side by side on one shared dB stretch.

SAR intensities span several decades and are speckled, so a linear stretch shows a few bright
points on black. The panels are shown in dB (a log scale), all with the same grey levels, taken
from the percentiles of the first panel (the input, usually): a despeckled result can then be
compared with its input by eye, and a brighter image looks brighter.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from sardespeckle.errors import InvalidInputError, OutputExistsError, UsageError
from sardespeckle.io.base import OVERWRITE_HINT, atomic_output, check_output_folder
from sardespeckle.io.kinds import to_intensity

MASKED_COLOUR = (40, 60, 140)
"""RGB of masked pixels (dark blue: no grey level can be mistaken for it)."""

GAP = 8
"""Pixels of white between panels."""

_BACKGROUND = (255, 255, 255)
_TEXT_COLOUR = (0, 0, 0)
_TITLE_PADDING = 3


def _block_mean(intensity: np.ndarray, valid: np.ndarray, factor: int):
    """Mean of the valid intensities in ``factor × factor`` blocks; a block is valid when at
    least one of its pixels is."""
    if factor == 1:
        return intensity.astype(np.float64), valid
    rows, cols = intensity.shape
    out_rows, out_cols = -(-rows // factor), -(-cols // factor)
    values = np.zeros((out_rows * factor, out_cols * factor))
    counts = np.zeros(values.shape)
    values[:rows, :cols] = np.where(valid, intensity, 0.0)
    counts[:rows, :cols] = valid
    shape = (out_rows, factor, out_cols, factor)
    total = values.reshape(shape).sum(axis=(1, 3))
    count = counts.reshape(shape).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count > 0


def save_preview(
    panels: Sequence[np.ndarray],
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    kind: str | Sequence[str] = "intensity",
    percentiles: tuple[float, float] = (1.0, 99.0),
    max_size: int = 1024,
    overwrite: bool = False,
) -> str:
    """Write panels side by side as an 8-bit PNG, on one shared dB stretch.

    Parameters
    ----------
    panels : sequence of ndarray
        2-D images ``(rows, cols)``; NaN, zero and non-finite pixels are masked.
    path : path-like
        A ``.png`` file, written atomically.
    titles : sequence of str, optional
        One per panel, drawn in a white band above it (PIL's default font).
    kind : str or sequence of str
        What the panels hold: ``"intensity"``, ``"amplitude"``, ``"db"`` or ``"complex"``, one
        for all or one per panel.
    percentiles : (float, float)
        Percentiles of the first panel's valid dB values mapped to black and white (of all
        panels when the first has no valid pixel); values beyond are clipped.
    max_size : int
        Longest side of a displayed panel. Larger panels are reduced by an integer factor,
        the same for all panels, taking the mean intensity of each block (the mean of the valid
        pixels; a block without any is masked). Panels whose longest side is under
        :data:`MIN_PANEL_SIDE` are enlarged by an integer factor (each pixel a square), so that
        a tiny image and its title stay readable.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Grey level ``255 * clip((10 log10 I - lo) / (hi - lo), 0, 1)`` with ``lo, hi`` the
    percentiles. Masked pixels are drawn in :data:`MASKED_COLOUR`. A panel drawn in one flat
    grey (uniform, or :data:`CLIPPED_SHARE` of its pixels beyond the black or white level: a
    panel of another kind or scale than the first) gets a ``UserWarning`` saying so.
    """
    from PIL import Image, ImageDraw, ImageFont

    path = check_png_path(path, overwrite)
    panels = [np.asarray(panel) for panel in panels]
    if not panels:
        raise InvalidInputError("expected at least one panel, got none")
    for index, panel in enumerate(panels):
        if panel.ndim != 2 or panel.size == 0:
            raise InvalidInputError(
                f"expected 2-D non-empty panels (rows, cols), got shape {panel.shape} for "
                f"panel {index}"
            )
    kinds = [kind] * len(panels) if isinstance(kind, str) else list(kind)
    if titles is not None:
        titles = list(titles)
    for name, values in (("kinds", kinds), ("titles", titles)):
        if values is not None and len(values) != len(panels):
            raise UsageError(f"expected {len(panels)} {name}, got {len(values)}")
    if not (0 <= percentiles[0] < percentiles[1] <= 100):
        raise UsageError(f"expected percentiles 0 <= low < high <= 100, got {percentiles}")
    if int(max_size) < 1:
        raise UsageError(f"expected a positive max_size, got {max_size}")

    factor = max(1, -(-max(max(panel.shape) for panel in panels) // int(max_size)))
    decibels, masks = [], []
    for panel, panel_kind in zip(panels, kinds):
        intensity, valid = to_intensity(panel, panel_kind)
        mean, valid = _block_mean(intensity, valid, factor)
        with np.errstate(divide="ignore", invalid="ignore"):
            decibels.append(10.0 * np.log10(mean))
        masks.append(valid)

    longest = max(max(db.shape) for db in decibels)
    enlarge = max(1, min(MIN_PANEL_SIDE, int(max_size)) // longest)
    if enlarge > 1:  # a tiny image: its pixels as squares, so the panel (and title) can be read
        decibels = [np.repeat(np.repeat(db, enlarge, 0), enlarge, 1) for db in decibels]
        masks = [np.repeat(np.repeat(mask, enlarge, 0), enlarge, 1) for mask in masks]

    reference = decibels[0][masks[0]]
    if reference.size == 0:
        reference = np.concatenate([db[mask] for db, mask in zip(decibels, masks)])
    if reference.size:
        low, high = np.percentile(reference, percentiles)
    else:
        low, high = 0.0, 1.0
    if not high > low:
        high = low + 1.0
    for note in _stretch_notes(decibels, masks, low, high, titles):
        warnings.warn(note, UserWarning, stacklevel=2)

    font = ImageFont.load_default()
    band = 0
    if titles is not None:
        top, bottom = font.getbbox("Ag")[1::2]
        band = int(bottom - top) + 2 * _TITLE_PADDING + 1
    width = sum(db.shape[1] for db in decibels) + GAP * (len(decibels) - 1)
    height = band + max(db.shape[0] for db in decibels)
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    left = 0
    for index, (db, valid) in enumerate(zip(decibels, masks)):
        grey = np.clip((np.where(valid, db, low) - low) / (high - low), 0.0, 1.0)
        grey = np.round(grey * 255.0).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        rgb[~valid] = MASKED_COLOUR
        canvas.paste(Image.fromarray(rgb, mode="RGB"), (left, band))
        if titles is not None:
            room = db.shape[1] + GAP - 2 * _TITLE_PADDING  # never over the next panel's title
            draw.text((left + _TITLE_PADDING, _TITLE_PADDING),
                      _fit_title(str(titles[index]), room, font), fill=_TEXT_COLOUR, font=font)
        left += db.shape[1] + GAP

    return write_png(path, canvas, overwrite=overwrite)


#: Panels whose longest side is shorter are enlarged by an integer factor (nearest neighbour).
MIN_PANEL_SIDE = 256

#: Share of a panel's valid pixels at one end of the stretch that makes it a flat black or
#: white panel, worth a note (a panel of another kind or scale than the first one, most often).
CLIPPED_SHARE = 0.99


def _stretch_notes(decibels, masks, low: float, high: float, titles) -> list[str]:
    """Notes on panels that the shared stretch draws in one flat grey: a uniform panel, or one
    whose valid pixels are nearly all beyond the first panel's black or white level."""
    notes = []
    for index, (db, valid) in enumerate(zip(decibels, masks)):
        values = db[valid]
        if values.size == 0:  # drawn in the masked colour: the callers say so
            continue
        name = f"panel {index + 1}" + (f" ({titles[index]})" if titles is not None else "")
        median = float(np.median(values))
        if np.all(values == values[0]):
            notes.append(f"preview: {name} is uniform ({median:.1f} dB): drawn in one grey")
            continue
        for share, level, colour in ((np.mean(values <= low), low, "black"),
                                     (np.mean(values >= high), high, "white")):
            if share >= CLIPPED_SHARE:
                notes.append(
                    f"preview: {name} is {100 * share:.0f} % at the shared stretch's {colour} "
                    f"level ({level:.1f} dB, set by the first panel; its median is "
                    f"{median:.1f} dB): drawn {colour}; check its kind (amplitude, intensity, "
                    "dB) or preview it alone")
    return notes


def _fit_title(title: str, width: float, font) -> str:
    """``title``, cut and ended with "..." when wider than ``width`` pixels in ``font``."""
    if font.getlength(title) <= width:
        return title
    while title and font.getlength(title + "...") > width:
        title = title[:-1]
    return title + "..." if font.getlength(title + "...") <= width else ""


def write_png(path: str, image, *, overwrite: bool) -> str:
    """Write a PIL image or a uint8 array as a PNG, atomically (temporary file, then rename)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    with atomic_output(path, overwrite=overwrite) as temp:
        image.save(temp, format="PNG")
    return path


def check_png_path(path: str | os.PathLike, overwrite: bool) -> str:
    """``path`` as a string if it is a usable PNG output; UsageError / OutputExistsError."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".png":
        raise UsageError(f"expected a preview ending in .png, got {os.path.basename(path)!r}")
    check_output_folder(path)
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(f"preview {path} exists; {OVERWRITE_HINT}")
    return path


def read_preview_panel(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    band: int = 1,
    complex_layout: str | None = None,
    max_size: int = 2048,
) -> np.ndarray:
    """Load a raster as intensity for :func:`save_preview`, decimated when large.

    Parameters
    ----------
    path : path-like
        Anything :func:`sardespeckle.io.open_source` opens.
    kind, band, complex_layout
        As for :func:`sardespeckle.io.open_source`.
    max_size : int
        Longest side returned: larger rasters keep every n-th row and column (a decimated read,
        not an average; :func:`save_preview` averages further down to its own ``max_size``).

    Returns
    -------
    ndarray of float32
        Intensity ``(rows, cols)``, NaN at masked pixels: pass it with ``kind="intensity"``.
    """
    from sardespeckle.io.raster import open_source

    with open_source(path, kind=kind, band=band, complex_layout=complex_layout) as source:
        raw = source.read_decimated(max_size)
        intensity, valid = to_intensity(raw, source.kind, nodata=source.nodata)
    intensity[~valid] = np.nan
    return intensity
