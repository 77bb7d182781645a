"""sardespeckle: despeckling of synthetic aperture radar images.

The two entry points, also importable from here::

    from sardespeckle import despeckle, despeckle_file

are :func:`sardespeckle.api.despeckle` (an array in, an array out) and
:func:`sardespeckle.api.despeckle_file` (a raster file in, a raster file out). They are imported
on first use, so ``import sardespeckle`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "despeckle", "despeckle_file"]


def __getattr__(name: str):
    if name in ("despeckle", "despeckle_file"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'sardespeckle' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the lazily imported entry points (tab completion, ``help``)."""
    return sorted(set(globals()) | set(__all__))
