"""PNG figures of the evaluation report, drawn with PIL only.

* grids of crops on one shared dB stretch (the stretch of :mod:`sardespeckle.io.preview`: grey
  ``255 · clip((10 log10 I − lo) / (hi − lo), 0, 1)``, ``lo, hi`` = 1st and 99th percentiles of
  the first panel's dB values), so that outputs compare with each other and with their input;
* grids of ratio images on the stretch of pure speckle: ``lo, hi`` = the 1 % and 99 % quantiles
  of ``L``-look speckle in dB, so that an ideal ratio image fills the grey range evenly and any
  structure, or a darker/brighter mean, stands out;
* a scatter plot (speed against quality).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from sardespeckle.io.preview import MASKED_COLOUR

__all__ = ["db_stretch", "ratio_stretch", "save_grid", "save_scatter"]

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GAP = 6
_PAD = 4
_FAMILY_COLOURS = {
    "filter": (31, 119, 180),
    "cnn": (214, 39, 40),
    "peer": (44, 160, 44),
}


def _font(size: int = 13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _fit(text: str, font, width: float) -> str:
    """``text`` shortened with ".." to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while len(text) > 1 and font.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".."


def _to_db(intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(intensity, dtype=np.float64)
    valid = np.isfinite(values) & (values > 0)
    db = np.full(values.shape, np.nan)
    db[valid] = 10.0 * np.log10(values[valid])
    return db, valid


def db_stretch(intensity: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
               ) -> tuple[float, float]:
    """``(lo, hi)`` in dB: percentiles of the valid dB values of ``intensity``."""
    db, valid = _to_db(intensity)
    if not valid.any():
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(db[valid], percentiles))
    return (low, high) if high > low else (low, low + 1.0)


def ratio_stretch(looks: float, quantiles: tuple[float, float] = (0.01, 0.99)
                  ) -> tuple[float, float]:
    """``(lo, hi)`` in dB: quantiles of ``L``-look intensity speckle ``Gamma(L, 1/L)``."""
    from scipy import stats

    low, high = stats.gamma.ppf(quantiles, a=looks, scale=1.0 / looks)
    return 10.0 * math.log10(low), 10.0 * math.log10(high)


def _grey_rgb(image: np.ndarray, low: float, high: float, zoom: int) -> np.ndarray:
    db, valid = _to_db(image)
    grey = np.clip((np.where(valid, db, low) - low) / (high - low), 0.0, 1.0)
    rgb = np.repeat(np.round(grey * 255.0).astype(np.uint8)[:, :, None], 3, axis=2)
    rgb[~valid] = MASKED_COLOUR
    if zoom > 1:
        rgb = rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)
    return rgb


def save_grid(
    images: Sequence[np.ndarray], titles: Sequence[str], path: str | os.PathLike, *,
    stretch: tuple[float, float], columns: int = 4, zoom: int = 2, caption: str | None = None,
) -> str:
    """Write intensity images as a titled grid PNG, all on the dB ``stretch`` ``(lo, hi)``.

    NaN and non-positive pixels are drawn in the masked colour of the previews. Titles and
    caption should be ASCII: PIL's default font has no glyph for many other characters.
    """
    from PIL import Image, ImageDraw

    if len(images) != len(titles) or not images:
        raise ValueError(f"expected as many titles as images (≥ 1), got {len(titles)} and "
                         f"{len(images)}")
    low, high = stretch
    tiles = [_grey_rgb(image, low, high, zoom) for image in images]
    font = _font()
    top, bottom = font.getbbox("Ag")[1::2]
    band = int(bottom - top) + 2 * _PAD + 2
    cell_h = max(tile.shape[0] for tile in tiles)
    cell_w = max(tile.shape[1] for tile in tiles)
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    caption_h = band if caption else 0
    caption_w = int(font.getlength(caption)) + 2 * _PAD if caption else 0
    width = max(columns * cell_w + (columns - 1) * _GAP, caption_w)
    height = rows * (band + cell_h) + (rows - 1) * _GAP + caption_h
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    for index, (tile, title) in enumerate(zip(tiles, titles)):
        row, col = divmod(index, columns)
        x = col * (cell_w + _GAP)
        y = row * (band + cell_h + _GAP)
        draw.text((x + _PAD, y + _PAD), _fit(str(title), font, cell_w - 2 * _PAD), fill=_BLACK,
                  font=font)
        canvas.paste(Image.fromarray(tile, mode="RGB"), (x, y + band))
    if caption:
        draw.text((_PAD, height - caption_h + _PAD), caption, fill=_BLACK, font=font)
    pixels = np.asarray(canvas)
    if np.array_equal(pixels[..., 0], pixels[..., 1]) and \
            np.array_equal(pixels[..., 0], pixels[..., 2]):
        canvas = canvas.convert("L")  # no masked pixel: a grey PNG is a third of the size
    canvas.save(os.fspath(path), format="PNG", optimize=True)
    return os.fspath(path)


def _nice_step(span: float, target: int = 6) -> float:
    raw = span / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10.0 * magnitude


def _format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def save_scatter(
    points: Sequence[tuple[str, float, float, str]], path: str | os.PathLike, *,
    x_label: str, y_label: str, title: str, log_x: bool = True,
    size: tuple[int, int] = (760, 480),
) -> str:
    """Write a labelled scatter plot PNG of ``(label, x, y, family)`` points.

    ``family`` picks the colour (filter blue, cnn red, peer green). With ``log_x`` the x axis
    is logarithmic, with ticks at 1, 2 and 5 times the powers of ten.
    """
    from PIL import Image, ImageDraw

    points = [p for p in points if math.isfinite(p[1]) and math.isfinite(p[2]) and
              (p[1] > 0 or not log_x)]
    width, height = size
    left, right, top, bottom = 70, 24, 36, 56
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    draw.text((left, 10), title, fill=_BLACK, font=font)
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=_BLACK)
    if not points:
        draw.text((left + 10, top + 10), "no data", fill=_BLACK, font=font)
        canvas.save(os.fspath(path), format="PNG")
        return os.fspath(path)

    xs = np.array([p[1] for p in points], dtype=float)
    ys = np.array([p[2] for p in points], dtype=float)
    if log_x:
        x_low = 10.0 ** math.floor(math.log10(xs.min()))
        x_high = 10.0 ** math.ceil(math.log10(xs.max()))
        if x_high <= x_low:
            x_high = x_low * 10.0
        to_x = lambda v: left + plot_w * (math.log10(v) - math.log10(x_low)) / (  # noqa: E731
            math.log10(x_high) - math.log10(x_low))
        x_ticks = [m * 10.0 ** k for k in range(int(round(math.log10(x_low))),
                                                int(round(math.log10(x_high))) + 1)
                   for m in (1, 2, 5) if x_low <= m * 10.0 ** k <= x_high]
    else:
        span = float(xs.max() - xs.min()) or 1.0
        step = _nice_step(span)
        x_low = math.floor((xs.min() - 0.05 * span) / step) * step
        x_high = math.ceil((xs.max() + 0.05 * span) / step) * step
        to_x = lambda v: left + plot_w * (v - x_low) / (x_high - x_low)  # noqa: E731
        x_ticks = list(np.arange(x_low, x_high + step / 2, step))
    y_span = float(ys.max() - ys.min()) or 1.0
    y_step = _nice_step(y_span, 5)
    y_low = math.floor((ys.min() - 0.08 * y_span) / y_step) * y_step
    y_high = math.ceil((ys.max() + 0.08 * y_span) / y_step) * y_step
    to_y = lambda v: top + plot_h * (1.0 - (v - y_low) / (y_high - y_low))  # noqa: E731

    grid = (225, 225, 225)
    for tick in x_ticks:
        x = to_x(tick)
        draw.line([x, top + 1, x, top + plot_h - 1], fill=grid)
        draw.line([x, top + plot_h, x, top + plot_h + 4], fill=_BLACK)
        text = _format_tick(tick)
        w = draw.textlength(text, font=font)
        draw.text((x - w / 2, top + plot_h + 6), text, fill=_BLACK, font=font)
    for tick in np.arange(y_low, y_high + y_step / 2, y_step):
        y = to_y(tick)
        draw.line([left + 1, y, left + plot_w - 1, y], fill=grid)
        draw.line([left - 4, y, left, y], fill=_BLACK)
        text = _format_tick(round(float(tick), 6))
        w = draw.textlength(text, font=font)
        draw.text((left - 8 - w, y - 7), text, fill=_BLACK, font=font)
    w = draw.textlength(x_label, font=font)
    draw.text((left + plot_w / 2 - w / 2, height - 22), x_label, fill=_BLACK, font=font)
    label = Image.new("RGB", (int(draw.textlength(y_label, font=font)) + 4, 18), _WHITE)
    ImageDraw.Draw(label).text((2, 1), y_label, fill=_BLACK, font=font)
    label = label.rotate(90, expand=True)
    canvas.paste(label, (6, int(top + plot_h / 2 - label.size[1] / 2)))

    placed: list[tuple[float, float, float, float]] = []
    for name, x_value, y_value, family in points:
        x, y = to_x(x_value), to_y(y_value)
        colour = _FAMILY_COLOURS.get(family, (100, 100, 100))
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour, outline=_BLACK)
        w = draw.textlength(name, font=font)
        for dx, dy in ((7, -8), (7, 2), (-7 - w, -8), (-7 - w, 2), (-w / 2, -22), (-w / 2, 6)):
            box = (x + dx, y + dy, x + dx + w, y + dy + 14)
            inside = left < box[0] and box[2] < left + plot_w and top < box[1] and \
                box[3] < top + plot_h
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and
                                  b[1] < box[3] for b in placed):
                break
        placed.append(box)
        draw.text(box[:2], name, fill=_BLACK, font=font)
    canvas.save(os.fspath(path), format="PNG")
    return os.fspath(path)
