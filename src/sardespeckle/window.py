"""A rectangle of pixels in a raster: the one geometry type shared by I/O and tiling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Rows ``row:row+height`` and columns ``col:col+width`` of a 2-D raster."""

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def expand(self, margin: int, shape: tuple[int, int]) -> "Window":
        """This window grown by ``margin`` pixels on each side, clipped to a raster of ``shape``."""
        row0 = max(self.row - margin, 0)
        col0 = max(self.col - margin, 0)
        row1 = min(self.row + self.height + margin, shape[0])
        col1 = min(self.col + self.width + margin, shape[1])
        return Window(row0, col0, row1 - row0, col1 - col0)

    def relative_to(self, outer: "Window") -> "Window":
        """This window in the coordinates of ``outer`` (which must contain it)."""
        return Window(self.row - outer.row, self.col - outer.col, self.height, self.width)

    @classmethod
    def full(cls, shape: tuple[int, int]) -> "Window":
        return cls(0, 0, int(shape[0]), int(shape[1]))
