"""sardespeckle: despeckling of synthetic aperture radar images."""

__version__ = "0.1.0"
