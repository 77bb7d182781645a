"""Covariance-field files and the ``sardespeckle covariance`` command (MuLoG, D = 2 and 3)."""

import hashlib

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.cli.main import main
from sardespeckle.covariance import (check_memory, covariance_bands, covariance_from_channels,
                                     fill_nodata, nodata_mask, preview_rows, read_covariance_input,
                                     write_covariance)
from sardespeckle.errors import InputFileError, InvalidInputError, UsageError
from sardespeckle.mulog.hermitian import simulate_wishart


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def true_field(size=48, dim=2, coherence=0.6):
    """A smooth field: two regions of different powers, a constant complex coherence."""
    power = np.ones((size, size, dim))
    power[:, size // 2:] *= np.linspace(1, 4, dim)  # right half brighter, more so in channel D
    field = np.zeros((size, size, dim, dim), np.complex128)
    for i in range(dim):
        for j in range(dim):
            rho = 1.0 if i == j else coherence * np.exp(0.7j * (j - i))
            field[..., i, j] = rho * np.sqrt(power[..., i] * power[..., j])
    return field


def channels_of(field, seed):
    """Single-look complex channels with covariance ``field``: k = chol(C)·w, w ~ CN(0, I)."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(field)
    white = (rng.standard_normal(field.shape[:3]) + 1j * rng.standard_normal(field.shape[:3]))
    return np.einsum("...ij,...j->...i", chol, white / np.sqrt(2))


def write_complex_tif(path, array):
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype="complex64", crs="EPSG:32631",
                   transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.complex64), 1)
    return path


def boxcar(field, size):
    from scipy.ndimage import uniform_filter

    return (uniform_filter(field.real, size=(size, size, 1, 1), mode="reflect")
            + 1j * uniform_filter(field.imag, size=(size, size, 1, 1), mode="reflect"))


def log_euclidean_error(a, b):
    def logm(c):
        values, vectors = np.linalg.eigh(c)
        return vectors @ (np.log(np.maximum(values, 1e-12))[..., None] * np.conj(np.swapaxes(vectors, -1, -2)))
    return float(np.mean(np.abs(logm(a) - logm(b)) ** 2))


def test_covariance_from_channels_is_the_outer_product():
    k = np.array([[[1 + 1j, 2 - 0.5j]]])
    c = covariance_from_channels(k)
    assert c.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(c[0, 0], np.outer(k[0, 0], np.conj(k[0, 0])))
    np.testing.assert_allclose(c[0, 0], np.conj(c[0, 0].T))
    assert c[0, 0, 0, 0].real == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="complex"):
        covariance_from_channels(np.ones((4, 4, 2)))
    with pytest.raises(InvalidInputError, match="D in 2..4"):
        covariance_from_channels(np.ones((4, 4, 5), complex))


def test_inputs_field_stack_and_channel_files_agree(tmp_path):
    field = true_field()
    k = channels_of(field, 0)
    np.save(tmp_path / "stack.npy", k)
    np.save(tmp_path / "field.npy", covariance_from_channels(k))
    np.save(tmp_path / "c1.npy", k[..., 0])
    np.save(tmp_path / "c2.npy", k[..., 1])
    write_complex_tif(tmp_path / "c1.tif", k[..., 0])
    write_complex_tif(tmp_path / "c2.tif", k[..., 1])
    from_field, like, single = read_covariance_input([tmp_path / "field.npy"])
    assert like is None and not single and from_field.shape == (48, 48, 2, 2)
    for inputs in ([tmp_path / "stack.npy"], [tmp_path / "c1.npy", tmp_path / "c2.npy"]):
        built, like, single = read_covariance_input(inputs)
        assert single and like is None
        np.testing.assert_allclose(built, from_field, rtol=1e-12)
    built, like, single = read_covariance_input([tmp_path / "c1.tif", tmp_path / "c2.tif"])
    assert single and like is not None and str(like.georef.crs) == "EPSG:32631"
    np.testing.assert_allclose(built, from_field, rtol=1e-5)


def write_multiband_tif(path, bands, dtype):
    profile = dict(driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                   count=bands.shape[0], dtype=dtype, crs="EPSG:32631",
                   transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands.astype(dtype))
    return path


def test_one_geotiff_of_complex_bands_or_iq_pairs_gives_the_same_field(tmp_path):
    field = true_field(dim=2)
    k = channels_of(field, 4).astype(np.complex64)
    expected = covariance_from_channels(k)
    complex_bands = write_multiband_tif(tmp_path / "slc.tif", np.moveaxis(k, -1, 0), "complex64")
    iq = np.stack([k[..., 0].real, k[..., 0].imag, k[..., 1].real, k[..., 1].imag])
    iq_bands = write_multiband_tif(tmp_path / "iq.tif", iq, "float32")  # SNAP: i_VV q_VV i_VH q_VH
    for path in (complex_bands, iq_bands):
        built, like, single = read_covariance_input([path])
        assert single and str(like.georef.crs) == "EPSG:32631"
        np.testing.assert_allclose(built, expected, rtol=1e-5, atol=1e-6)
    odd = write_multiband_tif(tmp_path / "odd.tif", iq[:3], "float32")
    with pytest.raises(InvalidInputError, match="pairs"):
        read_covariance_input([odd])
    one = write_multiband_tif(tmp_path / "one.tif", iq[:2], "float32")
    with pytest.raises(InvalidInputError, match="2-4"):
        read_covariance_input([one])


def test_bad_inputs_are_refused_with_clear_errors(tmp_path):
    field = true_field()
    k = channels_of(field, 1)
    np.save(tmp_path / "c1.npy", k[..., 0])
    np.save(tmp_path / "small.npy", k[:10, :10, 0])
    np.save(tmp_path / "real.npy", np.abs(k[..., 1]))
    np.save(tmp_path / "realfield.npy", field.real)
    np.save(tmp_path / "flat.npy", np.ones((48, 48), complex))
    negative = covariance_from_channels(k)
    negative[3, 3, 0, 0] = -1.0
    np.save(tmp_path / "negative.npy", negative)
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    cases = [
        ([tmp_path / "missing.npy"], InputFileError, "no such file"),
        ([tmp_path / "broken.npy"], InputFileError, "is not a .npy file"),
        ([tmp_path / "c1.npy", tmp_path / "real.npy"], InvalidInputError, "complex 2-D"),
        ([tmp_path / "c1.npy", tmp_path / "small.npy"], InvalidInputError, "co-registered"),
        ([tmp_path / "realfield.npy"], InvalidInputError, "complex covariance"),
        ([tmp_path / "flat.npy"], InvalidInputError, "shape"),
        ([tmp_path / "negative.npy"], InvalidInputError, "negative intensities"),
        ([tmp_path / "c1.npy"] * 5, UsageError, "2-4"),
    ]
    for index in range(2):
        with rasterio.open(tmp_path / f"grd{index}.tif", "w", driver="GTiff", width=48,
                           height=48, count=1, dtype="float32") as dst:
            dst.write(np.abs(k[..., index]).astype(np.float32), 1)
    cases.append(([tmp_path / "grd0.tif", tmp_path / "grd1.tif"], InvalidInputError,
                  "complex band.*sardespeckle run"))
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            read_covariance_input(inputs)
    np.save(tmp_path / "tiny.npy", covariance_from_channels(k[:8, :8]))
    with pytest.raises(InvalidInputError, match="too small") as small:
        read_covariance_input([tmp_path / "tiny.npy"])
    assert "looks like (D, D, rows, cols)" not in str(small.value)
    field = covariance_from_channels(k)
    np.save(tmp_path / "transposed.npy", np.moveaxis(field, (2, 3), (0, 1)))
    with pytest.raises(InvalidInputError, match=r"looks like \(D, D, rows, cols\).*moveaxis"):
        read_covariance_input(tmp_path / "transposed.npy")
    with pytest.raises(InvalidInputError, match="GiB"):
        check_memory((10000, 10000, 3, 3), available=8 * 2**30)
    assert check_memory((100, 100, 2, 2), available=8 * 2**30) == 100 * 100 * 4 * 250


def test_the_same_channel_file_twice_is_refused(tmp_path, capsys):
    # One file as both channels would make a singular field (coherence 1 everywhere).
    k = channels_of(true_field(), 4)
    np.save(tmp_path / "vv.npy", k[..., 0])
    np.save(tmp_path / "vh.npy", k[..., 1])
    (tmp_path / "link.npy").symlink_to(tmp_path / "vv.npy")
    vv, vh = str(tmp_path / "vv.npy"), str(tmp_path / "vh.npy")
    for twice in ([vv, vv], [vv, vh, str(tmp_path / ".." / tmp_path.name / "vv.npy")],
                  [vv, str(tmp_path / "link.npy")]):
        with pytest.raises(UsageError, match="same file twice"):
            read_covariance_input(twice)
        out = tmp_path / "out.npy"
        assert main(["covariance", *twice, "-o", str(out), "-q"]) == 2
        err = capsys.readouterr().err
        assert "expected distinct channel files, got the same file twice" in err
        assert f"{twice[0]} (channel 1) and {twice[-1]} (channel {len(twice)})" in err
        assert not out.exists()
    assert read_covariance_input([vv, vh])[0].shape == (48, 48, 2, 2)


def test_geotiff_output_has_named_bands_and_the_inputs_georeferencing(tmp_path):
    field = true_field(dim=3)
    k = channels_of(field, 2)
    paths = [write_complex_tif(tmp_path / f"c{i}.tif", k[..., i]) for i in range(3)]
    built, like, _ = read_covariance_input(paths)
    out = write_covariance(tmp_path / "out.tif", built, like=like, tags={"method": "test"})
    with rasterio.open(out) as ds:
        assert ds.count == 9 and str(ds.crs) == "EPSG:32631"
        assert ds.transform == from_origin(600000, 5800000, 10, 10)
        assert ds.descriptions[:4] == ("C11", "C22", "C33", "Re C12")
        assert ds.tags()["SARDESPECKLE_METHOD"] == "test"
        bands = ds.read()
    expected, names = covariance_bands(built)
    assert names[-1] == "Im C23"
    np.testing.assert_allclose(bands, expected, rtol=1e-6)
    with pytest.raises(UsageError, match="different from the input"):
        write_covariance(paths[0], built, inputs=paths, overwrite=True)


def test_preview_rows_share_one_stretch():
    field = true_field(dim=2)
    rows = preview_rows(field, field)
    assert len(rows) == 2  # RGB, then the phase of C12
    np.testing.assert_array_equal(rows[0][0], rows[0][1])
    assert rows[1][0].shape == (48, 48, 3) and rows[1][0].dtype == np.uint8
    assert len(preview_rows(true_field(dim=3), true_field(dim=3))) == 1


def test_the_phase_preview_fades_with_the_coherence():
    # Noise phase (incoherent channels, e.g. VV/VH) must not look like fringes: colour
    # saturation follows the coherence, the input's over a 5×5 window.
    def saturation(panel):
        rgb = panel.astype(np.float64)
        return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean() / 255)

    coherent, incoherent = true_field(coherence=0.95), true_field(coherence=0.0)
    strong = preview_rows(coherent, coherent)[1][1]
    weak = preview_rows(incoherent, incoherent)[1][1]
    assert saturation(strong) > 0.9 and saturation(weak) < 0.02
    noisy_in = covariance_from_channels(channels_of(incoherent, 3))
    rows = preview_rows(noisy_in, incoherent)
    assert saturation(rows[1][0]) < 0.45  # measured single-look pixels: coherence 1 each
    noisy_coherent = covariance_from_channels(channels_of(coherent, 3))
    assert saturation(preview_rows(noisy_coherent, coherent)[1][0]) > 0.8


@pytest.mark.parametrize("dim", [2, 3])
def test_cli_despeckles_channels_and_keeps_inputs(tmp_path, capsys, dim):
    field = true_field(size=64, dim=dim)
    k = channels_of(field, 3)
    inputs = []
    for i in range(dim):
        np.save(tmp_path / f"c{i}.npy", k[..., i])
        inputs.append(str(tmp_path / f"c{i}.npy"))
    before = [sha(tmp_path / f"c{i}.npy") for i in range(dim)]
    out, png = tmp_path / "out.npy", tmp_path / "preview.png"
    code = main(["covariance", *inputs, "-o", str(out), "--denoiser", "dncnn-sar",
                 "--preview", str(png)])
    assert code == 0, capsys.readouterr().err
    assert "iteration 6/6" in capsys.readouterr().err
    result = np.load(out)
    assert result.shape == (64, 64, dim, dim) and result.dtype == np.complex64
    np.testing.assert_allclose(result, np.conj(np.swapaxes(result, -1, -2)), atol=1e-3)
    assert np.linalg.eigvalsh(result.astype(np.complex128)).min() > 0
    # Better than a classical multilook: boxcar 5×5 and 7×7 (≈ 25 and 49 looks, which blur
    # the edge); measured 0.015 / 0.021 vs 0.043 / 0.045 (5×5) and 0.026 / 0.025 (7×7).
    noisy = covariance_from_channels(k)
    error = log_euclidean_error(result, field)
    assert error < 0.6 * log_euclidean_error(boxcar(noisy, 5), field)
    assert error < log_euclidean_error(boxcar(noisy, 7), field)
    assert png.stat().st_size > 1000
    assert [sha(tmp_path / f"c{i}.npy") for i in range(dim)] == before
    # An existing output is kept (exit 1), an input is never an output (exit 2).
    stamp = sha(out)
    assert main(["covariance", *inputs, "-o", str(out), "--denoiser", "dncnn-sar", "-q"]) == 1
    assert sha(out) == stamp and "exists" in capsys.readouterr().err
    assert main(["covariance", *inputs, "-o", inputs[0], "--overwrite", "-q"]) == 2
    assert [sha(tmp_path / f"c{i}.npy") for i in range(dim)] == before


def test_cli_needs_looks_for_a_field_and_checks_arguments(tmp_path, capsys):
    field = true_field()
    np.save(tmp_path / "field.npy", simulate_wishart(field, 3, seed=0))
    out = tmp_path / "out.npy"
    assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(out), "-q"]) == 2
    assert "--looks" in capsys.readouterr().err and not out.exists()
    assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(tmp_path / "out.png"),
                 "--looks", "3", "-q"]) == 2
    assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(out), "--looks", "3",
                 "--denoiser", "nope", "-q"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["covariance", str(tmp_path / "field.npy"), "-o", str(out), "--looks", "-1"])
    assert exit_info.value.code == 2
    code = main(["covariance", str(tmp_path / "field.npy"), "-o", str(out), "--looks", "3",
                 "--denoiser", "dncnn-sar", "--iterations", "3", "-q"])
    assert code == 0 and np.load(out).shape == field.shape
    # GeoTIFF output records what ran: the resolved prior weight and the weights' identity.
    tif = tmp_path / "out.tif"
    assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(tif), "--looks", "1",
                 "--denoiser", "dncnn-sar", "--iterations", "2", "-q"]) == 0
    with rasterio.open(tif) as ds:
        tags = ds.tags()
    assert float(tags["SARDESPECKLE_LAM"]) == pytest.approx(0.82 ** 2)  # fixed-σ rule at L = 1
    assert tags["SARDESPECKLE_WEIGHTS"].startswith("dncnn-sar-s25 sha256:")
    assert tags["SARDESPECKLE_METHOD"] == "mulog-covariance"
    import torch

    assert tags["SARDESPECKLE_DEVICE"] == ("cuda" if torch.cuda.is_available() else "cpu")
    # CUDA for BM3D is refused before any work (BM3D runs on the CPU), and an unknown device
    # is an argument error.
    capsys.readouterr()
    assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(tmp_path / "b.npy"),
                 "--looks", "3", "--device", "cuda", "-q"]) == 2
    assert "runs on the CPU only" in capsys.readouterr().err
    assert not (tmp_path / "b.npy").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["covariance", str(tmp_path / "field.npy"), "-o", str(out), "--looks", "3",
              "--device", "tpu"])
    assert exit_info.value.code == 2


def test_nodata_pixels_are_filled_for_the_run_and_written_as_nan(tmp_path, capsys):
    field = true_field(size=64, dim=2)
    k = channels_of(field, 5)
    k[:, :6] = 0  # a zero-filled swath border, as in SLC products
    k[40, 40, 0] = np.nan
    k[20, 30, :] = 0  # a weak return in every channel of a quantised SLC: a sample, not a hole
    invalid = nodata_mask(covariance_from_channels(k))
    assert invalid[:, :6].all() and invalid[40, 40] and invalid[20, 30]
    assert invalid.sum() == 64 * 6 + 2
    noisy = covariance_from_channels(k)
    filled = fill_nodata(noisy, invalid)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~invalid], noisy[~invalid])
    # Smooth: the border holds a local mean of the valid pixels, far less speckled than they are.
    border = filled[:, :6, 0, 0].real
    assert border.std() < 0.3 * filled[:, 6:, 0, 0].real.std()
    assert 0.5 < border.mean() / filled[:, 6:12, 0, 0].real.mean() < 1.5
    with pytest.raises(InvalidInputError, match="every pixel"):
        fill_nodata(filled, np.ones((64, 64), bool))
    np.save(tmp_path / "stack.npy", k)
    out = tmp_path / "out.tif"
    assert main(["covariance", str(tmp_path / "stack.npy"), "-o", str(out),
                 "--denoiser", "dncnn-sar", "--iterations", "3"]) == 0
    assert "385 missing pixels" in capsys.readouterr().err
    with rasterio.open(out) as ds:
        bands = ds.read()
        assert np.isnan(ds.nodata)
    holes = invalid.copy()
    holes[20, 30] = False  # estimated, as 'run' does for isolated zeros (tiling.weak_zeros)
    assert np.isnan(bands[:, holes]).all() and np.isfinite(bands[:, ~holes]).all()
    assert bands[0, 20, 30] > 0
    # The valid part matches a run on the valid crop alone (the border does not leak in).
    np.save(tmp_path / "crop.npy", k[:, 6:])
    assert main(["covariance", str(tmp_path / "crop.npy"), "-o", str(tmp_path / "crop.npy.out.npy"),
                 "--denoiser", "dncnn-sar", "--iterations", "3", "-q"]) == 0
    crop = np.load(tmp_path / "crop.npy.out.npy")
    change = np.abs(bands[0][:, 6:] / crop[..., 0, 0].real - 1)  # NaN at the missing pixel
    # Measured: median 0.003, p99 0.08, 0.12 within 8 px of the border (statistics from all
    # pixels, filled ones included: 0.024 / 0.17; nearest-pixel fill as well: 0.021 / 0.46).
    assert np.nanmedian(change) < 0.01
    assert np.nanpercentile(change, 99) < 0.15
    assert np.nanpercentile(change[:, :8], 99) < 0.2


def test_statistics_come_from_the_valid_pixels_only():
    from sardespeckle.mulog import mulog_covariance
    from sardespeckle.mulog.matrix import robust_noise_std

    rng = np.random.default_rng(0)
    image = rng.normal(0, 2.0, (64, 64))
    valid = np.ones((64, 64), bool)
    valid[:, :20] = False
    image[:, :20] = 0.0  # a flat filled region would pull the MAD down
    assert robust_noise_std(image) < 1.6
    assert robust_noise_std(image, valid) == pytest.approx(2.0, rel=0.08)
    field = true_field(size=32, dim=2)
    with pytest.raises(InvalidInputError, match="valid"):
        mulog_covariance(field, looks=4, denoiser=lambda v, s: v, valid=np.ones((5, 5), bool))
    with pytest.raises(InvalidInputError, match="valid"):
        mulog_covariance(field, looks=4, denoiser=lambda v, s: v, valid=np.zeros((32, 32), bool))


def test_correlated_single_look_channels_are_subsampled(tmp_path, capsys):
    # SLC channels with SAR-like correlated speckle: a denoiser trained on white noise keeps
    # the speckle blobs; despeckling the four polyphase components (auto picks it) does not.
    from sardespeckle.covariance import despeckle_covariance_files
    from sardespeckle.decorrelate import simulate_correlated_slc

    truth = np.full((96, 96), 4.0)
    truth[:, 48:] = 16.0
    truth[30:60, 15:40] = 1.0
    for index, seed in enumerate((1, 2)):
        np.save(tmp_path / f"c{index}.npy", simulate_correlated_slc(truth, seed=seed).astype(np.complex64))
    inputs = [str(tmp_path / "c0.npy"), str(tmp_path / "c1.npy")]
    errors = {}
    for mode in ("none", "subsample"):
        report = despeckle_covariance_files(inputs, tmp_path / f"{mode}.npy", denoiser="dncnn-sar",
                                            decorrelate=mode)
        out = np.load(tmp_path / f"{mode}.npy")
        assert np.linalg.eigvalsh(out.astype(np.complex128)).min() > 0
        errors[mode] = np.mean(np.abs(np.log(out[..., 0, 0].real / truth)))
        assert report["decorrelate"] == mode
    assert errors["subsample"] < 0.6 * errors["none"]  # measured 0.071 vs 0.196 (128²)
    assert main(["covariance", *inputs, "-o", str(tmp_path / "auto.npy"), "--denoiser",
                 "dncnn-sar"]) == 0
    err = capsys.readouterr().err
    assert "note: decorrelate=subsample (single-look input with speckle correlation" in err
    # ... said before the work: the note comes before the first iteration, which counts the
    # four polyphase components.
    assert err.index("note: decorrelate=subsample") < err.index("iteration 1/24")
    assert "MuLoG runs on each of its 4 polyphase components" in err
    np.testing.assert_array_equal(np.load(tmp_path / "auto.npy"), np.load(tmp_path / "subsample.npy"))
    # White single-look speckle (simulated) is left as it is.
    k = channels_of(true_field(size=64), 3)
    for index in range(2):
        np.save(tmp_path / f"w{index}.npy", k[..., index])
    white = [str(tmp_path / "w0.npy"), str(tmp_path / "w1.npy")]
    assert despeckle_covariance_files(white, tmp_path / "w.npy", denoiser="dncnn-sar",
                                      decorrelate="auto")["decorrelate"] == "none"
    with pytest.raises(UsageError, match="decorrelate"):
        despeckle_covariance_files(white, tmp_path / "x.npy", decorrelate="whiten")


def test_looks_auto_measures_them_and_too_many_given_looks_draw_a_note(tmp_path, capsys):
    field = true_field(size=64)
    np.save(tmp_path / "field.npy", simulate_wishart(field, 1, seed=3))
    out = {}
    for looks in ("3", "auto"):
        target = tmp_path / f"out_{looks}.npy"
        assert main(["covariance", str(tmp_path / "field.npy"), "-o", str(target), "--looks",
                     looks, "--denoiser", "dncnn-sar"]) == 0
        out[looks] = (np.load(target), capsys.readouterr().err)
    assert "note: the field measures" in out["3"][1] and "fewer than the 3" in out["3"][1]
    measured = float(out["auto"][1].split("looks: ")[1].split(" (measured)")[0])
    assert 0.7 < measured < 1.4 and "note: the field measures" not in out["auto"][1]
    # Told three looks, MuLoG under-corrects its log-domain bias: a darker result.
    ratio = {key: np.mean(value[0][..., 0, 0].real) / np.mean(field[..., 0, 0].real)
             for key, value in out.items()}
    assert abs(ratio["auto"] - 1) < 0.1 and ratio["3"] < ratio["auto"] - 0.1
    with pytest.raises(SystemExit) as exit_info:
        main(["covariance", str(tmp_path / "field.npy"), "-o", str(tmp_path / "x.npy"),
              "--looks", "many"])
    assert exit_info.value.code == 2


def test_a_preview_of_a_4x4_field_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    # A preview draws D = 2 (RGB and phase) or D = 3 (Pauli): a D = 4 field is refused before
    # MuLoG runs and before any output is written, not after the whole run.
    import sardespeckle.mulog

    monkeypatch.setattr(sardespeckle.mulog, "mulog_covariance",
                        lambda *a, **k: pytest.fail("MuLoG ran"))
    k = channels_of(true_field(size=32, dim=4), 6)
    inputs = []
    for index in range(4):
        np.save(tmp_path / f"c{index}.npy", k[..., index])
        inputs.append(str(tmp_path / f"c{index}.npy"))
    out, png = tmp_path / "d4.tif", tmp_path / "d4.png"
    assert main(["covariance", *inputs, "-o", str(out), "--preview", str(png),
                 "--denoiser", "dncnn-sar", "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert "expected a field of 2×2 or 3×3 matrices for a preview" in err
    assert "got 4×4; leave --preview out" in err and "iteration" not in err
    assert not out.exists() and not png.exists()


def test_the_same_data_under_two_names_is_refused(tmp_path, capsys):
    # A copy of one channel given as the other: the path check cannot see it, the pixels can.
    k = channels_of(true_field(), 7)
    np.save(tmp_path / "vv.npy", k[..., 0])
    np.save(tmp_path / "vv_copy.npy", k[..., 0])
    np.save(tmp_path / "vh.npy", k[..., 1])
    write_complex_tif(tmp_path / "vv.tif", k[..., 0])
    write_complex_tif(tmp_path / "copy.tif", k[..., 0])
    np.save(tmp_path / "stack.npy", np.stack([k[..., 0], k[..., 1], k[..., 0]], axis=-1))
    cases = [
        ([tmp_path / "vv.npy", tmp_path / "vv_copy.npy"], "vv.npy (channel 1) and",
         "vv_copy.npy (channel 2)"),
        ([tmp_path / "vh.npy", tmp_path / "vv.tif", tmp_path / "copy.tif"],
         "vv.tif (channel 2) and", "copy.tif (channel 3)"),
        ([tmp_path / "stack.npy"], "stack.npy[..., 0] (channel 1) and",
         "stack.npy[..., 2] (channel 3)"),
    ]
    for inputs, first, again in cases:
        with pytest.raises(UsageError, match="identical pixels") as error:
            read_covariance_input(inputs)
        assert first in str(error.value) and again in str(error.value)
        assert "singular covariance" in str(error.value)
    out = tmp_path / "out.npy"
    assert main(["covariance", str(tmp_path / "vv.tif"), str(tmp_path / "copy.tif"),
                 "-o", str(out), "-q"]) == 2
    assert "expected different data in each channel" in capsys.readouterr().err
    assert not out.exists()
    assert read_covariance_input([tmp_path / "vv.tif", tmp_path / "vh.npy"])[0].shape == \
        (48, 48, 2, 2)


def test_a_rescaled_copy_of_a_channel_is_refused_but_a_coherent_pair_is_not(tmp_path):
    k = channels_of(true_field(coherence=0.95), 7)  # a highly coherent but real pair
    vv = k[..., 0].astype(np.complex64)
    np.save(tmp_path / "vv.npy", vv)
    np.save(tmp_path / "vv_db_scaled.npy", (vv.astype(np.complex128) * 3.7 * np.exp(0.4j)
                                            ).astype(np.complex64))  # rescaled, re-rounded
    np.save(tmp_path / "vh.npy", k[..., 1])
    same = r"up to a constant factor \(coherence (0\.9999|1\.0000)"
    with pytest.raises(UsageError, match=same) as error:
        read_covariance_input([tmp_path / "vv.npy", tmp_path / "vv_db_scaled.npy"])
    assert "vv_db_scaled.npy (channel 2)" in str(error.value)
    field, _, _ = read_covariance_input([tmp_path / "vv.npy", tmp_path / "vh.npy"])
    assert field.shape == (48, 48, 2, 2)


def test_a_multiband_channel_file_draws_a_note_on_its_unused_bands(tmp_path, capsys):
    from sardespeckle.covariance import despeckle_covariance_files, unused_band_notes

    k = channels_of(true_field(size=32), 8)
    dual = write_multiband_tif(tmp_path / "dp2.tif", np.moveaxis(k, -1, 0), "complex64")
    with rasterio.open(dual, "r+") as dataset:
        dataset.set_band_description(1, "VV")
        dataset.set_band_description(2, "VH")
    other = channels_of(true_field(size=32), 9)[..., 1]
    write_complex_tif(tmp_path / "vh.tif", other)
    np.save(tmp_path / "vh.npy", other)
    # Given alone, every band of the file is a channel: nothing is ignored.
    assert unused_band_notes(dual) == [] and unused_band_notes([dual]) == []
    notes = unused_band_notes([dual, tmp_path / "vh.tif"])
    assert notes == [f"{dual} has 2 bands; band 1 (VV) is channel 1 and the other band is "
                     "ignored (one band per channel file; a GeoTIFF that holds every channel "
                     "as bands is given alone)"]
    assert unused_band_notes([tmp_path / "vh.tif", tmp_path / "vh.npy"]) == []
    out = tmp_path / "out.tif"
    assert main(["covariance", str(dual), str(tmp_path / "vh.npy"), "-o", str(out),
                 "--denoiser", "dncnn-sar", "--iterations", "1"]) == 0
    err = capsys.readouterr().err
    assert f"note: {notes[0]}" in err
    assert err.index("note: ") < err.index("iteration 1/")  # before the work
    report = despeckle_covariance_files([dual, tmp_path / "vh.npy"], tmp_path / "api.npy",
                                        denoiser="dncnn-sar", iterations=1)
    assert report["notes"] == notes


def test_a_single_path_is_one_input_not_its_characters(tmp_path):
    from pathlib import Path

    from sardespeckle.covariance import despeckle_covariance_files

    field = true_field(size=32)
    np.save(tmp_path / "field.npy", simulate_wishart(field, 3, seed=1))
    path = str(tmp_path / "field.npy")
    for given in (path, Path(path), [path]):
        built, like, single = read_covariance_input(given)
        assert built.shape == (32, 32, 2, 2) and like is None and not single
    report = despeckle_covariance_files(path, str(tmp_path / "out.npy"), looks=3,
                                        denoiser="dncnn-sar", iterations=1)
    assert report["output"] == str(tmp_path / "out.npy")
    assert np.load(tmp_path / "out.npy").shape == (32, 32, 2, 2)


def test_a_npy_output_gets_its_provenance_in_a_sidecar(tmp_path, capsys):
    import json

    field = true_field(size=32)
    np.save(tmp_path / "field.npy", simulate_wishart(field, 3, seed=2))
    args = ["covariance", str(tmp_path / "field.npy"), "--looks", "3", "--denoiser",
            "dncnn-sar", "--iterations", "1", "-q"]
    out, tif = tmp_path / "out.npy", tmp_path / "out.tif"
    assert main([*args, "-o", str(out)]) == 0
    assert main([*args, "-o", str(tif)]) == 0
    sidecar = json.loads((tmp_path / "out.npy.json").read_text())
    assert sidecar["file"] == "out.npy" and sidecar["kind"] == "covariance"
    assert sidecar["shape"] == [32, 32, 2, 2] and sidecar["dtype"] == "complex64"
    with rasterio.open(tif) as dataset:
        tags = dataset.tags()
    assert sidecar["tags"] == tags  # the provenance the GeoTIFF carries
    assert sidecar["tags"]["SARDESPECKLE_LOOKS"] == "3.0"
    assert sidecar["tags"]["SARDESPECKLE_WEIGHTS"].startswith("dncnn-sar-s25 sha256:")
    # As for run: an existing sidecar needs --overwrite, checked before any work.
    out.unlink()
    stamp = sha(tmp_path / "out.npy.json")
    assert main([*args, "-o", str(out)]) == 1
    assert "out.npy.json (the provenance of out.npy) exists" in capsys.readouterr().err
    assert not out.exists() and sha(tmp_path / "out.npy.json") == stamp
    assert main([*args, "-o", str(out), "--overwrite"]) == 0
    assert out.exists() and json.loads((tmp_path / "out.npy.json").read_text())["tags"]


def test_channels_on_different_grids_are_refused(tmp_path, capsys):
    k = channels_of(true_field(), 10)
    write_complex_tif(tmp_path / "vv.tif", k[..., 0])
    with rasterio.open(tmp_path / "vh.tif", "w", driver="GTiff", width=48, height=48, count=1,
                       dtype="complex64", crs="EPSG:4326",
                       transform=from_origin(5.0, 45.0, 0.001, 0.001)) as dataset:
        dataset.write(k[..., 1].astype(np.complex64), 1)
    np.save(tmp_path / "vh.npy", k[..., 1])
    with pytest.raises(InvalidInputError, match="resample onto one grid first") as error:
        read_covariance_input([tmp_path / "vv.tif", tmp_path / "vh.tif"])
    assert "EPSG:32631" in str(error.value) and "EPSG:4326" in str(error.value)
    out = tmp_path / "out.tif"
    assert main(["covariance", str(tmp_path / "vv.tif"), str(tmp_path / "vh.tif"), "-o",
                 str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'vv.tif'} (EPSG:32631" in err
    assert f"{tmp_path / 'vh.tif'} (EPSG:4326" in err
    assert not out.exists()
    # A .npy channel carries no georeferencing: nothing to compare.
    assert read_covariance_input([tmp_path / "vv.tif", tmp_path / "vh.npy"])[0].shape == \
        (48, 48, 2, 2)


def test_real_channel_geotiffs_get_a_hint_this_command_can_follow(tmp_path, capsys):
    # The reader's own hint names --complex-layout, which `covariance` does not have.
    k = channels_of(true_field(), 11)
    for index in range(2):
        with rasterio.open(tmp_path / f"amp{index}.tif", "w", driver="GTiff", width=48,
                           height=48, count=1, dtype="float32") as dataset:
            dataset.write(np.abs(k[..., index]).astype(np.float32), 1)
    inputs = [str(tmp_path / "amp0.tif"), str(tmp_path / "amp1.tif")]
    assert main(["covariance", *inputs, "-o", str(tmp_path / "out.tif"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{inputs[0]}: expected a complex band (one SLC channel), got float32" in err
    assert "complex-layout" not in err and "complex_layout" not in err
    assert "SNAP's i_VV q_VV i_VH q_VH" in err and "'sardespeckle run' on each band" in err


def test_strong_scatterers_keep_their_input_matrix():
    from sardespeckle.keep_targets import keep_covariance_targets

    truth = true_field(size=128, dim=3, coherence=0.5)
    noisy = covariance_from_channels(channels_of(truth, 7))
    targets = [(20, 30), (64, 64), (100, 90), (40, 110)]
    gains = [(1, 1, 300), (300, 300, 300), (300, 300, 300), (300, 300, 300)]
    for (row, col), gain in zip(targets, gains):  # the first: bright in channel 3 only
        root = np.sqrt(np.array(gain, float))
        noisy[row, col] = root[:, None] * noisy[row, col] * root[None, :]
    despeckled = boxcar(noisy, 7)  # dims the targets as networks do (~1/49 of their excess)
    out, mask = keep_covariance_targets(noisy, despeckled, looks=1, false_alarm=1e-4)
    assert all(mask[row, col] for row, col in targets)
    assert mask.sum() <= len(targets) + 3  # 1e-4 of 16384 pixels pass by chance: ~2
    np.testing.assert_array_equal(out[~mask], despeckled[~mask])
    for row, col in targets:
        kept = out[row, col]
        assert np.linalg.eigvalsh(kept).min() > 0  # conditioned: positive definite
        np.testing.assert_allclose(kept, noisy[row, col], rtol=1e-3, atol=1e-3 * abs(kept).max())
    # what the method kept already is left alone: no pixel passes twice
    again, mask_again = keep_covariance_targets(noisy, out, looks=1, false_alarm=1e-4)
    assert not mask_again[mask].any()
    np.testing.assert_array_equal(again[mask], out[mask])


def test_cli_keep_targets_restores_power_and_is_recorded(tmp_path, capsys):
    import json

    field = true_field(size=64)
    noisy = simulate_wishart(field, 1, seed=4)
    noisy[10:54:11, 10:54:11] *= 400.0  # 16 point targets
    np.save(tmp_path / "field.npy", noisy)
    args = ["covariance", str(tmp_path / "field.npy"), "--looks", "1", "--denoiser",
            "dncnn-sar", "--iterations", "3"]
    assert main([*args, "-o", str(tmp_path / "plain.npy"), "-q"]) == 0
    assert main([*args, "-o", str(tmp_path / "kept.npy"), "--keep-targets", "1e-5"]) == 0
    err = capsys.readouterr().err
    assert "strong-scatterer pixels kept" in err
    count = int(err.split(" strong-scatterer pixels kept")[0].rsplit(", ", 1)[1])
    assert 16 <= count <= 20
    plain, kept = np.load(tmp_path / "plain.npy"), np.load(tmp_path / "kept.npy")
    targets = np.zeros(noisy.shape[:2], bool)
    targets[10:54:11, 10:54:11] = True
    power = np.real(np.trace(noisy, axis1=2, axis2=3))
    assert np.real(np.trace(plain, axis1=2, axis2=3))[targets].mean() < 0.3 * power[targets].mean()
    np.testing.assert_allclose(np.real(np.trace(kept, axis1=2, axis2=3))[targets],
                               power[targets], rtol=1e-3)
    sidecar = json.loads((tmp_path / "kept.npy.json").read_text())
    assert float(sidecar["tags"]["SARDESPECKLE_KEEP_TARGETS"]) == 1e-5
    assert "SARDESPECKLE_KEEP_TARGETS" not in json.loads(
        (tmp_path / "plain.npy.json").read_text())["tags"]
    for bad in ("0.5", "abc", "nan"):
        with pytest.raises(SystemExit) as exit_code:  # argparse: a usage error
            main([*args, "-o", str(tmp_path / "bad.npy"), "--keep-targets", bad, "-q"])
        assert exit_code.value.code == 2
        assert "false-alarm rate in (0, 0.01]" in capsys.readouterr().err
    assert not (tmp_path / "bad.npy").exists()
    assert main([*args, "-o", str(tmp_path / "off.npy"), "--keep-targets", "off"]) == 0
    assert "strong-scatterer" not in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "off.npy"), plain)
    # single-look: the kept matrices are rank one, and the command says what that means ...
    assert f"note: {count} of the {count} kept pixels hold rank-deficient input matrices" in err
    assert "coherence 1 by construction" in err
    # ... which multilooked (full-rank) matrices are not, whatever their number of looks
    multilooked = simulate_wishart(field, 3, seed=4)
    multilooked[10:54:11, 10:54:11] *= 400.0
    np.save(tmp_path / "multi.npy", multilooked)
    assert main(["covariance", str(tmp_path / "multi.npy"), "--looks", "1.5", "--denoiser",
                 "dncnn-sar", "--iterations", "3", "-o", str(tmp_path / "multi_kept.npy"),
                 "--keep-targets", "1e-5"]) == 0
    err = capsys.readouterr().err
    assert "strong-scatterer pixels kept" in err and "coherence 1" not in err


def test_a_geotiff_of_named_element_bands_is_read_back_as_a_field(tmp_path, capsys):
    field = true_field(dim=3)
    k = channels_of(field, 2)
    paths = [write_complex_tif(tmp_path / f"c{i}.tif", k[..., i]) for i in range(3)]
    built, like, _ = read_covariance_input(paths)
    ours = write_covariance(tmp_path / "ours.tif", built, like=like)
    again, header, single_look = read_covariance_input(ours)
    assert not single_look  # a stored field's looks are not known: --looks is asked for
    assert header.georef.transform == from_origin(600000, 5800000, 10, 10)
    np.testing.assert_allclose(again, built, rtol=1e-6, atol=1e-6 * np.abs(built).max())
    # SNAP's names, in another order, and a coherency (T) matrix
    bands, names = covariance_bands(built)
    snap = [name.replace("Re C", "C").replace("Im C", "C") for name in names]
    snap = [n + ("_real" if o.startswith("Re") else "_imag" if o.startswith("Im") else "")
            for n, o in zip(snap, names)]
    order = [4, 0, 8, 2, 1, 7, 3, 6, 5]
    for letter in ("C", "T"):
        path = tmp_path / f"snap_{letter}.tif"
        profile = dict(driver="GTiff", width=48, height=48, count=9, dtype="float32")
        with rasterio.open(path, "w", **profile) as dst:
            for band, index in enumerate(order, 1):
                dst.write(bands[index], band)
                dst.set_band_description(band, snap[index].replace("C", letter))
        read, _, _ = read_covariance_input(path)
        np.testing.assert_allclose(read, built, rtol=1e-6, atol=1e-6 * np.abs(built).max())
    # the command takes it, with its looks
    assert main(["covariance", str(ours), "-o", str(tmp_path / "again.npy"), "-q"]) == 2
    assert "looks" in capsys.readouterr().err
    assert main(["covariance", str(ours), "-o", str(tmp_path / "again.npy"), "--looks", "1",
                 "--denoiser", "dncnn-sar", "--iterations", "1"]) == 0
    assert "already a sardespeckle output" not in capsys.readouterr().err  # 'ours' has no tags
    # an output fed back in draws a note (GeoTIFF tags or .npy sidecar)
    for name in ("again.tif", "again2.npy"):
        source = tmp_path / ("again.npy" if name == "again.tif" else "again.tif")
        assert main(["covariance", str(source), "-o", str(tmp_path / name), "--looks", "1",
                     "--denoiser", "dncnn-sar", "--iterations", "1"]) == 0
        err = capsys.readouterr().err
        assert f"note: {source} is already a sardespeckle output (mulog-covariance, 1.0 looks)" \
            in err, err
    import json

    assert json.loads((tmp_path / "again2.npy.json").read_text())["tags"][
        "SARDESPECKLE_MATRIX"] == "C"
    # two stored fields given as channels: said as such, not as "not complex"
    with pytest.raises(InvalidInputError, match="its bands are the elements of a covariance "
                                                "field .* give a stored field alone"):
        read_covariance_input([ours, tmp_path / "again.tif"])
    # 'run' reads a diagonal band as the intensity it is, and refuses an off-diagonal one
    assert main(["run", str(ours), "-o", str(tmp_path / "c11.tif"), "--method", "lee",
                 "-q"]) == 0
    for extra in (["--band", "5"], ["--band", "4", "--kind", "intensity"],
                  ["--band", "3", "--complex-layout", "bands"], ["--band", "all"]):
        capsys.readouterr()
        assert main(["run", str(ours), "-o", str(tmp_path / "c12.tif"), "--method", "lee",
                     *extra, "-q"]) == 1
        err = capsys.readouterr().err
        assert "part of the matrix element C12, not an image of one channel" in err, err
        assert f"sardespeckle covariance {ours}" in err and "--band 1 (C11), 2 (C22)" in err
        assert not (tmp_path / "c12.tif").exists()


@pytest.mark.parametrize("descriptions, message", [
    (("C11", "C22", "C12_real", "band 4"), "unnamed: band 4"),
    (("C11", "C22", "C12_real", "C12_real"), "given twice: C12 re; missing: C12 im"),
    (("C11", "C22", "C12_real", "T12_imag"), "C .covariance. and T .coherency. elements mixed"),
    (("C11", "C22", "C33", "C12_real"), "missing: C12 im; outside a 2×2 matrix: C33"),
    (("C11", "C21_real", "C21_imag", "C22"), "lower-triangle element; the upper one, C12"),
])
def test_element_bands_that_do_not_make_a_field_are_refused(tmp_path, descriptions, message):
    path = tmp_path / "bad.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=4,
                       dtype="float32") as dst:
        for band, text in enumerate(descriptions, 1):
            dst.write(np.ones((32, 32), np.float32), band)
            dst.set_band_description(band, text)
    with pytest.raises(InvalidInputError, match=message):
        read_covariance_input(path)


def test_matrix_element_names():
    from sardespeckle.io.kinds import element_problem, matrix_element
    from sardespeckle.io.kinds import kind_from_text

    assert matrix_element("C11") == ("C", 0, 0, "re")
    assert matrix_element("Im C23") == ("C", 1, 2, "im")
    assert matrix_element("t13_Imag") == ("T", 0, 2, "im")
    assert matrix_element("C12_real") == ("C", 0, 1, "re")
    for text in ("C12", "C11_real", "C21_real", "Re C12_imag", "VV", "C15", None, ""):
        assert matrix_element(text) is None, text
    assert element_problem("C21_real").startswith("'C21_real' is a lower-triangle element")
    assert "no real/imaginary parts" in element_problem("C11_real")
    assert element_problem("C12_real") is None and element_problem("VV") is None
    assert kind_from_text("C11") == kind_from_text("T33") == "intensity"
    assert kind_from_text("C12_real") is None and kind_from_text("C11_db") == "db"


def test_a_coherency_matrix_keeps_its_names_and_its_pauli_colours(tmp_path, capsys):
    from sardespeckle.covariance import preview_rgb

    c3 = covariance_from_channels(channels_of(true_field(dim=3, coherence=0.4), 5))
    pauli = np.array([[1, 0, 1], [1, 0, -1], [0, np.sqrt(2), 0]]) / np.sqrt(2)
    t3 = pauli @ c3 @ pauli.T  # k_T = [HH+VV, HH−VV, 2HV]/√2 from k_C = [HH, √2 HV, VV]
    from_c, _ = preview_rgb(c3)
    from_t, _ = preview_rgb(t3, letter="T")
    assert np.abs(from_c.astype(int) - from_t.astype(int)).max() <= 1
    assert np.abs(preview_rgb(t3)[0].astype(int) - from_c.astype(int)).max() > 50  # read as C
    bands, names = covariance_bands(t3, "T")
    path = tmp_path / "t3.tif"
    with rasterio.open(path, "w", driver="GTiff", width=48, height=48, count=9,
                       dtype="float32") as dst:
        for band, (values, name) in enumerate(zip(bands, names), 1):
            dst.write(values, band)
            dst.set_band_description(band, name)
    out, png = tmp_path / "t3_out.tif", tmp_path / "t3.png"
    assert main(["covariance", str(path), "-o", str(out), "--looks", "1", "--denoiser",
                 "dncnn-sar", "--iterations", "1", "--preview", str(png), "-q"]) == 0
    with rasterio.open(out) as dataset:
        assert dataset.descriptions == tuple(names) and names[0] == "T11"
        assert dataset.tags()["SARDESPECKLE_MATRIX"] == "T"
    # through .npy: the sidecar carries the matrix, and the next run reads it back
    npy, again = tmp_path / "t3.npy", tmp_path / "t3_again.tif"
    for source, target in ((path, npy), (npy, again)):
        assert main(["covariance", str(source), "-o", str(target), "--looks", "1",
                     "--denoiser", "dncnn-sar", "--iterations", "1", "-q"]) == 0
    with rasterio.open(again) as dataset:
        assert dataset.descriptions[0] == "T11" and dataset.tags()["SARDESPECKLE_MATRIX"] == "T"
    assert png.stat().st_size > 1000


def test_an_element_equal_to_a_zero_nodata_value_is_a_value(tmp_path):
    # nodata = 0 marks the border, where every band is 0; inside, Im C12 = 0 is a real value
    field = covariance_from_channels(channels_of(true_field(), 3))
    field[..., 0, 1] = field[..., 0, 1].real
    field[..., 1, 0] = field[..., 0, 1]
    field[:4] = 0
    bands, names = covariance_bands(field)
    path = tmp_path / "nodata0.tif"
    with rasterio.open(path, "w", driver="GTiff", width=48, height=48, count=4,
                       dtype="float32", nodata=0) as dst:
        for band, (values, name) in enumerate(zip(bands, names), 1):
            dst.write(values, band)
            dst.set_band_description(band, name)
    read, _, _ = read_covariance_input(path)
    assert np.isnan(read[:4]).all()
    np.testing.assert_allclose(read[4:], field[4:], rtol=1e-6, atol=1e-6 * np.abs(field).max())
    assert nodata_mask(read).sum() == 4 * 48


def test_a_dead_channel_is_named(tmp_path):
    field = simulate_wishart(true_field(size=32), 2, seed=1)
    field[..., 1, :] = 0
    field[..., :, 1] = 0
    np.save(tmp_path / "dead.npy", field)
    with pytest.raises(InvalidInputError, match=r"dead.npy: channel 2 \(C22\) has no positive "
                                                r"intensity .* leave it out"):
        read_covariance_input(tmp_path / "dead.npy")
    # channels from files: the dead one is named by its own file (the advice is to leave it out)
    rng = np.random.default_rng(2)
    good = (rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32))).astype(np.complex64)
    np.save(tmp_path / "vv.npy", good)
    np.save(tmp_path / "vh.npy", np.zeros((32, 32), np.complex64))
    with pytest.raises(InvalidInputError, match=r"vh.npy: channel 2 \(C22\) has no positive"):
        read_covariance_input([tmp_path / "vv.npy", tmp_path / "vh.npy"])
