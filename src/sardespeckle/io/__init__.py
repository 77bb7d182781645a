"""Reading and writing SAR rasters: GeoTIFF and ``.npy``, input kinds, atomic outputs, previews.

A :class:`Source` turns the pixels of a file into intensity plus a mask of valid pixels; a
:class:`Sink` turns intensity back into the output kind and writes it atomically. This package
knows nothing about despeckling methods.

An identity run, window by window (a method would transform the intensity)::

    from sardespeckle.io import create_sink, open_source
    from sardespeckle.window import Window

    with open_source("s1_vv.tif") as source, create_sink(
        "s1_vv_copy.tif", source, kind_out="amplitude", tags={"method": "none"}
    ) as sink:
        window = Window.full(source.shape)
        sink.write(window, *source.read_intensity(window))
"""

from sardespeckle.io.base import Georef, Sink, Source
from sardespeckle.io.kinds import (
    KINDS,
    OUTPUT_KINDS,
    detect_kind,
    from_intensity,
    kind_from_text,
    to_intensity,
)
from sardespeckle.io.preview import read_preview_panel, save_preview
from sardespeckle.io.raster import (
    create_sink,
    open_source,
    output_nodata,
    provenance_tags,
    write_array,
)

__all__ = [
    "KINDS",
    "OUTPUT_KINDS",
    "Georef",
    "Sink",
    "Source",
    "create_sink",
    "detect_kind",
    "from_intensity",
    "kind_from_text",
    "open_source",
    "output_nodata",
    "provenance_tags",
    "read_preview_panel",
    "save_preview",
    "to_intensity",
    "write_array",
]
