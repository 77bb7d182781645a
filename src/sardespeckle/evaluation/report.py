"""Write an :class:`~sardespeckle.evaluation.protocol.EvaluationResult` to a folder.

Files written (names fixed, so that a report can be regenerated in place with ``overwrite``):

* ``report.md``: tables and figures (PNG files beside it);
* ``report.html``: the same, self-contained (figures embedded as base64 PNG);
* ``results.json``: every number, the settings, the environment, the seeds;
* ``results.csv``: every number in long format
  (``protocol, image, column, draw, metric, value``);
* ``crops_<image>.png``, ``ratio_<image>.png``, ``speed_quality.png``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import html
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sardespeckle.errors import OutputExistsError, UsageError
from sardespeckle.io.base import OVERWRITE_HINT

from .protocol import AVERAGE, NOISY, WARMUP_SIDE, EvaluationResult, SummaryTable
from .render import db_stretch, ratio_stretch, save_grid, save_scatter

__all__ = ["write_report"]

#: Layout of a figure grid: panels per row, pixel zoom in the PNG files, and the extra zoom
#: the HTML report displays them at (nearest neighbour; keeps the files small).
GRID_COLUMNS, GRID_ZOOM, HTML_ZOOM = 4, 1, 2

# metric -> (title, formatter, higher is better: True / False / None for "no ranking")
_FULL_METRICS: dict[str, tuple[str, Callable[[float], str], bool | None]] = {
    "psnr": ("PSNR (dB) on amplitude, peak = 99th percentile of the reference",
             lambda v: f"{v:.2f}", True),
    "ssim": ("SSIM on amplitude (7 × 7 uniform window, data range = the same peak)",
             lambda v: f"{v:.3f}", True),
    "edge": ("Edge-preservation index β (correlation of Laplacians of Gaussian, σ = 1, of "
             "log-intensity)",
             lambda v: f"{v:.3f}", True),
}
_REAL_METRICS: dict[str, tuple[str, Callable[[float], str]]] = {
    "enl": ("ENL on the homogeneous areas of the input (higher = smoother; input ≈ L)",
            lambda v: f"{v:.2f}"),
    "ratio_mean": ("Mean of the ratio image input / output (ideal 1)", lambda v: f"{v:.3f}"),
    "ratio_var": ("Variance of the ratio image (ideal 1/L)", lambda v: f"{v:.3f}"),
    "structure": ("Ratio-image structure M = r_ENL,μ + δh (Gomez et al. 2017; ideal 0)",
                  lambda v: f"{v:.2f}"),
    "first_order": ("First-order residual r_ENL,μ of the structure measure (ideal 0)",
                    lambda v: f"{v:.3f}"),
    "second_order": ("Second-order residual δh of the structure measure, % (ideal 0)",
                     lambda v: f"{v:.2f}"),
    "bias": ("Radiometric bias on the homogeneous areas, mean(output) / mean(input) − 1 (%)",
             lambda v: f"{100 * v:+.1f}"),
}

#: Unit of each value in results.csv / results.json ("1": a pure number). The bias is stored
#: as a fraction; the report shows it in %.
UNITS: dict[str, str] = {
    "psnr": "dB", "ssim": "1", "edge": "1", "enl": "looks", "ratio_mean": "1", "ratio_var": "1",
    "structure": "1", "first_order": "1", "second_order": "%", "bias": "fraction",
    "seconds": "s", "cpu_seconds": "s", "megapixels_per_second": "MP/s",
    "megapixels_per_cpu_second": "MP/s", "peak_memory_mib": "MiB",
}
_SPEED_METRICS = {
    "seconds": "Wall time of one run on the simulated speed scene (the shortest of the timed runs)",
    "cpu_seconds": "CPU time of that run (all threads)",
    "megapixels_per_second": "Pixels of the speed scene per wall second, in millions",
    "megapixels_per_cpu_second": "Pixels of the speed scene per CPU second, in millions",
    "peak_memory_mib": "Peak memory of the run (the --memory probe)",
}


def _metric_definitions() -> dict[str, dict[str, str]]:
    """``{metric: {"unit", "definition"}}`` for results.json."""
    titles = {name: spec[0] for name, spec in {**_FULL_METRICS, **_REAL_METRICS}.items()}
    titles["bias"] = ("Radiometric bias on the homogeneous areas, mean(output) / mean(input) − 1 "
                      "(a fraction; the report shows %)")
    titles.update(_SPEED_METRICS)
    return {name: {"unit": UNITS[name], "definition": title} for name, title in titles.items()}


# --------------------------------------------------------------------------------------------
# a tiny document model rendered to Markdown and to HTML
# --------------------------------------------------------------------------------------------


class _Document:
    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]],
              numeric: Sequence[bool] | None = None) -> None:
        numeric = list(numeric) if numeric is not None else [False] + [True] * (len(headers) - 1)
        self.blocks.append(("table", list(headers), [list(r) for r in rows], numeric))

    def image(self, filename: str, alt: str, zoom: int = 1) -> None:
        """A PNG beside the report; the HTML shows it ``zoom`` times larger."""
        self.blocks.append(("img", filename, alt, zoom))

    def markdown(self) -> str:
        out: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "p":
                out.append(block[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "code":
                out.append("```\n" + block[1] + "\n```")
            elif kind == "table":
                headers, rows, numeric = block[1:]
                rule = "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"
                out.append("\n".join([_md_row(headers), rule, *(_md_row(r) for r in rows)]))
            elif kind == "img":
                out.append(f"![{block[2]}]({block[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path, title: str) -> str:
        body: list[str] = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                body.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "ul":
                items = "".join(f"<li>{_inline(i)}</li>" for i in block[1])
                body.append(f"<ul>{items}</ul>")
            elif kind == "code":
                body.append(f"<pre>{html.escape(block[1])}</pre>")
            elif kind == "table":
                headers, rows, numeric = block[1:]
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                lines = []
                for row in rows:
                    cells = "".join(
                        f'<td class="{"num" if n else "txt"}">{_inline(c)}</td>'
                        for c, n in zip(row, numeric)
                    )
                    lines.append(f"<tr>{cells}</tr>")
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}"
                            "</tbody></table>")
            elif kind == "img":
                from PIL import Image

                path = folder / block[1]
                with Image.open(path) as png:
                    width = png.size[0] * block[3]
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(block[2])}" width="{width}" '
                            f'src="data:image/png;base64,{data}"><figcaption>'
                            f"{html.escape(block[2])}</figcaption></figure>")
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
            "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;"
            "font-size:14px}th,td{border:1px solid #ccc;padding:3px 8px}th{background:#f2f2f2}"
            "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
            "img{max-width:100%;height:auto;image-rendering:pixelated}figure{margin:1em 0}"
            "figcaption{font-size:13px;color:#555}code,pre{background:#f6f6f6}"
            "pre{padding:.5em;overflow-x:auto}"
        )
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "image"


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _summary_rows(table: SummaryTable, fmt: Callable[[float], str], higher: bool | None,
                  with_std: bool) -> list[list[str]]:
    rows = []
    for r, row_name in enumerate(table.rows):
        means = table.mean[r]
        best = None
        ranked = [j for j, c in enumerate(table.columns) if c != NOISY and math.isfinite(means[j])]
        if higher is not None and len(ranked) > 1:
            key = (lambda j: means[j]) if higher else (lambda j: -means[j])
            best = max(ranked, key=key)
        cells = []
        for j in range(len(table.columns)):
            mean = means[j]
            if not math.isfinite(mean):
                cells.append("–")
                continue
            text = fmt(mean)
            if with_std and table.std is not None and math.isfinite(table.std[r, j]):
                text += f" ± {fmt(table.std[r, j]).lstrip('+')}"
            cells.append(f"**{text}**" if j == best else text)
        label = f"**{row_name}**" if row_name == AVERAGE else row_name
        if row_name == AVERAGE:
            # an image that could not be scored (every column empty) is left out of the mean
            scored = sum(any(math.isfinite(v) for v in table.mean[k])
                         for k, name in enumerate(table.rows) if name != AVERAGE)
            images = sum(name != AVERAGE for name in table.rows)
            if scored < images:
                label = f"**{row_name}** ({scored} of {images} images)"
        rows.append([label, *cells])
    return rows


#: The files every report writes (the figures depend on the images).
REPORT_FILES = ("report.md", "report.html", "results.json", "results.csv")


def figure_names(images: Sequence[str], *, scatter: bool) -> list[str]:
    """The figure files a report writes for these image names (crops and ratio images), and
    the speed/quality scatter when ``scatter``."""
    figures = [f"crops_{_safe(image)}.png" for image in images]
    figures += [f"ratio_{_safe(image)}.png" for image in images]
    return figures + (["speed_quality.png"] if scatter else [])


def check_report_folder(folder: str | os.PathLike, *, overwrite: bool = False,
                        names: Sequence[str] = REPORT_FILES) -> None:
    """Refuse, before any work, a report folder that :func:`write_report` would refuse: a file
    in its place, or (without ``overwrite``) report files (``names``) already there. Creates
    nothing.

    Raises
    ------
    UsageError
        ``folder`` is a file.
    OutputExistsError
        A report file exists and ``overwrite`` is false.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"expected an output folder, got the file {folder}")
    if not overwrite:
        existing = [n for n in names if (folder / n).exists()]
        if existing:
            raise OutputExistsError(
                f"{folder} already holds {', '.join(existing[:3])}"
                + (" ..." if len(existing) > 3 else "") + f"; {OVERWRITE_HINT}"
            )


#: The hidden staging folders of write_report, and the figure names it writes.
_STAGING_PREFIX = ".report."
_FIGURE_NAME = re.compile(r"(crops|ratio)_.+\.png|speed_quality\.png")


def _figures_of(report: Path) -> set[str]:
    """The figure files an earlier ``report.md`` shows (none when there is none): only these
    are a report's own, other PNGs in the folder are the user's."""
    try:
        text = report.read_text(encoding="utf-8")
    except OSError:
        return set()
    return {match.group(1) for match in re.finditer(r"\]\(([^)/\s]+\.png)\)", text)
            if _FIGURE_NAME.fullmatch(match.group(1))}


def _remove_stale_staging(folder: Path) -> None:
    """Staging folders a report killed outright left (``.report.<random>.partial``)."""
    for entry in folder.iterdir():
        if (entry.name.startswith(_STAGING_PREFIX) and entry.name.endswith(".partial")
                and entry.is_dir()):
            shutil.rmtree(entry, ignore_errors=True)


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


# --------------------------------------------------------------------------------------------
# JSON and CSV
# --------------------------------------------------------------------------------------------


def _results_json(result: EvaluationResult, generated: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": "sardespeckle-evaluation/1",
        "generated": generated,
        "settings": result.settings,
        "environment": result.environment,
        "candidates": [c.as_dict() for c in result.candidates],
        "peers": result.peers,
        "notes": result.notes,
        "metrics": _metric_definitions(),
    }
    full = result.full_reference
    if full is not None:
        data["full_reference"] = {
            "images": full.images, "columns": full.columns, "draws": full.draws,
            "seeds": full.seeds, "decorrelation": full.decorrelation,
            "per_draw": {
                metric: {image: {column: [_number(v) for v in values[i, j]]
                                 for j, column in enumerate(full.columns)}
                         for i, image in enumerate(full.images)}
                for metric, values in full.values.items()
            },
            "summary": {metric: _table_json(full.table(metric)) for metric in full.values},
        }
    real = result.no_reference
    if real is not None:
        data["no_reference"] = {
            "images": real.images, "columns": real.columns, "kinds": real.kinds,
            "decorrelation": real.decorrelation,
            "boxes": {image: [list(asdict(b).values()) for b in boxes]
                      for image, boxes in real.boxes.items()},
            "values": {
                metric: {image: {column: _number(values[i, j])
                                 for j, column in enumerate(real.columns)}
                         for i, image in enumerate(real.images)}
                for metric, values in real.values.items()
            },
            "average": {metric: {column: _number(v) for column, v in
                                 zip(real.columns, real.table(metric).mean[-1])}
                        for metric in real.values},
        }
    if result.speed:
        data["speed"] = [
            {k: _number(v) if isinstance(v, float) else v for k, v in asdict(s).items()}
            for s in result.speed
        ]
    return data


def _table_json(table: SummaryTable) -> dict[str, Any]:
    return {
        row: {column: {"mean": _number(table.mean[r, j]),
                       "std": None if table.std is None else _number(table.std[r, j])}
              for j, column in enumerate(table.columns)}
        for r, row in enumerate(table.rows)
    }


def _results_rows(result: EvaluationResult) -> list[list[Any]]:
    rows: list[list[Any]] = []
    full = result.full_reference
    if full is not None:
        for metric, values in full.values.items():
            for i, image in enumerate(full.images):
                for j, column in enumerate(full.columns):
                    for draw in range(full.draws):
                        rows.append(["full_reference", image, column, draw, metric,
                                     _csv_value(values[i, j, draw])])
    real = result.no_reference
    if real is not None:
        for metric, values in real.values.items():
            for i, image in enumerate(real.images):
                for j, column in enumerate(real.columns):
                    rows.append(["no_reference", image, column, "", metric,
                                 _csv_value(values[i, j])])
    for speed in result.speed:
        image = f"speed_scene_{speed.rows}x{speed.cols}"
        for metric in ("seconds", "cpu_seconds", "megapixels_per_second",
                       "megapixels_per_cpu_second", "peak_memory_mib"):
            value = getattr(speed, metric)
            rows.append(["speed", image, speed.name, "", metric,
                         "" if value is None else _csv_value(value)])
    return rows


def _csv_value(value: float) -> str:
    value = float(value)
    return repr(value) if math.isfinite(value) else ""


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def write_report(result: EvaluationResult, folder: str | os.PathLike, *,
                 overwrite: bool = False) -> dict[str, str]:
    """Write the report files of ``result`` into ``folder`` (created when missing).

    Parameters
    ----------
    result : EvaluationResult
    folder : path-like
    overwrite : bool, keyword-only
        Replace report files already there (other files are left alone).

    Returns
    -------
    dict
        ``{"markdown", "html", "json", "csv"}`` → path, plus ``"figures"`` → list of PNG names
        joined by commas.

    Raises
    ------
    OutputExistsError
        A report file exists and ``overwrite`` is false.
    """
    folder = Path(folder)
    scatter = bool(result.speed and result.full_reference is not None)
    figures = figure_names([p.image for p in result.panels], scatter=scatter)
    names = [*REPORT_FILES, *figures]
    check_report_folder(folder, overwrite=overwrite, names=names)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(folder)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    # Everything is written into a hidden staging folder, then moved into place (report.md
    # last): an interrupted run leaves no half report, and a rerun is not refused for it.
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, suffix=".partial", dir=folder))
    try:
        _write_text(staging / "results.json",
                    json.dumps(_results_json(result, generated), indent=1, allow_nan=False)
                    + "\n")
        with open(staging / "results.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["protocol", "image", "column", "draw", "metric", "value", "unit"])
            writer.writerows([*row, UNITS[row[4]]] for row in _results_rows(result))

        document = _Document()
        _write_header(document, result, generated, folder)
        if result.full_reference is not None:
            _write_full_reference(document, result, staging)
        if result.no_reference is not None:
            _write_no_reference(document, result, staging)
        if result.speed:
            _write_speed(document, result, staging, scatter)
        _write_methods(document, result)

        _write_text(staging / "report.md", document.markdown())
        _write_text(staging / "report.html", document.html(staging, "sardespeckle evaluation"))
        if overwrite:  # the figures of the earlier report that this one does not have
            for name in _figures_of(folder / "report.md"):
                if name not in figures and (folder / name).is_file():
                    (folder / name).unlink()
        for name in [*figures, "results.json", "results.csv", "report.html", "report.md"]:
            if (staging / name).exists():
                os.replace(staging / name, folder / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:  # a folder this call made, and left empty: not made
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "markdown": str(folder / "report.md"), "html": str(folder / "report.html"),
        "json": str(folder / "results.json"), "csv": str(folder / "results.csv"),
        "figures": ",".join(figures),
    }


def _write_header(document: _Document, result: EvaluationResult, generated: str,
                  folder: Path) -> None:
    settings, env = result.settings, result.environment
    document.heading(1, "Despeckling evaluation")
    document.paragraph(
        f"Generated by `sardespeckle evaluate` (sardespeckle {env['sardespeckle']}, Python "
        f"{env['python']}, numpy {env['numpy']}) on {generated}. Speckle draws are seeded "
        f"(seed {settings['seed']}): every quality number is reproducible; timings are not."
    )
    document.code(_command_line(settings, folder))
    inputs = env.get("inputs", {})
    if inputs:
        document.bullets([f"`{name}`: {text}" for name, text in inputs.items()])


def _cpu_words(env: dict[str, Any]) -> str:
    """`` (MODEL; native bf16 or not)`` of the environment's CPU, or nothing when unknown."""
    bf16 = {True: "native bf16, AVX512-BF16 or AMX: precision=auto runs the networks in bf16 "
                  "on this CPU",
            False: "no native bf16: precision=auto runs the networks in fp32 on this CPU"}
    words = [w for w in (env.get("cpu_model"), bf16.get(env.get("cpu_fast_bf16"))) if w]
    return f" ({'; '.join(words)})" if words else ""


def _command_line(settings: dict[str, Any], folder: Path) -> str:
    parts = ["sardespeckle evaluate"]
    if settings["references"]:
        parts.append("--references " + " ".join(settings["references"]))
    if settings["real"]:
        parts.append("--real " + " ".join(settings["real"]))
    methods = settings["methods"]
    parts.append("--methods " + (methods if isinstance(methods, str) else ",".join(methods)))
    for method, values in settings["params"].items():
        parts.extend(f"--param {method}:{k}={v}" for k, v in values.items())
    peers = settings["peers"]
    parts.append("--peers " + (peers if isinstance(peers, str) else ",".join(peers)))
    parts.extend(f"--peer-python {peer}={python}"
                 for peer, python in settings.get("peer_python", {}).items())
    parts.append(f"--looks {settings['looks']:g} --draws {settings['draws']} "
                 f"--seed {settings['seed']}")
    if settings["kind"]:
        parts.append(f"--kind {settings['kind']}")
    if settings["complex_layout"]:
        parts.append(f"--complex-layout {settings['complex_layout']}")
    parts.append(f"--speed-size {settings['speed_size']} --memory {settings['memory']}")
    parts.append(f"--enl-window {settings['enl_window']} --enl-count {settings['enl_count']} "
                 f"--crop {settings['crop']}")
    parts.append(f"--out {os.fspath(folder)}")
    return " \\\n    ".join(parts)


def _panel_figures(document: _Document, result: EvaluationResult, folder: Path,
                   names: Sequence[str], first_is_reference: bool) -> None:
    for panels in result.panels:
        if panels.image not in names:
            continue
        crop = panels.crop
        where = f"rows {crop.row}-{crop.row + crop.height - 1}, cols {crop.col}-" \
                f"{crop.col + crop.width - 1}"
        low, high = db_stretch(panels.intensities[0])
        crops_name = f"crops_{_safe(panels.image)}.png"
        save_grid(panels.intensities, panels.titles, folder / crops_name, stretch=(low, high),
                  columns=GRID_COLUMNS, zoom=GRID_ZOOM,
                  caption=f"{panels.image}, {where}; dB stretch {low:.1f} to {high:.1f} for all")
        shown = "the reference" if first_is_reference else "the input"
        document.image(crops_name, f"{panels.image} ({where}): every panel on one dB stretch, "
                                   f"the 1–99 % percentiles of {shown}", HTML_ZOOM)
        r_low, r_high = ratio_stretch(panels.looks)
        ratio_name = f"ratio_{_safe(panels.image)}.png"
        save_grid(panels.ratios, panels.ratio_titles, folder / ratio_name,
                  stretch=(r_low, r_high), columns=GRID_COLUMNS, zoom=GRID_ZOOM,
                  caption=f"ratio input/output, dB stretch {r_low:.1f} to {r_high:.1f} "
                          f"(1-99 % of {panels.looks:g}-look speckle)")
        document.image(ratio_name, f"{panels.image}: ratio images input / output; an ideal "
                                   "filter leaves pure speckle (no edges, no shapes)", HTML_ZOOM)


def _write_full_reference(document: _Document, result: EvaluationResult, folder: Path) -> None:
    full = result.full_reference
    settings = result.settings
    document.heading(2, "Full reference: simulated speckle on speckle-free references")
    if full.draws > 1:
        cells = ("Cells are mean ± std over the draws (sample std); the average row is the mean "
                 "over the images, its std the std over the draws of the image average.")
    else:
        cells = ("Cells are the values of the single draw, without a spread (a sample std "
                 "needs at least two draws); the average row is the mean over the images.")
    document.paragraph(
        f"{len(full.images)} reference(s) × {full.draws} draw(s) of {settings['looks']:g}-look "
        f"speckle (`I = R · S`, `S ~ Gamma(L, 1/L)`). {cells} Best despeckler of each row in "
        "bold. The PSNR table is laid out like Table 4 of Dalsasso et al. (2020), whose PSNR "
        "definition it uses."
    )
    for metric, (title, fmt, higher) in _FULL_METRICS.items():
        table = full.table(metric)
        document.heading(3, title)
        document.table(["image", *table.columns], _summary_rows(table, fmt, higher, True))
    document.heading(3, "Crops (draw 0) and ratio images")
    _panel_figures(document, result, folder, full.images, first_is_reference=True)


def _write_no_reference(document: _Document, result: EvaluationResult, folder: Path) -> None:
    real = result.no_reference
    settings = result.settings
    document.heading(2, "No reference: real speckled images")
    document.paragraph(
        f"Despeckled with looks = {settings['looks']:g}. Homogeneous areas: the "
        f"{settings['enl_count']} most homogeneous non-overlapping {settings['enl_window']}×"
        f"{settings['enl_window']} windows of each input (lowest variance of log-intensity on "
        "one checkerboard half; ENL measured on the other half). Ratio statistics are over "
        "the whole image; the structure measure M adds the first-order residual r_ENL,μ "
        "(ENL and mean of the ratio on the homogeneous areas) and the second-order δh "
        "(GLCM homogeneity of the ratio against its shuffled version, percent)."
    )
    for metric, (title, fmt) in _REAL_METRICS.items():
        table = real.table(metric)
        columns = table.columns if metric == "enl" else table.columns[1:]
        offset = 0 if metric == "enl" else 1
        trimmed = SummaryTable(table.metric, table.rows, columns, table.mean[:, offset:], None)
        document.heading(3, title)
        document.table(["image", *columns], _summary_rows(trimmed, fmt, None, False))
    document.heading(3, "Crops and ratio images")
    _panel_figures(document, result, folder, real.images, first_is_reference=False)


def _seconds(value: float) -> str:
    """Seconds to the millisecond, or to three significant digits below 0.1 s (a 64² image
    runs in a fraction of a millisecond: "0.000" beside its throughput would read as none)."""
    return f"{value:.3f}" if value >= 0.1 else f"{value:.3g}"


def _write_speed(document: _Document, result: EvaluationResult, folder: Path,
                 scatter: bool) -> None:
    speeds = result.speed
    env = result.environment
    first = next((s for s in speeds if s.runs), speeds[0])  # a failed peer has no runs
    document.heading(2, "Speed and memory")
    load = env.get("load_average_at_start")
    document.paragraph(
        f"Each despeckler on a seeded simulated {first.rows}×{first.cols} "
        f"{result.settings['looks']:g}-look image: a warm-up on a "
        f"{min(first.rows, WARMUP_SIDE)}×{min(first.cols, WARMUP_SIDE)} crop, then {first.runs} "
        f"timed runs of which the shortest counts, on {env['cpu_count']} CPU core(s)"
        + _cpu_words(env)
        + (f" with a load average of {load[0]:.2f} at the start" if load else "")
        + ". Wall-clock throughput depends on the other work of the machine; throughput per "
        "CPU-second (all threads) hardly does, and is what the figure shows. Memory: "
        f"{first.memory_probe}."
    )
    rows = []
    for s in speeds:
        memory = "–" if s.peak_memory_mib is None else f"{s.peak_memory_mib:.1f}"
        if not math.isfinite(s.seconds):
            rows.append([s.name, "–", "–", "–", "–", memory, s.note])
            continue
        rows.append([s.name, f"{s.megapixels_per_cpu_second:.2f}",
                     f"{s.megapixels_per_second:.2f}", _seconds(s.cpu_seconds),
                     _seconds(s.seconds), memory, s.note])
    document.table(["method", "MP per CPU-s", "MP/s (wall)", "CPU s", "wall s",
                    "peak memory Δ (MiB)", "note"],
                   rows, [False, True, True, True, True, True, False])
    if scatter:
        full = result.full_reference
        average = full.table("psnr").mean[-1]
        families = {c.name: c.family for c in result.candidates}
        points = [(s.name, s.megapixels_per_cpu_second,
                   float(average[full.columns.index(s.name)]), families.get(s.name, ""))
                  for s in speeds if s.name in full.columns]
        save_scatter(points, folder / "speed_quality.png",
                     x_label=f"throughput, megapixels per CPU-second ({first.rows}x{first.cols}, "
                             "log scale)",
                     y_label="average PSNR (dB)",
                     title="Speed against quality (blue: filters, red: networks, green: peers)")
        noisy = float(average[0])
        document.image("speed_quality.png",
                       f"average PSNR against throughput; the noisy input scores {noisy:.2f} dB")


def _write_methods(document: _Document, result: EvaluationResult) -> None:
    document.heading(2, "Despecklers")
    rows = []
    for c in result.candidates:
        parameters = ", ".join(
            _decorrelation_label(result, c.name) if k == "decorrelate" and v == "auto"
            else f"{k}={v}" for k, v in c.parameters.items()) or "–"
        rows.append([c.name, c.family, parameters, c.description])
    document.table(["name", "family", "parameters", "description"], rows,
                   [False, False, False, False])
    document.heading(3, "Peers (other packages, never dependencies)")
    document.table(
        ["peer", "status", "evaluated"],
        [[name, status, _peer_outcome(result, name)] for name, status in result.peers.items()],
        [False, False, False],
    )
    if result.notes:
        document.heading(3, "Notes")
        document.bullets(result.notes)


def _decorrelation_label(result: EvaluationResult, column: str) -> str:
    """``decorrelate=auto`` with what it resolved to, e.g. ``decorrelate=auto (per image:
    none on the references; subsample on the real images)``: the runs apply the choice made
    for each input (:meth:`~sardespeckle.evaluation.protocol.Candidate.resolve`)."""
    sections = []
    full, real = result.full_reference, result.no_reference
    if full is not None and column in full.decorrelation:
        sections.append(("references", full.decorrelation[column]))
    if real is not None and column in real.decorrelation:
        sections.append(("real images", {image: [choice] for image, choice
                                         in real.decorrelation[column].items()}))
    parts = []
    for section, per_image in sections:
        everywhere = {choice for choices in per_image.values() for choice in choices}
        if len(everywhere) == 1:
            parts.append(f"{everywhere.pop()} on the {section}")
            continue
        images = []
        for image, choices in per_image.items():
            counts = {choice: choices.count(choice) for choice in dict.fromkeys(choices)}
            images.append(f"{image} " + " / ".join(
                choice if len(counts) == 1 else f"{choice} on {count} of {len(choices)} draws"
                for choice, count in counts.items()))
        parts.append(f"{section}: " + ", ".join(images))
    return "decorrelate=auto" + (f" (per image: {'; '.join(parts)})" if parts else "")


def _peer_outcome(result: EvaluationResult, peer: str) -> str:
    column = f"peer:{peer}"
    if column not in [c.name for c in result.candidates]:
        return "no"
    for part in (result.full_reference, result.no_reference):
        if part is not None:
            j = part.columns.index(column)
            if any(np.isfinite(values[:, j]).any() for values in part.values.values()):
                return "yes"
    return "failed (see notes)"
