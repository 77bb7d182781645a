"""Tests of sardespeckle.io: kinds, GeoTIFF/.npy readers and writers, atomic outputs, previews."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from affine import Affine  # noqa: E402
from PIL import Image  # noqa: E402
from rasterio.control import GroundControlPoint  # noqa: E402
from rasterio.crs import CRS  # noqa: E402

from sardespeckle import __version__  # noqa: E402
from sardespeckle.errors import (  # noqa: E402
    InputFileError,
    InvalidInputError,
    OutputExistsError,
    UnknownKindError,
    UsageError,
)
from sardespeckle.io import (  # noqa: E402
    create_sink,
    detect_kind,
    from_intensity,
    open_source,
    output_nodata,
    read_preview_panel,
    save_preview,
    to_intensity,
    write_array,
)
from sardespeckle.io.preview import GAP, MASKED_COLOUR  # noqa: E402
from sardespeckle.io.kinds import check_value_shares, negative_share, overflow_share  # noqa: E402
from sardespeckle.window import Window  # noqa: E402

# The fixtures are deliberately not georeferenced at times; rasterio warns about it.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SHAPE = (64, 48)
UTM = CRS.from_epsg(32631)
TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0)


def amplitude_image(seed: int = 0, shape=SHAPE) -> np.ndarray:
    """Seeded single-look amplitude: a smooth ramp of reflectivity times Rayleigh speckle."""
    rng = np.random.default_rng(seed)
    reflectivity = np.linspace(1.0, 4.0, shape[1])[None, :] * np.ones(shape)
    speckle = np.sqrt(rng.exponential(size=shape))
    return (np.sqrt(reflectivity) * speckle).astype(np.float32) + np.float32(1e-3)


def make_geotiff(path, array, *, count=None, description=None, tags=None, **profile):
    """A small GeoTIFF written with rasterio directly (the fixtures must not depend on io)."""
    array = np.asarray(array)
    bands = array[None] if array.ndim == 2 else array
    options = {
        "driver": "GTiff",
        "height": bands.shape[1],
        "width": bands.shape[2],
        "count": count or bands.shape[0],
        "dtype": profile.pop("dtype", bands.dtype.name),
    }
    options.update(profile)
    with rasterio.open(path, "w", **options) as dataset:
        dataset.write(bands)
        if description:
            dataset.set_band_description(1, description)
        if tags:
            dataset.update_tags(**tags)
    return str(path)


def sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def run_copy(source, output, *, kind_out="amplitude", tags=None, window_size=None, **options):
    """Read the source window by window and write it unchanged (an identity 'method')."""
    with create_sink(output, source, kind_out=kind_out, tags=tags or {}, **options) as sink:
        step = window_size or max(source.shape)
        for row in range(0, source.shape[0], step):
            for col in range(0, source.shape[1], step):
                window = Window(
                    row, col, min(step, source.shape[0] - row), min(step, source.shape[1] - col)
                )
                sink.write(window, *source.read_intensity(window))
    return output


def hidden_leftovers(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".")]


# --- kinds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "hints", "sample", "path", "expected"),
    [
        ("complex64", {"band 1 description": "Amplitude_VV"}, None, None, "complex"),
        ("float32", {"band 1 description": "Amplitude_VV"}, None, None, "amplitude"),
        ("float32", {"band 1 description": "Intensity_VV"}, None, None, "intensity"),
        ("float32", {"band 1 description": "Sigma0_VV_db"}, None, None, "db"),
        ("float32", {"band 1 description": "Sigma0_VV"}, None, None, "intensity"),
        ("float32", {"band 1 description": "gamma0VV"}, None, None, "intensity"),
        ("float32", {"dataset tags": "UNITS=decibel"}, None, None, "db"),
        ("float32", {"band 1 description": "Sigma0_VV_dB"}, None, None, "db"),
        ("float32", {"band 1 description": "AmplitudeVV"}, None, None, "amplitude"),
        ("float32", {"band 1 description": "VV"}, None, "s1_amp_vv.tif", "amplitude"),
        ("float32", None, np.array([1.0, -3.0]), None, "db"),
        ("uint16", None, np.array([0, 300]), None, "amplitude"),
        ("int16", None, np.array([5, 300]), None, "amplitude"),
        # Metadata is trusted before values: an amplitude description wins over the dB guess.
        ("float32", {"band 1 description": "Amplitude_VV"}, np.array([-1.0]), None, "amplitude"),
        # A hint naming both amplitude and intensity is skipped.
        ("float32", {"d": "amplitude or intensity"}, np.array([-1.0]), None, "db"),
    ],
)
def test_detect_kind_rule(dtype, hints, sample, path, expected):
    kind, reason = detect_kind(dtype=dtype, hints=hints, sample=sample, path=path)
    assert kind == expected
    assert isinstance(reason, str) and reason


def test_detect_kind_refuses_ambiguous_float_and_ignores_nodata():
    with pytest.raises(InvalidInputError, match="kind='amplitude' or kind='intensity'"):
        detect_kind(dtype="float32", hints=None, sample=np.array([0.5, 2.0]))
    # A negative nodata value is not evidence of dB data.
    with pytest.raises(InvalidInputError, match="--kind"):
        detect_kind(
            dtype="float32", hints=None, sample=np.array([-9999.0, 2.0, np.nan]), nodata=-9999.0
        )


@pytest.mark.parametrize("kind", ["intensity", "amplitude", "db"])
def test_to_and_from_intensity_round_trip(kind):
    intensity = np.random.default_rng(1).exponential(size=(16, 16)).astype(np.float32) + 0.01
    valid = np.ones(intensity.shape, bool)
    raw = from_intensity(intensity, valid, kind)
    assert raw.dtype == np.float32
    back, back_valid = to_intensity(raw, kind)
    assert back.dtype == np.float32 and back_valid.all()
    np.testing.assert_allclose(back, intensity, rtol=1e-5)


def test_complex_to_intensity_is_squared_modulus():
    z = np.array([[3 + 4j, 0j], [1j, np.nan + 0j]], dtype=np.complex64)
    intensity, valid = to_intensity(z, "complex")
    assert intensity[0, 0] == pytest.approx(25.0) and intensity[1, 0] == pytest.approx(1.0)
    assert valid.tolist() == [[True, False], [True, False]]
    with pytest.raises(UsageError, match="output kind"):
        from_intensity(intensity, valid, "complex")


def test_to_intensity_masks_and_refuses_bad_values():
    raw = np.array([4.0, 0.0, np.nan, np.inf, -9999.0], dtype=np.float32)
    intensity, valid = to_intensity(raw, "amplitude", nodata=-9999.0)
    assert valid.tolist() == [True, False, False, False, False]
    assert intensity[0] == 16.0
    # dB: zero is a valid value (intensity 1), nodata is not.
    _, valid_db = to_intensity(np.array([0.0, -30.0, -9999.0]), "db", nodata=-9999.0)
    assert valid_db.tolist() == [True, True, False]
    # Negative intensity (σ⁰ after thermal-noise removal) and intensities beyond float32 are
    # nodata; data where they are common are refused by check_value_shares.
    _, valid = to_intensity(np.array([1.0, -2.0]), "intensity")
    assert valid.tolist() == [True, False]
    _, valid = to_intensity(np.array([1e30, 3.0]), "amplitude")
    assert valid.tolist() == [False, True]
    assert negative_share(np.array([1.0, -2.0, np.nan, -9999.0]), "intensity",
                          nodata=-9999.0) == 0.5
    assert negative_share(np.array([-1.0]), "db") == 0.0
    assert overflow_share(np.array([1e30, 3.0, np.inf]), "amplitude") == 0.5
    assert overflow_share(np.array([400.0, 3.0]), "db") == 0.5
    check_value_shares(0.5, 0.01, "intensity")
    with pytest.raises(InvalidInputError, match="51% negative.*kind='db'"):
        check_value_shares(0.51, 0.0, "amplitude")
    with pytest.raises(InvalidInputError, match="within float32.*2% of the pixels.*--kind"):
        check_value_shares(0.0, 0.02, "db")
    with pytest.raises(InvalidInputError, match="complex"):
        to_intensity(np.array([1.0]), "complex")
    with pytest.raises(UsageError, match="kind"):
        to_intensity(np.array([1.0]), "sigma")


def test_float32_conversions_equal_the_float64_ones_bit_for_bit():
    """float32 intensity and amplitude skip the float64 detour (the common GeoTIFF case): the
    results are the same bits, over the whole float32 range, subnormals included."""
    values = (10.0 ** np.random.default_rng(3).uniform(-44, 18.5, 20000)).astype(np.float32)
    values[:3] = [0.0, np.nan, -9999.0]
    before = values.copy()
    for kind in ("intensity", "amplitude"):
        fast, fast_valid = to_intensity(values, kind, nodata=-9999.0)
        slow, slow_valid = to_intensity(values.astype(np.float64), kind, nodata=-9999.0)
        assert fast.dtype == slow.dtype == np.float32
        np.testing.assert_array_equal(fast, slow)
        np.testing.assert_array_equal(fast_valid, slow_valid)
        assert np.isnan(fast[2]) and not fast_valid[:3].any()
        out = from_intensity(fast, fast_valid, kind)
        np.testing.assert_array_equal(out, from_intensity(fast.astype(np.float64), fast_valid, kind))
    np.testing.assert_array_equal(values, before)  # the input is never written to
    for kind in ("intensity", "amplitude"):  # negative and overflowing: nodata, as in float64
        raw = np.array([1.0, 2e19, -2.0], dtype=np.float32)
        np.testing.assert_array_equal(to_intensity(raw, kind)[1],
                                      to_intensity(raw.astype(np.float64), kind)[1])


def test_from_intensity_writes_nodata_and_never_collides_with_it():
    intensity = np.array([1.0, 4.0, 9.0], dtype=np.float32)
    valid = np.array([True, False, True])
    out = from_intensity(intensity, valid, "db", nodata_out=0.0)
    # 1.0 intensity is 0 dB, the nodata value: it is moved by one ulp instead.
    assert out[0] != 0.0 and abs(out[0]) < 1e-6
    assert out[1] == 0.0
    assert np.isnan(from_intensity(intensity, valid, "amplitude")[1])
    with pytest.raises(InvalidInputError, match="strictly positive"):
        from_intensity(np.array([-1.0]), np.array([True]), "amplitude")


def test_output_nodata_rule():
    assert output_nodata(None) != output_nodata(None)  # NaN
    assert output_nodata(-9999.0) == -9999.0
    assert output_nodata(0) == 0.0
    assert np.isnan(output_nodata(1e300))  # not representable in float32
    assert np.isnan(output_nodata(0.1))  # not exact in float32
    assert output_nodata(0.1, "float64") == 0.1


# --- GeoTIFF ---------------------------------------------------------------------------------


def test_geotiff_round_trip_keeps_georeferencing_and_writes_provenance(tmp_path):
    amplitude = amplitude_image()
    amplitude[3, 4] = -9999.0
    path = make_geotiff(
        tmp_path / "in.tif", amplitude, crs=UTM, transform=TRANSFORM, nodata=-9999.0,
        description="Amplitude_VV", tags={"MISSION": "S1A", "UNITS": "amplitude"},
    )
    output = tmp_path / "out.tif"
    with open_source(path) as source:
        assert source.kind == "amplitude" and "Amplitude_VV" in source.kind_reason
        info = source.info()
        json.dumps(info)
        assert info["crs"] == "EPSG:32631" and info["nodata"] == -9999.0
        assert info["band_descriptions"] == ["Amplitude_VV"]
        run_copy(source, output, tags={"method": "lee", "parameters": {"window_size": 7},
                                       "looks": 1}, window_size=32, block_size=32)
    assert hidden_leftovers(tmp_path) == []
    with rasterio.open(output) as dataset:
        assert dataset.crs == UTM
        assert dataset.transform.almost_equals(TRANSFORM)
        assert dataset.nodata == -9999.0
        assert dataset.descriptions == ("amplitude VV (despeckled)",)  # the input names VV
        assert dataset.profile["tiled"] and dataset.block_shapes == [(32, 32)]
        assert dataset.compression.name == "deflate"
        assert dataset.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        assert dataset.dtypes == ("float32",)
        tags = dataset.tags()
        data = dataset.read(1)
    assert tags["SARDESPECKLE_METHOD"] == "lee"
    assert json.loads(tags["SARDESPECKLE_PARAMETERS"]) == {"window_size": 7}
    assert tags["SARDESPECKLE_LOOKS"] == "1"
    assert tags["SARDESPECKLE_VERSION"] == __version__
    assert tags["SARDESPECKLE_INPUT_KIND"] == "amplitude"
    assert tags["SARDESPECKLE_OUTPUT_KIND"] == "amplitude"
    assert tags["MISSION"] == "S1A" and "UNITS" not in tags  # the input's units are not ours
    assert data[3, 4] == -9999.0
    keep = np.ones(data.shape, bool)
    keep[3, 4] = False
    np.testing.assert_allclose(data[keep], amplitude[keep], rtol=1e-6)
    # The output is detected back as what it is.
    with open_source(output) as again:
        assert again.kind == "amplitude"


def test_geotiff_with_gcps_keeps_them(tmp_path):
    gcps = [
        GroundControlPoint(row, col, 4.0 + col / 1000, 50.0 - row / 1000, 100.0)
        for row in (0, SHAPE[0]) for col in (0, SHAPE[1])
    ]
    path = make_geotiff(tmp_path / "gcp.tif", amplitude_image() ** 2, gcps=gcps,
                        crs=CRS.from_epsg(4326), description="Intensity_VV")
    output = tmp_path / "out.tif"
    with open_source(path) as source:
        assert source.info()["gcps"] == 4 and source.georef.transform is None
        run_copy(source, output, kind_out="intensity")
    with rasterio.open(output) as dataset:
        written, crs = dataset.gcps
        assert crs == CRS.from_epsg(4326)
        assert [(p.row, p.col, p.x, p.y) for p in written] == [
            (p.row, p.col, p.x, p.y) for p in gcps
        ]
        assert dataset.crs is None and np.isnan(dataset.nodata)


def test_windowed_read_equals_full_read(tmp_path):
    amplitude = amplitude_image(2)
    tif = make_geotiff(tmp_path / "a.tif", amplitude, description="amplitude", tiled=True,
                       blockxsize=16, blockysize=16)
    npy = tmp_path / "a_amplitude.npy"
    np.save(npy, amplitude)
    window = Window(5, 7, 20, 30)
    for path in (tif, npy):
        with open_source(path) as source:
            full_intensity, full_valid = source.read_intensity(Window.full(source.shape))
            part_intensity, part_valid = source.read_intensity(window)
            np.testing.assert_array_equal(part_intensity, full_intensity[window.slices])
            np.testing.assert_array_equal(part_valid, full_valid[window.slices])
            np.testing.assert_array_equal(source.read(window), amplitude[window.slices])
            with pytest.raises(InvalidInputError, match="window"):
                source.read(Window(60, 0, 10, 10))


@pytest.mark.parametrize("dtype", ["complex64", "complex_int16"])
def test_complex_geotiff_gives_squared_modulus(tmp_path, dtype):
    rng = np.random.default_rng(3)
    z = (rng.integers(-50, 50, SHAPE) + 1j * rng.integers(-50, 50, SHAPE)).astype(np.complex64)
    z[0, 0] = 0
    path = make_geotiff(tmp_path / "slc.tif", z, dtype=dtype)
    with open_source(path) as source:
        assert source.kind == "complex" and source.dtype.kind == "c"
        intensity, valid = source.read_intensity(Window.full(source.shape))
    expected = z.real.astype(np.float64) ** 2 + z.imag.astype(np.float64) ** 2
    np.testing.assert_allclose(intensity, expected, rtol=1e-6)
    assert not valid[0, 0] and valid.sum() == (expected > 0).sum()


def test_complex_npy_and_real_imaginary_layouts(tmp_path):
    rng = np.random.default_rng(4)
    z = (rng.normal(size=SHAPE) + 1j * rng.normal(size=SHAPE)).astype(np.complex64)
    expected = np.abs(z.astype(np.complex128)) ** 2
    np.save(tmp_path / "slc.npy", z)
    np.save(tmp_path / "last.npy", np.stack([z.real, z.imag], axis=-1))
    np.save(tmp_path / "first.npy", np.stack([z.real, z.imag]))
    cases = [("slc.npy", None), ("last.npy", "last"), ("first.npy", "first")]
    for name, layout in cases:
        with open_source(tmp_path / name, complex_layout=layout) as source:
            assert source.kind == "complex" and source.shape == SHAPE
            intensity, _ = source.read_intensity(Window(2, 3, 10, 11))
            np.testing.assert_allclose(intensity, expected[2:12, 3:14], rtol=1e-5)
    with pytest.raises(InvalidInputError, match=r"expected a 2-D array .* pass complex_layout="
                                                r"'last' \(CLI --complex-layout last\)"):
        open_source(tmp_path / "last.npy")
    with pytest.raises(InvalidInputError, match=r"pass complex_layout='first' \(CLI "
                                                r"--complex-layout first\)"):
        open_source(tmp_path / "first.npy")
    np.save(tmp_path / "cube.npy", np.ones((3, 4, 5), np.float32))
    with pytest.raises(InvalidInputError, match=r"got shape \(3, 4, 5\); for real/imaginary "
                                                r"bands pass"):
        open_source(tmp_path / "cube.npy")
    with pytest.raises(InvalidInputError, match=r"\(2, rows, cols\)"):
        open_source(tmp_path / "last.npy", complex_layout="first")


def test_two_band_geotiff_is_complex_only_when_asked(tmp_path):
    rng = np.random.default_rng(5)
    parts = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    path = make_geotiff(tmp_path / "iq.tif", parts)
    with open_source(path) as source:  # band 1 alone: real parts, negative, so "dB"
        assert source.dtype == np.float32 and source.kind == "db"
    with open_source(path, complex_layout="bands") as source:
        assert source.kind == "complex" and source.dtype == np.complex64
        intensity, _ = source.read_intensity(Window.full(SHAPE))
    np.testing.assert_allclose(intensity, parts[0] ** 2 + parts[1] ** 2, rtol=1e-5)
    with pytest.raises(UsageError, match="band"):
        open_source(path, complex_layout="bands", band=2)
    with pytest.raises(UsageError, match="complex_layout"):
        open_source(path, complex_layout="last")
    with pytest.raises(InvalidInputError, match="pass complex_layout"):
        open_source(path, kind="complex")


def test_detection_from_files(tmp_path):
    db = 10 * np.log10(amplitude_image() ** 2)
    assert db.min() < 0
    np.save(tmp_path / "scene.npy", db)
    np.save(tmp_path / "scene_float.npy", amplitude_image())
    make_geotiff(tmp_path / "grd.tif", (amplitude_image() * 100).astype(np.uint16))
    with open_source(tmp_path / "scene.npy") as source:
        assert source.kind == "db" and "negative" in source.kind_reason
    with open_source(tmp_path / "grd.tif") as source:
        assert source.kind == "amplitude" and "uint16" in source.kind_reason
    with pytest.raises(InvalidInputError, match="--kind"):
        open_source(tmp_path / "scene_float.npy")
    with open_source(tmp_path / "scene_float.npy", kind="intensity") as source:
        assert source.kind == "intensity" and source.kind_reason == "given"


def test_masked_pixels_are_invalid_and_written_as_nodata(tmp_path):
    amplitude = amplitude_image(6)
    amplitude[0, 0], amplitude[1, 1], amplitude[2, 2] = np.nan, 0.0, -1.0
    tif = make_geotiff(tmp_path / "in.tif", amplitude, nodata=-1.0, description="amplitude")
    npy = tmp_path / "in_amplitude.npy"
    np.save(npy, np.where(amplitude == -1.0, np.nan, amplitude))
    # -1 is a valid dB value: a dB output marks its nodata with NaN instead.
    for source_path, output, kind_out, nodata in [
        (tif, tmp_path / "out.tif", "amplitude", -1.0),
        (tif, tmp_path / "out_db.tif", "db", np.nan),
        (tif, tmp_path / "out.npy", "db", np.nan),
        (npy, tmp_path / "out_from_npy.tif", "db", np.nan),
    ]:
        with open_source(source_path) as source:
            _, valid = source.read_intensity(Window.full(source.shape))
            assert not valid[0, 0] and not valid[1, 1] and not valid[2, 2]
            assert valid.sum() == valid.size - 3
            run_copy(source, output, kind_out=kind_out)
        if str(output).endswith(".npy"):
            data = np.load(output)
        else:
            with rasterio.open(output) as dataset:
                data = dataset.read(1)
                assert (np.isnan(dataset.nodata) and np.isnan(nodata)) or dataset.nodata == nodata
        for index in range(3):
            value = data[index, index]
            assert np.isnan(value) if np.isnan(nodata) else value == nodata
        assert np.isfinite(data[3:, 3:]).all()


def test_per_dataset_mask_is_honoured(tmp_path):
    path = tmp_path / "masked.tif"
    with rasterio.open(path, "w", driver="GTiff", height=SHAPE[0], width=SHAPE[1], count=1,
                       dtype="float32") as dataset:
        dataset.write(amplitude_image(), 1)
        mask = np.full(SHAPE, 255, np.uint8)
        mask[:4] = 0
        dataset.write_mask(mask)
    with open_source(path, kind="amplitude") as source:
        _, valid = source.read_intensity(Window.full(SHAPE))
    assert not valid[:4].any() and valid[4:].all()


# --- outputs: refusals and atomicity ---------------------------------------------------------


def test_overwrite_rules(tmp_path):
    path = make_geotiff(tmp_path / "in.tif", amplitude_image(), description="amplitude")
    output = tmp_path / "out.tif"
    output.write_bytes(b"old")
    with open_source(path) as source:
        with pytest.raises(OutputExistsError, match="--overwrite"):
            create_sink(output, source, kind_out="amplitude")
        assert output.read_bytes() == b"old"
        run_copy(source, output, overwrite=True)
        with pytest.raises(UsageError, match="different from the input"):
            create_sink(path, source, kind_out="amplitude", overwrite=True)
        with pytest.raises(UsageError, match="does not exist"):
            create_sink(tmp_path / "missing" / "out.tif", source, kind_out="amplitude")
        with pytest.raises(UsageError, match=r"\.tif, \.tiff or \.npy"):
            create_sink(tmp_path / "out.png", source, kind_out="amplitude")
        with pytest.raises(UsageError, match="output kind"):
            create_sink(tmp_path / "c.tif", source, kind_out="complex")
        with pytest.raises(UsageError, match="multiple of 16"):
            create_sink(tmp_path / "b.tif", source, kind_out="amplitude", block_size=100)
    with rasterio.open(output) as dataset:
        assert dataset.count == 1
    assert hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_sink_aborted_on_exception_leaves_nothing(tmp_path, suffix):
    path = make_geotiff(tmp_path / "in.tif", amplitude_image(), description="amplitude")
    output = tmp_path / f"out{suffix}"
    with open_source(path) as source:
        with pytest.raises(RuntimeError, match="method failed"):
            with create_sink(output, source, kind_out="amplitude") as sink:
                assert os.path.exists(sink.temp_path)
                assert os.path.dirname(sink.temp_path) == str(tmp_path)
                window = Window(0, 0, 16, 16)
                sink.write(window, *source.read_intensity(window))
                raise RuntimeError("method failed")
        assert not output.exists() and hidden_leftovers(tmp_path) == []
        # A sink dropped without commit nor abort cleans up too.
        sink = create_sink(output, source, kind_out="amplitude")
        temp = sink.temp_path
        del sink
        assert not os.path.exists(temp) and not output.exists()
        # Writing a window of the wrong shape is refused.
        with create_sink(output, source, kind_out="amplitude") as sink:
            with pytest.raises(InvalidInputError, match="window's shape"):
                sink.write(Window(0, 0, 4, 4), np.ones((3, 4), np.float32), np.ones((3, 4), bool))
            sink.abort()
        assert not output.exists() and hidden_leftovers(tmp_path) == []


def test_input_is_never_modified(tmp_path):
    tif = make_geotiff(tmp_path / "in.tif", amplitude_image(), crs=UTM, transform=TRANSFORM,
                       description="amplitude")
    npy = tmp_path / "in_amp.npy"
    np.save(npy, amplitude_image(1))
    before = {path: sha256(path) for path in (tif, npy)}
    for path in (tif, npy):
        with open_source(path) as source:
            source.info()
            read_preview_panel(path)
            run_copy(source, tmp_path / f"out_{os.path.basename(path)}", window_size=16)
    assert {path: sha256(path) for path in (tif, npy)} == before
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["in.tif", "in_amp.npy", "out_in.tif", "out_in_amp.npy", "out_in_amp.npy.json"]
    )


# --- bad inputs ------------------------------------------------------------------------------


def test_bad_input_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        open_source(tmp_path / "absent.tif")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"this is not a TIFF file" * 10)
    with pytest.raises(InputFileError, match="corrupt.tif"):
        open_source(corrupt)
    bad_npy = tmp_path / "corrupt.npy"
    bad_npy.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputFileError):
        open_source(bad_npy)
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.ones((64, 64), np.float32))
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(InputFileError):
        open_source(truncated, kind="intensity")
    with pytest.raises(InputFileError, match="folder"):
        open_source(tmp_path)
    text = tmp_path / "image.png"
    text.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match=r"\.tif, \.tiff or \.npy"):
        open_source(text)
    for name, array in [
        ("bool.npy", np.ones((4, 4), bool)),
        ("strings.npy", np.array([["a", "b"]])),
        ("empty.npy", np.zeros((0, 5), np.float32)),
        ("vector.npy", np.ones(5, np.float32)),
    ]:
        np.save(tmp_path / name, array)
        with pytest.raises(InvalidInputError):
            open_source(tmp_path / name, kind="intensity")
    np.save(tmp_path / "objects.npy", np.array([[None, 1]], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="object"):
        open_source(tmp_path / "objects.npy")
    with pytest.raises(UsageError, match="kind"):
        open_source(tmp_path / "vector.npy", kind="power")


def test_negative_amplitude_points_to_db(tmp_path):
    path = make_geotiff(tmp_path / "x.tif", -np.abs(amplitude_image()), description="amplitude")
    with open_source(path) as source:
        with pytest.raises(InvalidInputError, match="--kind db.*detected from band 1"):
            source.value_shares()
    # A few negative values are nodata, and counted.
    few = amplitude_image()
    few[:2] = -1.0
    path = make_geotiff(tmp_path / "few.tif", few, description="amplitude")
    with open_source(path) as source:
        assert source.value_shares() == (pytest.approx(2 / few.shape[0]), 0.0)
        assert not source.read_intensity(Window.full(source.shape))[1][:2].any()


# --- write_array -----------------------------------------------------------------------------


def test_write_array_round_trip(tmp_path):
    reference = make_geotiff(tmp_path / "ref.tif", amplitude_image(), crs=UTM,
                             transform=TRANSFORM, description="amplitude")
    intensity = amplitude_image(7) ** 2
    with open_source(reference) as like:
        written = write_array(tmp_path / "sim.tif", intensity, like=like, kind="intensity",
                              tags={"looks": 1, "seed": 7})
        with pytest.raises(UsageError, match="different from the input"):
            write_array(reference, intensity, like=like, overwrite=True)
    with open_source(written) as source:
        assert source.kind == "intensity" and source.georef.crs == UTM
        assert source.tags["SARDESPECKLE_SEED"] == "7"
        np.testing.assert_array_equal(source.read(Window.full(source.shape)), intensity)
    write_array(tmp_path / "slc.npy", intensity.astype(np.complex64))
    np.testing.assert_array_equal(np.load(tmp_path / "slc.npy"), intensity.astype(np.complex64))
    with pytest.raises(OutputExistsError):
        write_array(tmp_path / "slc.npy", intensity)
    with pytest.raises(InvalidInputError, match="2-D"):
        write_array(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    assert hidden_leftovers(tmp_path) == []


def test_geotiff_compression_uses_every_core_unless_gdal_is_told(tmp_path, monkeypatch):
    from sardespeckle.io.base import Georef
    from sardespeckle.io.geotiff import _compression_threads, write_geotiff

    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    assert _compression_threads() == {"num_threads": "ALL_CPUS"}
    monkeypatch.setenv("GDAL_NUM_THREADS", "1")
    assert _compression_threads() == {}
    # Threaded or not, the written pixels are the same (several 256² blocks per write).
    values = np.random.default_rng(3).gamma(1.0, 5.0, (700, 900)).astype(np.float32)
    georef = Georef(crs=UTM, transform=TRANSFORM)
    written = {}
    for env in ("1", None):
        if env is None:
            monkeypatch.delenv("GDAL_NUM_THREADS")
        path = tmp_path / f"threads_{env}.tif"
        write_geotiff(str(path), values, georef=georef, nodata=None, description="x", tags={},
                      overwrite=False)
        with open_source(path, kind="intensity") as source:
            written[env] = source.read(Window.full(source.shape))
    np.testing.assert_array_equal(written["1"], values)
    np.testing.assert_array_equal(written[None], values)


# --- previews --------------------------------------------------------------------------------


def test_preview_size_and_shared_stretch(tmp_path):
    intensity = amplitude_image(8) ** 2
    brighter = 2.0 * intensity
    from sardespeckle.io.preview import MIN_PANEL_SIDE

    path = save_preview([intensity, brighter], tmp_path / "p.png")
    # Small panels are enlarged by an integer factor, each pixel drawn as a square.
    up = MIN_PANEL_SIDE // max(SHAPE)
    assert up == 4
    rows, cols = up * SHAPE[0], up * SHAPE[1]
    with Image.open(path) as image:
        assert image.size == (2 * cols + GAP, rows)
        pixels = np.asarray(image.convert("L"), dtype=float)
    left, right = pixels[:, :cols], pixels[:, cols + GAP:]
    np.testing.assert_array_equal(left, np.repeat(np.repeat(left[::up, ::up], up, 0), up, 1))
    assert right.mean() > left.mean() + 5  # same grey levels: twice the intensity looks brighter
    titled = save_preview([intensity, brighter], tmp_path / "t.png", titles=["noisy", "x2"])
    with Image.open(titled) as image:
        assert image.size[0] == 2 * cols + GAP and image.size[1] > rows
    # A panel of MIN_PANEL_SIDE or more is drawn as it is.
    big = np.tile(intensity, (4, 6))
    with Image.open(save_preview([big], tmp_path / "big.png")) as image:
        assert image.size == (big.shape[1], big.shape[0])
    with pytest.raises(OutputExistsError):
        save_preview([intensity], tmp_path / "p.png")
    assert hidden_leftovers(tmp_path) == []


def test_a_panel_drawn_flat_by_the_shared_stretch_is_warned_about(tmp_path, recwarn):
    intensity = amplitude_image(8) ** 2
    save_preview([intensity, 2.0 * intensity], tmp_path / "fine.png", titles=["in", "x2"])
    assert not [w for w in recwarn if "preview:" in str(w.message)]
    # an amplitude given where intensities are shown (or data 60 dB off): one flat colour
    with pytest.warns(UserWarning, match=r"panel 2 \(tiny\) is 100 % at the shared stretch's "
                                         r"black level .* drawn black; check its kind"):
        save_preview([intensity, intensity * 1e-6], tmp_path / "dark.png", titles=["in", "tiny"])
    with pytest.warns(UserWarning, match=r"panel 2 is 100 % at the shared stretch's white"):
        save_preview([intensity, intensity * 1e6], tmp_path / "white.png")
    with pytest.warns(UserWarning, match=r"panel 1 is uniform \(20.0 dB\): drawn in one grey"):
        save_preview([np.full(SHAPE, 100.0)], tmp_path / "flat.png")


def test_preview_downsamples_and_shows_masked_pixels(tmp_path):
    amplitude = amplitude_image(9, shape=(300, 200))
    amplitude[:30, :30] = np.nan
    path = save_preview([amplitude, amplitude], tmp_path / "big.png", kind="amplitude",
                        max_size=100)
    with Image.open(path) as image:
        assert image.size == (2 * 67 + GAP, 100)  # factor 3: ceil(200/3) = 67 columns
        rgb = np.asarray(image.convert("RGB"))
    assert tuple(rgb[0, 0]) == MASKED_COLOUR and tuple(rgb[50, 50]) != MASKED_COLOUR


def test_read_preview_panel_decimates_and_masks(tmp_path):
    amplitude = amplitude_image(10, shape=(120, 90))
    amplitude[:3, :3] = 0.0
    path = make_geotiff(tmp_path / "p.tif", amplitude, description="amplitude")
    panel = read_preview_panel(path, max_size=40)
    assert panel.shape == (40, 30) and panel.dtype == np.float32
    assert np.isnan(panel[0, 0])
    # A decimated read: every value shown is one of the pixels, not an interpolation.
    squares = (amplitude.astype(np.float64) ** 2).astype(np.float32)
    assert np.isin(panel[1:, 1:], squares).all()


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_permissions_of_a_plain_open(tmp_path, suffix, umask):
    # mkstemp makes owner-only files; a published output follows the umask like open() would.
    path = make_geotiff(tmp_path / "in.tif", amplitude_image(), description="amplitude")
    previous = os.umask(umask)
    try:
        with open_source(path) as source:
            run_copy(source, tmp_path / f"out{suffix}", overwrite=False)
    finally:
        os.umask(previous)
    assert (tmp_path / f"out{suffix}").stat().st_mode & 0o777 == 0o666 & ~umask


def test_weights_files_get_the_permissions_of_a_plain_open(tmp_path):
    from sardespeckle.models import DnCNN, save_weights

    previous = os.umask(0o022)
    try:
        save_weights(DnCNN(depth=3, features=4).eval(), tmp_path / "w.pt", name="w", training_data="none")
    finally:
        os.umask(previous)
    assert (tmp_path / "w.pt").stat().st_mode & 0o777 == 0o644


def test_remove_temporaries_deletes_only_unpublished_temporary_outputs(tmp_path):
    from sardespeckle.io.base import publish, remove_temporaries, temporary_path

    remove_temporaries()  # whatever earlier tests left registered
    other = tmp_path / ".o.tif.keep.partial.tif"  # looks like ours, is not
    other.write_bytes(b"user")
    left = temporary_path(str(tmp_path / "o.tif"))
    done = temporary_path(str(tmp_path / "p.tif"))
    publish(done, str(tmp_path / "p.tif"), overwrite=False)
    assert os.path.basename(left).startswith(".o.tif.") and left.endswith(".partial.tif")
    assert remove_temporaries() == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [".o.tif.keep.partial.tif", "p.tif"]
    assert remove_temporaries() == 0


def test_every_band_output_keeps_gcps_and_rpcs(tmp_path):
    """Sentinel-1 GRD/SLC GeoTIFFs are georeferenced by GCPs (and RPCs elsewhere): the
    multi-band output of band='all' keeps them as the one-band output does."""
    from rasterio.rpc import RPC

    from sardespeckle.api import despeckle_file

    gcps = [GroundControlPoint(row, col, 4.0 + col / 1000, 50.0 - row / 1000, 100.0)
            for row in (0, SHAPE[0]) for col in (0, SHAPE[1])]
    rpcs = RPC(height_off=100.0, height_scale=50.0, lat_off=50.0, lat_scale=0.1,
               line_den_coeff=[1.0] + [0.0] * 19, line_num_coeff=[0.0, 1.0] + [0.0] * 18,
               line_off=16.0, line_scale=16.0, long_off=4.0, long_scale=0.1,
               samp_den_coeff=[1.0] + [0.0] * 19, samp_num_coeff=[0.0, 0.0, 1.0] + [0.0] * 17,
               samp_off=16.0, samp_scale=16.0)
    bands = np.stack([amplitude_image(1), amplitude_image(2)])
    path = make_geotiff(tmp_path / "gcp2.tif", bands, gcps=gcps, crs=CRS.from_epsg(4326),
                        rpcs=rpcs, description="Amplitude_VV")
    out = tmp_path / "all.tif"
    despeckle_file(path, out, method="boxcar", looks=1, kind="amplitude", band="all")
    with rasterio.open(out) as dataset, rasterio.open(path) as source:
        assert dataset.count == 2
        written, crs = dataset.gcps
        assert crs == CRS.from_epsg(4326)
        assert [(p.row, p.col, p.x, p.y) for p in written] == [(p.row, p.col, p.x, p.y)
                                                                for p in gcps]
        assert dataset.rpcs is not None
        assert dataset.rpcs.to_dict() == source.rpcs.to_dict()


def test_int16_iq_bands_are_not_taken_for_db(tmp_path):
    """Two int16 bands negative as often as not are the I/Q parts of an SLC, not dB; a
    complex layout over bands described as amplitudes is refused."""
    iq = np.round(np.random.default_rng(0).normal(size=(2, 40, 44)) * 60).astype(np.int16)
    path = make_geotiff(tmp_path / "iq.tif", iq)
    with pytest.raises(UnknownKindError, match="negative integers.*--complex-layout bands"):
        open_source(path)
    with open_source(path, complex_layout="bands") as source:
        assert source.kind == "complex"
    with open_source(path, kind="db") as source:  # as told
        assert source.kind == "db"
    one = make_geotiff(tmp_path / "one.tif", iq[0])  # one band: nothing to pair it with
    with open_source(one) as source:
        assert source.kind == "db"
    pair = make_geotiff(tmp_path / "vvvh.tif", np.abs(iq).astype(np.float32) + 1,
                        description="Amplitude_VV")
    with pytest.raises(UsageError, match="described as 'Amplitude_VV'.*leave it out"):
        open_source(pair, complex_layout="bands")


def test_band_scale_and_offset_are_applied_on_reading(tmp_path):
    """Packed integers with a GDAL scale/offset are read as the physical values they stand
    for (the output, float32, has no scale): never 1000× off without a word."""
    amplitude = amplitude_image(3)
    packed = np.round(amplitude * 1000).astype(np.uint16)
    packed[0, 0] = 0
    path = make_geotiff(tmp_path / "scaled.tif", packed, description="Amplitude_VV", nodata=0)
    with rasterio.open(path, "r+") as dataset:
        dataset.scales = (0.001,)
        dataset.offsets = (0.5,)
    with open_source(path) as source:
        assert source.info()["scale_offset"] == [[0.001, 0.5]]
        values = source.read(Window.full(source.shape))
        assert np.isnan(values[0, 0])
        np.testing.assert_allclose(values.ravel()[1:], packed.ravel()[1:] * 0.001 + 0.5)
        intensity, valid = source.read_intensity(Window.full(source.shape))
        assert not valid[0, 0] and valid.ravel()[1:].all()
        decimated = source.read_decimated(8)  # scaled too (GDAL resamples: values, not places)
        assert max(decimated.shape) <= 8
        assert np.nanmin(decimated) >= 0.5 and np.nanmax(decimated) <= np.nanmax(values)
    # without the description nothing says amplitude: physical floats, so the kind is asked
    plain = make_geotiff(tmp_path / "plain.tif", packed)
    with rasterio.open(plain, "r+") as dataset:
        dataset.scales = (0.001,)
    with pytest.raises(UnknownKindError, match="pass kind"):
        open_source(plain)


def test_files_that_are_not_npy_arrays_are_named_for_what_they_are(tmp_path):
    text = tmp_path / "text.npy"
    text.write_text("hello\n")
    tiff = tmp_path / "renamed.npy"
    tiff.write_bytes(b"II*\x00" + bytes(200))
    whole = tmp_path / "whole.npy"
    np.save(whole, np.ones((64, 64)))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(whole.read_bytes()[:3000])
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    from sardespeckle.io.npy import npy_error

    for path, message in ((text, "is not a .npy file \\(it looks like a text file\\)"),
                          (tiff, "is not a .npy file \\(it looks like a TIFF\\)"),
                          (cut, "is truncated: it is shorter than its header says")):
        with pytest.raises(InputFileError, match=message):
            open_source(path, kind="intensity")
    try:
        np.load(objects, allow_pickle=False)
    except ValueError as error:
        assert "holds Python objects (a pickle)" in str(npy_error(str(objects), error))


def test_scaled_and_signed_bands_are_read_for_what_they_are(tmp_path):
    """Scaled int16 I/Q is still refused as I/Q; a scaled complex band keeps its phase; two
    int16 bands of dB values (one sign) are dB, not I/Q; values that do not fit the kind are
    counted over the whole raster, not only its centre."""
    rng = np.random.default_rng(1)
    iq = np.round(rng.normal(size=(2, 40, 44)) * 300).astype(np.int16)
    scaled_iq = make_geotiff(tmp_path / "iq.tif", iq)
    with rasterio.open(scaled_iq, "r+") as dataset:
        dataset.scales = (0.001, 0.001)
    with pytest.raises(UnknownKindError, match="--complex-layout bands"):
        open_source(scaled_iq)
    slc = (rng.normal(size=(40, 44)) + 1j * rng.normal(size=(40, 44))).astype(np.complex64)
    scaled_slc = make_geotiff(tmp_path / "slc.tif", slc * 300)
    with rasterio.open(scaled_slc, "r+") as dataset:
        dataset.scales = (0.001,)
    with open_source(scaled_slc) as source:
        assert source.kind == "complex"
        np.testing.assert_allclose(source.read(Window.full(source.shape)), slc * 0.3, rtol=1e-5)
    db_bands = make_geotiff(tmp_path / "db.tif", rng.integers(-25, 1, (2, 40, 44)).astype(np.int16))
    with open_source(db_bands) as source:
        assert source.kind == "db"
    ring = np.sqrt(rng.exponential(1.0, (1100, 1100))).astype(np.float32)
    ring[:60] = -ring[:60]  # 5 % negative, all outside the central 1024² window
    path = tmp_path / "ring_amplitude.npy"
    np.save(path, ring)
    with open_source(path) as source:
        negative, overflow = source.value_shares()
    assert 0.02 < negative < 0.1 and overflow == 0.0


def test_a_band_given_as_text_or_bool_is_refused_as_such(tmp_path):
    path = make_geotiff(tmp_path / "two.tif", np.ones((2, 8, 8), np.float32))
    for band in ("1", True, 1.0):
        with pytest.raises(UsageError, match=r"expected band as an integer from 1.*got .*\("):
            open_source(path, kind="amplitude", band=band)
    with pytest.raises(UsageError, match="expected a band in 1..2"):
        open_source(path, kind="amplitude", band=3)
    source = open_source(path, kind="amplitude", band=np.int64(2))
    assert source.band == 2
    source.close()


def test_negative_values_decide_db_unless_they_are_small_thermal_noise_negatives():
    from sardespeckle.errors import UnknownKindError

    rng = np.random.default_rng(0)
    # Linear σ⁰ of water and land with thermal-noise negatives and a bright urban strip.
    sigma0 = 0.01 * rng.exponential(1.0, (64, 64)) + 0.003 * rng.exponential(1.0, (64, 64)) - 0.004
    sigma0[:, :2] = 3.0
    assert 0.1 < np.mean(sigma0 < 0) < 0.5
    with pytest.raises(UnknownKindError, match="all within .* of 0"):
        detect_kind(dtype="float32", hints=None, sample=sigma0)
    # A heavily multilooked dB mosaic: all negative, narrow: dB, as its sign says.
    mosaic = -6.5 + 0.2 * rng.standard_normal((64, 64))
    assert detect_kind(dtype="float32", hints=None, sample=mosaic)[0] == "db"
    # Single-look dB around -3 dB: a third negative, reaching far below 0: dB.
    speckled = 10 * np.log10(2 * rng.exponential(1.0, (64, 64)))
    assert 0.1 < np.mean(speckled < 0) < 0.5
    assert detect_kind(dtype="float32", hints=None, sample=speckled)[0] == "db"
