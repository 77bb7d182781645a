"""What every reader and writer shares: the Source and Sink contracts, georeferencing, paths.

A :class:`Source` reads windows of one band of a raster and turns them into intensity plus a
mask of valid pixels. A :class:`Sink` receives intensity windows, converts them to the output
kind and writes them into a temporary file next to the output, which :meth:`Sink.commit` renames
onto the final name in one step: a reader never sees a half-written output, and a failed run
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardespeckle.errors import InvalidInputError, OutputExistsError, OutputFileError, UsageError
from sardespeckle.io.kinds import (check_value_shares, from_intensity, negative_share,
                                   overflow_share, phase_problem, to_intensity)
from sardespeckle.window import Window

GEOTIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)

OVERWRITE_HINT = "pass --overwrite (Python: overwrite=True) to replace it"
"""The end of every "output exists" message, naming the option of both interfaces."""


def file_format(path: str | os.PathLike) -> str | None:
    """``"geotiff"`` or ``"npy"`` from the extension of ``path``, ``None`` when unsupported."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in GEOTIFF_SUFFIXES:
        return "geotiff"
    if suffix in NPY_SUFFIXES:
        return "npy"
    return None


@dataclass(frozen=True)
class Georef:
    """Where the pixels lie on Earth: a CRS with an affine transform, or ground control points.

    The objects are rasterio's (``CRS``, ``Affine``, ``GroundControlPoint``, ``RPC``); all
    ``None``/empty for a raster without georeferencing (a ``.npy`` file).
    """

    crs: Any = None
    transform: Any = None
    gcps: tuple = ()
    gcps_crs: Any = None
    rpcs: Any = None

    @property
    def is_empty(self) -> bool:
        return self.crs is None and self.transform is None and not self.gcps and self.rpcs is None


def check_window(window: Window, shape: tuple[int, int]) -> None:
    """Raise :class:`InvalidInputError` unless ``window`` is a non-empty part of ``shape``."""
    if not isinstance(window, Window):
        raise InvalidInputError(f"expected a sardespeckle Window, got {type(window).__name__}")
    inside = (
        window.row >= 0
        and window.col >= 0
        and window.height > 0
        and window.width > 0
        and window.row + window.height <= shape[0]
        and window.col + window.width <= shape[1]
    )
    if not inside:
        raise InvalidInputError(
            f"expected a non-empty window inside a raster of shape {tuple(shape)}, got {window}"
        )


class Source:
    """One band of a raster, read by windows.

    Attributes
    ----------
    path : str
    shape : tuple of int
        ``(rows, cols)``.
    dtype : numpy.dtype
        Of the raw pixels (complex for real/imaginary layouts).
    kind, kind_reason : str
        The input kind (see :mod:`sardespeckle.io.kinds`) and why it was chosen.
    nodata : float or None
    georef : Georef
    description : str or None
        The band description.
    tags : dict
        The dataset tags (metadata of the default domain).
    block_shape : tuple of int or None
        The storage block ``(rows, cols)``: windows aligned on it read fastest.
    """

    format: str = ""

    path: str
    shape: tuple[int, int]
    dtype: np.dtype
    kind: str
    kind_reason: str
    nodata: float | None
    georef: Georef
    description: str | None
    tags: dict[str, str]
    block_shape: tuple[int, int] | None

    def read(self, window: Window) -> np.ndarray:
        """The raw pixels of ``window``, shape ``window.shape``."""
        check_window(window, self.shape)
        return self._read(window)

    def read_intensity(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Intensity (``float32``) and valid-pixel mask (``bool``) of ``window``.

        Invalid pixels are non-finite, equal to nodata, of zero intensity or masked by the
        file's own mask; their intensity value is arbitrary.
        """
        check_window(window, self.shape)
        with self._kind_context():
            intensity, valid = to_intensity(self._read(window), self.kind, nodata=self.nodata)
        extra = self._read_mask(window)
        if extra is not None:
            valid &= extra
        return intensity, valid

    def value_shares(self) -> tuple[float, float]:
        """Shares of negative intensity or amplitude values and of intensities beyond float32,
        on a sample spread over the whole raster (all of it up to 1024² pixels, else 8 × 8
        windows of 128² on a regular grid). Such pixels are nodata
        (:func:`sardespeckle.io.kinds.to_intensity`); data where they are common are refused
        (:func:`sardespeckle.io.kinds.check_value_shares`), with what decided the kind."""
        rows, cols = self.shape
        if rows * cols <= 1 << 20:
            raw = self.read(Window.full(self.shape))
        else:
            height, width = min(rows, 128), min(cols, 128)
            starts_r = np.linspace(0, rows - height, 8).round().astype(int)
            starts_c = np.linspace(0, cols - width, 8).round().astype(int)
            raw = np.concatenate([self.read(Window(int(r), int(c), height, width)).ravel()
                                  for r in starts_r for c in starts_c])
        problem = phase_problem(raw, self.kind, nodata=self.nodata)
        if problem is not None:
            raise InvalidInputError(
                f"{self.path}: {problem}; store the values as a real band and give their kind "
                "(CLI --kind amplitude or --kind intensity)")
        negative = negative_share(raw, self.kind, nodata=self.nodata)
        overflow = overflow_share(raw, self.kind, nodata=self.nodata)
        try:
            with self._kind_context():
                check_value_shares(negative, overflow, self.kind)
        except InvalidInputError as error:  # named: a stack or a set of references has many
            raise InvalidInputError(f"{self.path}: {error}") from None
        return negative, overflow

    @contextlib.contextmanager
    def _kind_context(self) -> Iterator[None]:
        """Values that do not fit a detected kind most often mean the detection guessed
        wrong: an InvalidInputError in the block says what it went by, with the hint it may
        carry (another layout, another kind). A given kind's errors pass as they are."""
        try:
            yield
        except InvalidInputError as error:
            if self.kind_reason == "given":
                raise
            raise InvalidInputError(
                f"{error}; the kind {self.kind} was detected from {self.kind_reason}"
            ) from error

    def read_decimated(self, max_size: int) -> np.ndarray:
        """Raw pixels of the whole raster, keeping every n-th row and column so that the
        longer side is at most ``max_size`` (the whole raster when it is small enough)."""
        step = max(1, -(-max(self.shape) // int(max_size)))
        return self._read_decimated(step)

    @property
    def band_count(self) -> int:
        """Bands in the file (a ``.npy`` holds one image)."""
        return 1

    def info(self) -> dict[str, Any]:
        """A JSON-friendly summary: size, data type, kind and why, georeferencing, metadata."""
        georef = self.georef
        return {
            "path": self.path,
            "format": self.format,
            "rows": self.shape[0],
            "cols": self.shape[1],
            "dtype": self.dtype.name,
            "kind": self.kind,
            "kind_reason": self.kind_reason,
            "nodata": self.nodata,
            "crs": _crs_text(georef.crs),
            "transform": None if georef.transform is None else list(georef.transform)[:6],
            "gcps": len(georef.gcps),
            "gcps_crs": _crs_text(georef.gcps_crs),
            "rpcs": georef.rpcs is not None,
            "block_shape": None if self.block_shape is None else list(self.block_shape),
            "band_descriptions": self._band_descriptions(),
            "tags": dict(self.tags),
        }

    def close(self) -> None:
        """Release the file; further reads fail."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, shape={self.shape}, dtype={self.dtype.name}, "
            f"kind={self.kind!r})"
        )

    def _check_kind_matches_dtype(self) -> None:
        """A kind given by the caller must fit the data: complex for complex, real otherwise."""
        if (self.kind == "complex") != (self.dtype.kind == "c"):
            hint = (
                "for real/imaginary parts pass complex_layout (CLI --complex-layout)"
                if self.kind == "complex"
                else "leave kind out or pass kind='complex' (CLI --kind complex)"
            )
            raise InvalidInputError(
                f"expected {'complex' if self.kind == 'complex' else 'real'} data for kind "
                f"{self.kind!r}, got {self.dtype.name} in {self.path}; {hint}"
            )

    # To be provided by each format.
    def _read(self, window: Window) -> np.ndarray:
        raise NotImplementedError

    def _read_decimated(self, step: int) -> np.ndarray:
        raise NotImplementedError

    def _read_mask(self, window: Window) -> np.ndarray | None:
        return None

    def _band_descriptions(self) -> list[str | None]:
        return [self.description]


def _crs_text(crs: Any) -> str | None:
    if crs is None:
        return None
    return crs.to_string() or crs.to_wkt()


def check_output_path(
    path: str | os.PathLike, *, inputs: tuple = (), overwrite: bool = False
) -> tuple[str, str]:
    """Validate an output path; return it as a string with its format.

    Raises :class:`UsageError` for an unsupported extension, a missing folder, a folder given as
    the output or an output equal to an input (inputs are never overwritten, whatever
    ``overwrite`` says), and :class:`OutputExistsError` for an existing output without
    ``overwrite``.
    """
    path = os.fspath(path)
    fmt = file_format(path)
    if fmt is None:
        if path.endswith(("/", os.sep)) or os.path.isdir(path):
            raise UsageError(
                f"expected an output file ending in .tif, .tiff or .npy, got the folder {path}; "
                "name the file (a folder is the output of a batch: several inputs, a folder "
                "or a glob)")
        raise UsageError(
            f"expected an output ending in .tif, .tiff or .npy, got {os.path.basename(path)!r}"
        )
    check_output_folder(path)
    for source_path in inputs:
        if source_path is not None and same_file(path, os.fspath(source_path)):
            raise UsageError(
                f"expected an output path different from the input, got {path} for both; "
                "inputs are never overwritten"
            )
    if os.path.isdir(path):
        raise UsageError(f"expected an output file, got the folder {path}")
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(f"output {path} exists; {OVERWRITE_HINT}")
    return path, fmt


def check_output_folder(path: str | os.PathLike) -> None:
    """Raise :class:`UsageError` unless the folder of the output ``path`` exists, saying when
    it cannot be created because a file stands in its way (``out/scene.tif/x.tif``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        return
    blocking = folder
    while not os.path.lexists(blocking) and os.path.dirname(blocking) != blocking:
        blocking = os.path.dirname(blocking)
    if os.path.lexists(blocking) and not os.path.isdir(blocking):
        raise UsageError(
            f"expected the output {os.fspath(path)} in a folder, got {blocking} on its path, "
            "which is not a folder"
        )
    raise UsageError(f"output folder {folder} does not exist; create it first")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (same resolved path, or same inode: hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def repeated_file(paths: Sequence[str | os.PathLike]) -> tuple[int, int] | None:
    """``(first, again)``: the indices of the first file that ``paths`` name twice (the same
    file under another spelling or through a link counts), else ``None``. A path that cannot be
    read is compared by its resolved name (its reader reports it)."""
    seen: dict[object, int] = {}
    for index, path in enumerate(paths):
        try:
            status = os.stat(path)
            identity: object = (status.st_dev, status.st_ino)
        except OSError:
            identity = os.path.realpath(path)
        if identity in seen:
            return seen[identity], index
        seen[identity] = index
    return None


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_default_permissions(path: str | os.PathLike) -> None:
    """Set the permissions a plain ``open()`` would have given (``0o666`` minus the umask).

    :func:`temporary_path` creates files readable by their owner only; a published output or
    weights file should be as readable as any other file the user writes.
    """
    os.chmod(path, 0o666 & ~_current_umask())


# Temporary outputs of this process not yet published or deleted. A name is registered *before*
# its file is created, so an interrupt at any point leaves no file that this set does not name:
# the command line deletes them all when it is interrupted (remove_temporaries).
_TEMPORARIES: set[str] = set()


def temporary_path(path: str) -> str:
    """A new, hidden, empty file next to ``path`` (same folder, so the final rename is atomic),
    registered for :func:`remove_temporaries` and locked (see below) until it is published or
    removed."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        temp = hidden_sibling(path)
        _TEMPORARIES.add(temp)
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another file has this name: never ours to delete
            _TEMPORARIES.discard(temp)
            continue
        except OSError as error:
            _TEMPORARIES.discard(temp)
            raise OutputFileError(f"cannot write {path}: {error.strerror or error} (in {folder})") from error
        # Held open with an exclusive lock until published or removed: another process
        # clearing stale partial files (remove_stale_partials) sees a live writer and leaves
        # it (the kernel drops the lock when this process ends, however it ends). Writers
        # that reopen the path (GDAL, numpy, torch) write into the same file.
        import fcntl

        with contextlib.suppress(OSError):  # a filesystem without locks: unguarded
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _HELD[temp] = handle
        return temp


def without_layout_hint(error: Exception, advice: str,
                        markers: tuple[str, ...] = ("--complex-layout",)) -> Exception:
    """``error`` again (same type) with its hint about ``--complex-layout`` (an option of the
    commands that read real/imaginary parts; or another of ``markers``) replaced by
    ``advice``, for the commands that have no such option; any other error unchanged."""
    text = str(error)
    if not any(marker in text for marker in markers):
        return error
    return type(error)(f"{text.split(';')[0]}; {advice}")


def hidden_sibling(path: str, *, label: str = "partial") -> str:
    """A hidden, random name next to ``path`` that does not exist now (the file is not created):
    ``.NAME.<random>.<label><extension>``."""
    folder, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1]
    while True:
        candidate = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.{label}{suffix}")
        if not os.path.lexists(candidate):
            return candidate


def visible_name(path: str) -> str:
    """The output a hidden temporary file of :func:`hidden_sibling` stands for
    (``.x.tif.<hex>.partial.tif``, nested or not, → ``x.tif`` in the same folder), else
    ``path``: what a message should name."""
    import re

    folder, name = os.path.split(path)
    match = re.fullmatch(r"\.+(.+?)(?:\.[0-9a-f]{12}\.partial(?:\.\w+)?)+", name)
    return os.path.join(folder, match.group(1)) if match else path


def free_space(path: str | os.PathLike) -> str:
    """``"N MiB left on the device of FOLDER"`` for the folder of ``path``: what a message
    about a failed write says (a full disk, most often)."""
    import shutil

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB left on the device of {folder}"


def hidden_leftovers(outputs: Sequence[str | os.PathLike], label: str) -> list[str]:
    """The hidden files :func:`hidden_sibling` named with ``label`` beside ``outputs``
    (``.NAME.<hex>.LABEL.EXT``, one more leading dot per level of nesting) that no live
    writer holds: neither this process's temporaries nor a file another process has locked
    (:func:`temporary_path`)."""
    import re

    found = []
    for output in outputs:
        folder, name = os.path.split(os.path.abspath(os.fspath(output)))
        pattern = re.compile(rf"(\.+){re.escape(name)}((?:\.[0-9a-f]{{12}}\.{label}(?:\.\w+)?)+)")
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            match = pattern.fullmatch(entry)
            # one leading dot per level of nesting: ``..x.tif.<hex>.partial.tif`` is the
            # partial of the hidden output ``.x.tif``, not of ``x.tif``
            if match is None or len(match.group(1)) != match.group(2).count(f".{label}"):
                continue
            path = os.path.join(folder, entry)
            if os.path.isfile(path) and path not in _TEMPORARIES and not _held(path):
                found.append(path)
    return found


def _held(path: str) -> bool:
    """Whether a live process holds the hidden file ``path`` (:func:`temporary_path`'s lock,
    which the kernel drops when the writer ends, however it ends)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        import errno

        return error.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


#: Locks held on this process's temporary files (:func:`temporary_path`), by path.
_HELD: dict[str, int] = {}


def _release(path: str) -> None:
    """Drop the lock :func:`temporary_path` holds on ``path`` (renamed or deleted by now)."""
    fd = _HELD.pop(path, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def remove_stale_partials(outputs: Sequence[str | os.PathLike]) -> list[str]:
    """Delete the hidden partial files (:func:`hidden_sibling`, ``.NAME.<hex>.partial.EXT``,
    nested when a temporary file got its own) that a process killed outright left beside
    ``outputs``: a new run writing the same outputs makes its own, and nothing else names
    them. Returns the paths removed."""
    removed = []
    for path in hidden_leftovers(outputs, "partial"):
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed.append(path)
    return removed


def remove_if_exists(path: str) -> None:
    """Delete ``path``; a file already gone is fine."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    _TEMPORARIES.discard(path)
    _release(path)


def remove_temporaries() -> int:
    """Delete every temporary output of this process not yet published or removed (for a
    command interrupted at any point, even while an output was being created); return how many
    files were deleted."""
    removed = 0
    for temp in list(_TEMPORARIES):
        if os.path.lexists(temp):
            removed += 1
        remove_if_exists(temp)
    return removed


def _discard(closer, temp: str) -> None:
    """Close a half-written output and delete its temporary file (also at garbage collection)."""
    try:
        closer()
    finally:
        remove_if_exists(temp)


#: Every file :func:`publish` completed in this process, in order (an interrupt's message
#: says whether anything was written before it).
PUBLISHED: list[str] = []


def publish(temp: str, path: str, *, overwrite: bool) -> None:
    """Rename ``temp`` onto ``path`` in one step (``os.replace``), or raise if ``path`` appeared
    meanwhile and ``overwrite`` is false (``temp`` is then deleted)."""
    if os.path.lexists(path) and not overwrite:
        remove_if_exists(temp)
        raise OutputExistsError(f"output {path} exists; {OVERWRITE_HINT}")
    give_default_permissions(temp)
    os.replace(temp, path)
    _TEMPORARIES.discard(temp)
    _release(temp)
    PUBLISHED.append(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[str]:
    """A hidden temporary file next to ``path`` to write into; renamed onto ``path`` when the
    block ends without error (:func:`publish`), deleted when it raises. For whole files written
    at once (configs, checkpoints, weights, PNGs); :class:`Sink` is the same for rasters written
    window by window."""
    path = os.fspath(path)
    temp = temporary_path(path)
    try:
        yield temp
        publish(temp, path, overwrite=overwrite)
    except BaseException:
        remove_if_exists(temp)
        raise


class Sink:
    """One band being written to a temporary file, renamed onto ``path`` by :meth:`commit`.

    Use it as a context manager: a clean exit commits, an exception aborts (the temporary file is
    deleted and ``path`` is left as it was). A sink never committed nor aborted deletes its
    temporary file when it is garbage collected.

    Attributes
    ----------
    path : str
        The final output.
    temp_path : str
        The hidden temporary file being written, next to ``path``.
    shape : tuple of int
        ``(rows, cols)``.
    kind_out : str
        ``"intensity"``, ``"amplitude"`` or ``"db"``.
    nodata : float
        Written at masked pixels (NaN or the input's nodata).
    dtype : numpy.dtype
    tags : dict
        The provenance tags written (empty for formats without tags, ``.npy``).
    block_size : int or None
        Tile size of the output: windows aligned on it write fastest.
    valid_pixels : int
        Number of pixels written so far with a value (not nodata).
    """

    format: str = ""

    def __init__(
        self,
        *,
        path: str,
        temp_path: str,
        shape: tuple[int, int],
        kind_out: str,
        nodata: float,
        dtype: np.dtype,
        overwrite: bool,
        tags: dict[str, str] | None = None,
        block_size: int | None = None,
    ) -> None:
        self.path = path
        self.temp_path = temp_path
        self.shape = (int(shape[0]), int(shape[1]))
        self.kind_out = kind_out
        self.nodata = nodata
        self.dtype = np.dtype(dtype)
        self.overwrite = overwrite
        self.tags = dict(tags or {})
        self.block_size = block_size
        self.valid_pixels = 0
        self._state = "open"
        self._finalizer = weakref.finalize(self, _discard, self._closer(), temp_path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, shape={self.shape}, kind_out={self.kind_out!r}, "
            f"state={self._state!r})"
        )

    # To be provided by each format: write converted values, and a callable that flushes/closes.
    def _write(self, window: Window, values: np.ndarray) -> None:
        raise NotImplementedError

    def _closer(self):
        raise NotImplementedError

    def _verify(self) -> None:
        """Raise OutputFileError if the closed temporary file is incomplete (formats whose
        library reports a failed write without raising: GeoTIFF)."""

    def write(self, window: Window, intensity: np.ndarray, valid: np.ndarray) -> None:
        """Convert ``intensity`` to the output kind and write it at ``window``; pixels where
        ``valid`` is false get the nodata value."""
        if self._state != "open":
            raise UsageError(f"expected an open output, got one already {self._state}")
        check_window(window, self.shape)
        intensity = np.asarray(intensity)
        if intensity.shape != window.shape:
            raise InvalidInputError(
                f"expected an array of the window's shape {window.shape}, got {intensity.shape}"
            )
        values = from_intensity(
            intensity, valid, self.kind_out, nodata_out=self.nodata, dtype=self.dtype
        )
        self._write(window, values)
        self.valid_pixels += int(np.count_nonzero(valid))

    def commit(self) -> str:
        """Finish the file and rename it onto :attr:`path`; return the path."""
        if self._state != "open":
            raise UsageError(f"expected an open output, got one already {self._state}")
        self._finalizer.detach()
        try:
            self._closer()()
            self._verify()
            publish(self.temp_path, self.path, overwrite=self.overwrite)
        except BaseException:
            self._state = "aborted"
            remove_if_exists(self.temp_path)
            raise
        self._state = "committed"
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; :attr:`path` is untouched. Safe to call twice."""
        if self._state == "open":
            self._state = "aborted"
            self._finalizer()

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self._state == "open":
                self.commit()
        else:
            self.abort()
