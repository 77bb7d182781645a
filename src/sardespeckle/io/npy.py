"""NumPy ``.npy`` files, memory-mapped: 2-D real or complex arrays, or real/imaginary pairs.

A ``.npy`` file has no georeferencing, no nodata value and no tags: masked pixels are the
non-finite and zero ones, and outputs write NaN there. An output's provenance (the tags a
GeoTIFF would hold) goes into a JSON sidecar beside it, ``OUT.npy.json`` (:func:`sidecar_path`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from sardespeckle.errors import (InputFileError, InvalidInputError, OutputExistsError,
                                 OutputFileError, UsageError)
from sardespeckle.io.base import (OVERWRITE_HINT, Georef, Sink, Source, publish, remove_if_exists,
                                  temporary_path)
from sardespeckle.io.geotiff import SAMPLE_SIZE, check_dtype
from sardespeckle.io.kinds import check_kind, detect_kind
from sardespeckle.window import Window

_LAYOUTS = (None, "last", "first")


#: What the first bytes of a file that is not a .npy say it is.
_SIGNATURES = ((b"II*\x00", "a TIFF"), (b"MM\x00*", "a TIFF"), (b"\x89PNG", "a PNG"),
               (b"PK\x03\x04", "a zip archive (a torch .pt file?)"), (b"\x93NUMPY", ""))


def npy_error(path: str, error: BaseException) -> InputFileError:
    """The InputFileError of a ``.npy`` that numpy cannot read, in words: not a .npy (and
    what it looks like), truncated, holding Python objects, or numpy's reason."""
    text = str(error)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    if not head.startswith(b"\x93NUMPY"):
        looks = next((what for start, what in _SIGNATURES if head.startswith(start)), None)
        if looks is None:
            looks = "a text file" if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head) \
                else "something else"
        return InputFileError(f"{path} is not a .npy file (it looks like {looks}); a .npy "
                              "is what numpy.save writes")
    if "pickled" in text or "Python objects" in text or "allow_pickle" in text:
        return InputFileError(f"{path} holds Python objects (a pickle), not an array of numbers; "
                              "sardespeckle never loads pickles: save the array with numpy.save")
    if "mmap length" in text or "cannot reshape" in text or isinstance(error, EOFError):
        return InputFileError(f"{path} is truncated: it is shorter than its header says (an "
                              "interrupted copy or download?)")
    return InputFileError(f"cannot read {path} as a .npy file: {text}")


def _read_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header, before anything is mapped (an object array is refused
    without ever unpickling it)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise npy_error(path, error) from error
    return tuple(shape), np.dtype(dtype)


def _channel_stack_advice(path: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    """For a complex ``.npy`` of several images that ``sardespeckle covariance`` reads
    (``(rows, cols, D)`` SLC channels or a ``(rows, cols, D, D)`` covariance field, D in 2..4)
    or reads once rearranged (complex ``(D, rows, cols)`` channels): what it is and what to do
    with it; ``""`` for other shapes."""
    command = f"'sardespeckle covariance {path}' (Python: sardespeckle.covariance." \
              "despeckle_covariance_files)"
    if dtype.kind != "c":
        return ""  # real numbers are neither SLC channels nor (in general) covariances
    if len(shape) == 4 and shape[2] == shape[3] and 2 <= shape[2] <= 4:
        return (f"a field of {shape[2]}×{shape[3]} covariance matrices: despeckle it with "
                f"{command}")
    if len(shape) != 3:
        return ""
    if 2 <= shape[2] <= 4:
        return (f"{shape[2]} complex SLC channels (rows, cols, D): despeckle them together with "
                f"{command}, or one at a time as 2-D arrays")
    if 2 <= shape[0] <= 4:
        return (f"{shape[0]} complex SLC channels stacked first (D, rows, cols): save them "
                "stacked last (numpy.moveaxis(array, 0, -1)) for 'sardespeckle covariance', or "
                "one at a time as 2-D arrays")
    return ""


class NpySource(Source):
    """A 2-D array ``(rows, cols)``, or with ``complex_layout`` a real/imaginary pair stored as
    ``(rows, cols, 2)`` (``"last"``) or ``(2, rows, cols)`` (``"first"``)."""

    format = "npy"

    def __init__(
        self,
        path: str,
        *,
        kind: str | None = None,
        complex_layout: str | None = None,
        nodata: float | None = None,
    ) -> None:
        if complex_layout not in _LAYOUTS:
            raise UsageError(
                f"expected complex_layout None, 'last' or 'first' for a .npy file, got "
                f"{complex_layout!r}"
            )
        shape, dtype = _read_header(path)
        if dtype.fields is not None or dtype.hasobject:
            raise InvalidInputError(f"expected a plain numeric array in {path}, got dtype {dtype}")
        check_dtype(dtype, path)
        if 0 in shape or not shape:
            raise InvalidInputError(f"expected a non-empty array in {path}, got shape {shape}")
        if complex_layout is None:
            if len(shape) != 2:
                advice = _channel_stack_advice(path, shape, dtype)
                if advice:
                    raise InvalidInputError(
                        f"expected a 2-D array (rows, cols) in {path}, got shape {shape}: "
                        f"{advice}")
                if len(shape) == 3 and shape[2] == 2:
                    hint = ("if those are real and imaginary parts, pass complex_layout='last' "
                            "(CLI --complex-layout last)")
                elif len(shape) == 3 and shape[0] == 2:
                    hint = ("if those are real and imaginary parts, pass complex_layout='first' "
                            "(CLI --complex-layout first)")
                else:
                    hint = ("for real/imaginary bands pass complex_layout='last' (rows, cols, 2) "
                            "or 'first' (2, rows, cols) (CLI --complex-layout)")
                raise InvalidInputError(
                    f"expected a 2-D array (rows, cols) in {path}, got shape {shape}; {hint}"
                )
            self.shape = (shape[0], shape[1])
            self.dtype = dtype
        else:
            expected = (
                len(shape) == 3 and (shape[2] if complex_layout == "last" else shape[0]) == 2
            )
            if not expected:
                wanted = "(rows, cols, 2)" if complex_layout == "last" else "(2, rows, cols)"
                raise InvalidInputError(
                    f"expected an array {wanted} for complex_layout={complex_layout!r} in {path}, "
                    f"got shape {shape}"
                )
            if dtype.kind == "c":
                raise InvalidInputError(
                    f"expected real parts for complex_layout={complex_layout!r}, got "
                    f"{dtype.name}; leave complex_layout (CLI --complex-layout) out"
                )
            self.shape = (shape[0], shape[1]) if complex_layout == "last" else (shape[1], shape[2])
            self.dtype = np.dtype(np.complex128 if dtype == np.float64 else np.complex64)
        try:
            self._array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise npy_error(path, error) from error
        self.path = path
        self.complex_layout = complex_layout
        self.nodata = nodata
        self.description = None
        self.tags = {}
        self.georef = Georef()
        self.block_shape = None
        if kind is not None:
            self.kind = check_kind(kind)
            self.kind_reason = "given"
            self._check_kind_matches_dtype()
        else:
            sample = None if self.dtype.kind == "c" else (lambda: self.read_decimated(SAMPLE_SIZE))
            self.kind, self.kind_reason = detect_kind(
                dtype=self.dtype, hints=_sidecar_kind_hint(path), sample=sample, path=path,
                nodata=nodata
            )

    def _slice(self, rows: slice, cols: slice) -> np.ndarray:
        array = self._array
        if self.complex_layout is None:
            return np.array(array[rows, cols])
        if self.complex_layout == "last":
            real, imag = array[rows, cols, 0], array[rows, cols, 1]
        else:
            real, imag = array[0, rows, cols], array[1, rows, cols]
        out = np.empty(real.shape, dtype=self.dtype)
        out.real = real
        out.imag = imag
        return out

    def _read(self, window: Window) -> np.ndarray:
        try:
            return self._slice(*window.slices)
        except (ValueError, OSError) as error:  # a truncated file shows up at the first access
            raise InputFileError(f"cannot read {window} of {self.path}: {error}") from error

    def _read_decimated(self, step: int) -> np.ndarray:
        return self._slice(slice(None, None, step), slice(None, None, step))

    def close(self) -> None:
        self._array = None


def sidecar_path(path: str | os.PathLike) -> str:
    """The provenance sidecar of a ``.npy`` output: ``OUT.npy.json``."""
    return os.fspath(path) + ".json"


def sidecar_tags(path: str | os.PathLike) -> dict[str, str]:
    """The provenance ``tags`` of a ``.npy`` file's sidecar (:func:`sidecar_path`), or ``{}``
    when it has none or it cannot be read (the tags only inform: notes, band names)."""
    tags = (_read_sidecar(path) or {}).get("tags", {})
    return tags if isinstance(tags, dict) else {}


def _read_sidecar(path: str | os.PathLike) -> dict | None:
    """The JSON object of a ``.npy`` file's sidecar, or None (none, unreadable, not an object)."""
    import json

    try:
        with open(sidecar_path(path), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _sidecar_kind_hint(path: str | os.PathLike) -> dict[str, str] | None:
    """``{"sidecar ... kind": KIND}`` when the file's sidecar (:func:`sidecar_path`, written by
    sardespeckle for its .npy outputs and references) says what it holds, else None."""
    record = _read_sidecar(path) or {}
    kind = record.get("kind")
    if not isinstance(kind, str) or record.get("file") != os.path.basename(os.fspath(path)):
        return None
    return {f"sidecar {os.path.basename(sidecar_path(path))} kind": kind}


def sidecar_record(path: str | os.PathLike, *, shape: tuple[int, ...], dtype: np.dtype | str,
                   kind: str | None, tags: dict[str, str] | None) -> dict:
    """The JSON object of a ``.npy`` output's sidecar (see :class:`NpySource`, :class:`NpySink`)."""
    return {"file": os.path.basename(os.fspath(path)), "kind": kind, "nodata": "NaN",
            "shape": list(shape), "dtype": np.dtype(dtype).name, "tags": dict(tags or {})}


def check_sidecar(path: str | os.PathLike, *, overwrite: bool) -> None:
    """:class:`OutputExistsError` when the sidecar of the ``.npy`` output ``path`` exists and
    ``overwrite`` is false (it is replaced like the array itself)."""
    sidecar = sidecar_path(path)
    if os.path.lexists(sidecar) and not overwrite:
        raise OutputExistsError(f"output {sidecar} (the provenance of "
                                f"{os.path.basename(os.fspath(path))}) exists; {OVERWRITE_HINT}")


def publish_with_sidecar(path: str | os.PathLike, record: dict, publish_array):
    """Write ``record`` (JSON) to a temporary file, call ``publish_array()`` (which puts the
    array at ``path``), then publish the sidecar: a sidecar never describes a missing array.
    Returns what ``publish_array`` returns."""
    sidecar = sidecar_path(path)
    temp = temporary_path(sidecar)
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.write("\n")
        result = publish_array()
        publish(temp, sidecar, overwrite=True)  # checked before any work; the array is new
    except BaseException:
        remove_if_exists(temp)
        raise
    return result


def _reserve(temp: str, path: str) -> None:
    """Allocate the disk blocks of the memory-mapped ``temp`` now: a memory map written on a
    full disk dies of SIGBUS at the first page that has no block, with no message and a
    partial file left behind. OutputFileError when the device has no room; filesystems that
    cannot preallocate are left to it."""
    import errno

    try:
        with open(temp, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            from sardespeckle.io.base import free_space

            raise OutputFileError(
                f"cannot write {path}: it needs {os.path.getsize(temp) / 2**20:.1f} MiB, and "
                f"there is {free_space(temp)} ({error.strerror})") from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


class NpySink(Sink):
    """A ``float32``/``float64`` ``.npy`` written through a memory map; NaN at masked pixels.

    The provenance ``tags`` go into :func:`sidecar_path`, a JSON object ``{"file", "kind",
    "nodata", "shape", "dtype", "tags"}`` published with the array (atomically, after it); an
    existing sidecar needs ``overwrite`` like the array itself.
    """

    format = "npy"

    def __init__(
        self,
        path: str,
        *,
        shape: tuple[int, int],
        kind_out: str,
        dtype: np.dtype,
        overwrite: bool,
        tags: dict[str, str] | None = None,
    ) -> None:
        check_sidecar(path, overwrite=overwrite)
        temp = temporary_path(path)
        try:
            self._memmap = [
                np.lib.format.open_memmap(temp, mode="w+", dtype=dtype, shape=tuple(shape))
            ]
            _reserve(temp, path)
        except BaseException:
            if getattr(self, "_memmap", None):
                del self._memmap[0]
            remove_if_exists(temp)
            raise
        super().__init__(
            path=path,
            temp_path=temp,
            shape=shape,
            kind_out=kind_out,
            nodata=float("nan"),
            dtype=dtype,
            overwrite=overwrite,
            tags=tags,
        )

    def _closer(self):
        holder = self._memmap

        def close() -> None:
            if holder:
                holder.pop().flush()

        return close

    def _write(self, window: Window, values: np.ndarray) -> None:
        self._memmap[0][window.slices] = values

    def commit(self) -> str:
        """Publish the array, then its provenance sidecar (see the class notes)."""
        record = sidecar_record(self.path, shape=self.shape, dtype=self.dtype, kind=self.kind_out,
                                tags=self.tags)
        return publish_with_sidecar(self.path, record, super().commit)


def write_npy(path: str, array: np.ndarray, *, overwrite: bool) -> None:
    """Write a whole array as ``.npy``, atomically (see ``write_array``)."""
    temp = temporary_path(path)
    try:
        with open(temp, "wb") as handle:
            np.save(handle, np.asarray(array), allow_pickle=False)
        publish(temp, path, overwrite=overwrite)
    except BaseException:
        remove_if_exists(temp)
        raise
