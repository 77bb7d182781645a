"""Inputs of several channels or parts: SLC real/imaginary bands named by their descriptions,
complex values without a phase, fields that are not covariances, stacks given to ``run``."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.api import despeckle
from sardespeckle.cli.main import main
from sardespeckle.covariance import (choose_covariance_decorrelation, covariance_from_channels,
                                     nodata_mask, read_covariance_input)
from sardespeckle.errors import InvalidInputError, UnknownKindError, UsageError
from sardespeckle.io import open_source
from sardespeckle.io.kinds import iq_part, iq_reorder_hint, slc_parts
from sardespeckle.mulog.matrix import COHERENCE_LIMIT, NOT_COVARIANCE_SHARE, check_coherence


def slc(shape=(64, 64), seed=0, level=4.0):
    rng = np.random.default_rng(seed)
    return (np.sqrt(level / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
            ).astype(np.complex64)


def write_bands(path, bands, descriptions):
    """A float32 GeoTIFF of ``bands`` (real arrays) with these band descriptions."""
    profile = dict(driver="GTiff", width=bands[0].shape[1], height=bands[0].shape[0],
                   count=len(bands), dtype="float32", crs="EPSG:32631",
                   transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        for index, (band, description) in enumerate(zip(bands, descriptions), 1):
            dst.write(band.astype(np.float32), index)
            dst.set_band_description(index, description)
    return path


# --- names of SLC parts ---------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("i_VV", ("re", "vv")), ("q_VV", ("im", "vv")), ("Q_HH_slv1_12Jan2020", ("im", "hh_slv1_12jan2020")),
    ("real", ("re", "")), ("Imaginary", ("im", "")), ("Re_HH", ("re", "hh")), ("im VH", ("im", "vh")),
    ("Intensity_VV", None), ("Im C12", None), ("C12_imag", None), ("i", ("re", "")),
    ("", None), (None, None), ("Amplitude_VV", None), ("iq", None),
])
def test_slc_part_names_are_recognised_and_nothing_else(text, expected):
    assert iq_part(text) == expected


def test_pairs_and_the_reorder_hint_follow_the_descriptions():
    snap = ["i_VV", "q_VV", "i_VH", "q_VH"]
    assert slc_parts(snap) == [("vv", 1, 2), ("vh", 3, 4)]
    assert iq_reorder_hint(snap) == "the pairs start at bands 1, 3 (--band 1)"
    shuffled = ["i_VV", "i_VH", "q_VV", "q_VH"]
    assert slc_parts(shuffled) == [("vv", 1, 3), ("vh", 2, 4)]
    assert iq_reorder_hint(shuffled).startswith("gdal_translate -b 1 -b 3 -b 2 -b 4 ")
    # SNAP's SLC export with its virtual intensities: those are not parts
    assert slc_parts(["i_VV", "q_VV", "Intensity_VV", "i_VH", "q_VH", "Intensity_VH"]) == [
        ("vv", 1, 2), ("vh", 4, 5)]
    # repeated bare names pair in order; a lone bare word is not a part, a named one is
    assert slc_parts(["I", "Q", "I", "Q"]) == [("", 1, 2), ("", 3, 4)]
    assert slc_parts(["I"]) == [] and slc_parts(["real", "Amplitude"]) == []
    assert slc_parts(["i_VV", "q_VH"]) == [("vv", 1, None), ("vh", None, 2)]
    assert iq_reorder_hint(["i_VV", "q_VH"]) == ""  # parts without partners: no command
    assert slc_parts(["q_HH", "i_HH"]) == [("hh", 2, 1)]
    assert iq_reorder_hint(["q_HH", "i_HH"]).startswith("gdal_translate -b 2 -b 1 ")


# --- GeoTIFF bands described as SLC parts ---------------------------------------------------


def test_a_band_described_as_an_slc_part_is_not_read_as_an_image(tmp_path):
    z = slc()
    path = write_bands(tmp_path / "slc.tif", [z.real, z.imag], ["i_HH", "q_HH"])
    with pytest.raises(UnknownKindError, match=r"'i_HH', the real part of an SLC channel.*"
                                               r"--complex-layout bands --band 1"):
        open_source(path)
    with pytest.raises(UnknownKindError, match="'q_HH', the imaginary part.*--band 1"):
        open_source(path, band=2)
    with pytest.warns(UserWarning, match="'i_HH', the real part of an SLC channel; read as amplitude"):
        open_source(path, kind="amplitude").close()  # the caller's word goes, with a warning
    with open_source(path, complex_layout="bands") as source:
        assert source.kind == "complex"
        np.testing.assert_array_equal(source.read_decimated(64), z)


def test_a_bare_part_word_needs_its_partner_a_named_part_does_not(tmp_path):
    # "I" alone may mean intensity, "real" a real-valued product: only a pair says SLC
    intensity = np.abs(slc()) ** 2
    for descriptions in (["I"], ["real"], ["Q", "Amplitude_VV"]):
        path = write_bands(tmp_path / f"{len(descriptions)}{descriptions[0]}.tif",
                           [intensity] * len(descriptions), descriptions)
        with open_source(path, kind="intensity") as source:
            assert source.kind == "intensity"
    # "i_VV" names an SLC part even when the file lacks its q_VV (a partial export)
    z = slc()
    lone = write_bands(tmp_path / "lone.tif", [z.real], ["i_VV"])
    with pytest.raises(UnknownKindError, match="'i_VV', the real part of an SLC channel, not an "
                                               "image: the file names no band as its imaginary"):
        open_source(lone)
    orphans = write_bands(tmp_path / "orphans.tif", [z.real, z.imag], ["i_VV", "q_VH"])
    with pytest.raises(UsageError, match=r"bands 1 \('i_VV'\), 2 \('q_VH'\) are not"):
        open_source(orphans, complex_layout="bands")
    # a named real part followed by an undescribed band: the user's pairing is taken
    partial = write_bands(tmp_path / "partial.tif", [z.real, z.imag], ["i_VV", ""])
    with open_source(partial, complex_layout="bands") as source:
        np.testing.assert_array_equal(source.read_decimated(64), z)


def test_a_part_name_that_also_names_a_kind_is_an_slc_part(tmp_path):
    z = slc()
    path = write_bands(tmp_path / "sigma.tif", [z.real, z.imag], ["i_Sigma0_VV", "q_Sigma0_VV"])
    with pytest.raises(UnknownKindError, match="--complex-layout bands --band 1"):
        open_source(path)
    with open_source(path, complex_layout="bands") as source:  # the advice works
        assert source.kind == "complex"


def test_repeated_bare_part_names_point_to_their_own_pair(tmp_path):
    a, b = slc(seed=1), slc(seed=2)
    path = write_bands(tmp_path / "iqiq.tif", [a.real, a.imag, b.real, b.imag], ["I", "Q", "I", "Q"])
    with pytest.raises(UnknownKindError, match="--complex-layout bands --band 3"):
        open_source(path, band=3)
    with pytest.raises(UnknownKindError, match="'Q', the imaginary part.*--band 3"):
        open_source(path, band=4)
    with open_source(path, complex_layout="bands", band=3) as source:
        np.testing.assert_array_equal(source.read_decimated(64), b)


def test_bands_paired_against_their_descriptions_are_refused_with_the_fix(tmp_path):
    vv, vh = slc(seed=1), slc(seed=2)
    shuffled = write_bands(tmp_path / "iiqq.tif", [vv.real, vh.real, vv.imag, vh.imag],
                           ["i_VV", "i_VH", "q_VV", "q_VH"])
    with pytest.raises(UsageError, match=r"bands 1 \('i_VV'\), 2 \('i_VH'\) are not the real "
                                         r"and imaginary parts of one SLC channel.*gdal_translate "
                                         r"-b 1 -b 3 -b 2 -b 4"):
        open_source(shuffled, complex_layout="bands")
    ordered = write_bands(tmp_path / "iqiq.tif", [vv.real, vv.imag, vh.real, vh.imag],
                          ["i_VV", "q_VV", "i_VH", "q_VH"])
    with pytest.raises(UsageError, match=r"bands 2 \('q_VV'\), 3 \('i_VH'\).*pairs start at bands 1, 3"):
        open_source(ordered, complex_layout="bands", band=2)
    with open_source(ordered, complex_layout="bands", band=3) as source:
        np.testing.assert_array_equal(source.read_decimated(64), vh)
    # covariance reads the pairs the descriptions name: a shuffled file is refused (a
    # problem of the file: exit 1), not misread; SNAP's virtual intensities are left out
    with pytest.raises(InvalidInputError, match="gdal_translate -b 1 -b 3 -b 2 -b 4"):
        read_covariance_input([str(shuffled)])
    field, _, single_look = read_covariance_input([str(ordered)])
    assert single_look
    np.testing.assert_allclose(field[..., 0, 1], vv * np.conj(vh), rtol=1e-6)
    snap = write_bands(tmp_path / "snap.tif",
                       [vv.real, vv.imag, np.abs(vv) ** 2, vh.real, vh.imag, np.abs(vh) ** 2],
                       ["i_VV", "q_VV", "Intensity_VV", "i_VH", "q_VH", "Intensity_VH"])
    np.testing.assert_array_equal(read_covariance_input([str(snap)])[0], field)
    lone = write_bands(tmp_path / "lone.tif", [vv.real, vv.imag, vh.real, vh.imag],
                       ["i_VV", "q_VV", "i_VH", "Amplitude_VH"])
    with pytest.raises(InvalidInputError, match=r"band 3 \('i_VH'\) is the real part of an SLC "
                                                "channel whose imaginary part no band"):
        read_covariance_input([str(lone)])


def test_run_and_info_on_a_band_named_as_an_slc_part(tmp_path, capsys):
    z = slc()
    path = write_bands(tmp_path / "slc.tif", [z.real, z.imag], ["i_HH", "q_HH"])
    assert main(["run", str(path), "-o", str(tmp_path / "out.tif"), "--method", "boxcar"]) == 1
    assert "--complex-layout bands --band 1" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "unknown" in out and "'i_HH', the real part of an SLC channel" in out
    assert main(["run", str(path), "-o", str(tmp_path / "out.tif"), "--method", "boxcar",
                 "--complex-layout", "bands"]) == 0
    assert (tmp_path / "out.tif").exists()


# --- complex values without a phase ---------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 1j, np.exp(0.3j), -1])
def test_complex_values_of_one_phase_are_refused(factor):
    # |z| stored as complex, in the real or the imaginary part or times a factor: no phase
    amplitude = (np.abs(slc()) * factor).astype(np.complex64)
    with pytest.raises(InvalidInputError, match=r"one phase \(modulo 180°\) at every one of the "
                                                "4096 non-zero values"):
        despeckle(amplitude, method="boxcar", looks=1)


def test_complex_values_without_a_phase_are_refused(tmp_path):
    amplitude = np.abs(slc()).astype(np.complex64)  # |z| stored as complex: the phase is lost
    np.save(tmp_path / "amp_as_complex.npy", amplitude)
    with pytest.raises(InvalidInputError, match="store the values as a real band"):
        open_source(tmp_path / "amp_as_complex.npy").value_shares()
    # an SLC of small integers (CInt16) is often exactly real, and zero-filled: not refused
    integer = np.round(slc(level=2.0)).astype(np.complex64)
    integer[:, :20] = 0
    assert np.mean(integer[:, 20:].imag == 0) > 0.3
    assert despeckle(integer, method="boxcar", looks=1).shape == amplitude.shape
    assert np.isfinite(despeckle(slc(), method="boxcar", looks=1)).all()
    # too few values to tell (small integer SLC values are often exactly real by chance)
    from sardespeckle.io.kinds import PHASE_SAMPLE, phase_problem

    assert phase_problem(amplitude.ravel()[:PHASE_SAMPLE - 1], "complex") is None
    assert phase_problem(amplitude.ravel()[:PHASE_SAMPLE], "complex") is not None


def test_covariance_needs_a_phase_in_some_channel_not_in_every_one():
    master, slave = slc(seed=3), slc(seed=4)
    # an interferometric pair stored as the master's amplitude and the slave times the
    # interferometric phase: only relative phases count, so this is a valid pair
    pair = np.stack([np.abs(master).astype(np.complex64), slave * np.exp(-1j * np.angle(master))],
                    axis=-1)
    field = covariance_from_channels(pair)
    np.testing.assert_allclose(field, covariance_from_channels(np.stack([master, slave], -1)),
                               rtol=1e-5, atol=1e-5)
    amplitudes = np.abs(np.stack([master, slave], -1)).astype(np.complex64)
    with pytest.raises(InvalidInputError, match="channels 1, 2: expected single-look complex"):
        covariance_from_channels(amplitudes)
    # two channels of one phase each lose the phase between them, even beside a third
    third = slc(seed=5)
    with pytest.raises(InvalidInputError, match="channels 1, 3: .*at most one channel may lack"):
        covariance_from_channels(np.stack([np.abs(master) * np.exp(0.3j), third,
                                           np.abs(slave).astype(np.complex64)], -1))


def test_covariance_command_refuses_channels_that_all_lack_a_phase(tmp_path, capsys):
    amplitudes = np.abs(np.stack([slc(seed=5), slc(seed=6)], -1)).astype(np.complex64)
    np.save(tmp_path / "amps.npy", amplitudes)
    assert main(["covariance", str(tmp_path / "amps.npy"), "-o", str(tmp_path / "c.tif")]) == 1
    assert "amps.npy[..., 1]: channels 1, 2: expected single-look complex values" in \
        capsys.readouterr().err
    assert not (tmp_path / "c.tif").exists()


# --- fields that are not covariances --------------------------------------------------------


def field_of(coherence_factor, bad_share, seed=0, size=64):
    """Multilooked-like 2 × 2 field whose C12 is scaled by ``coherence_factor`` on the first
    ``bad_share`` of the pixels (row-major)."""
    vv, vh = slc((size, size), seed), slc((size, size), seed + 1)
    field = covariance_from_channels(np.stack([vv, 0.6 * vv + 0.8 * vh], -1))
    from scipy.ndimage import uniform_filter

    field = (uniform_filter(field.real, (5, 5, 1, 1)) + 1j * uniform_filter(field.imag, (5, 5, 1, 1)))
    flat = field.reshape(-1, 2, 2)
    bad = int(bad_share * flat.shape[0])
    flat[:bad, 0, 1] *= coherence_factor
    flat[:bad, 1, 0] *= coherence_factor
    return field


def test_fields_with_coherence_above_one_are_refused_and_rare_overshoots_pass():
    check_coherence(field_of(1.0, 0.0))  # a covariance passes
    with pytest.raises(InvalidInputError, match=r"coherence above 1.01 \(up to [0-9.]+\), first "
                                                r"at \(row 0, col 0, element 12\)"):
        check_coherence(field_of(5.0, 0.5))
    # a handful of overshooting pixels (resampling) are left to the conditioning
    field = field_of(5.0, 0.5 * NOT_COVARIANCE_SHARE)
    coherence = np.abs(field[..., 0, 1]) / np.sqrt(field[..., 0, 0].real * field[..., 1, 1].real)
    assert 0 < np.mean(coherence > COHERENCE_LIMIT) <= NOT_COVARIANCE_SHARE
    check_coherence(field)


def test_coherences_that_cannot_hold_together_are_refused():
    # each |γ| is 0.9, but γ12 = γ23 = 0.9 with γ13 = −0.9 has an eigenvalue of −0.8
    matrix = np.array([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]], np.complex128)
    with pytest.raises(InvalidInputError, match="negative eigenvalue .* in 100% of the 4096 "
                                                "pixels checked"):
        check_coherence(np.broadcast_to(matrix, (64, 64, 3, 3)).copy())
    matrix[0, 2] = matrix[2, 0] = 0.81  # a possible one
    check_coherence(np.broadcast_to(matrix, (64, 64, 3, 3)).copy())


def test_an_off_diagonal_term_beside_a_zero_diagonal_is_said_so():
    field = np.zeros((32, 32, 2, 2), np.complex128)
    field[..., 0, 0], field[..., 0, 1], field[..., 1, 0] = 1.0, 0.5, 0.5
    with pytest.raises(InvalidInputError, match=r"above 1.01 \(an off-diagonal term where a "
                                                r"diagonal one is 0\)"):
        check_coherence(field)


def test_the_covariance_command_refuses_a_field_that_is_not_one(tmp_path, capsys):
    np.save(tmp_path / "notpsd.npy", field_of(5.0, 1.0))
    assert main(["covariance", str(tmp_path / "notpsd.npy"), "-o", str(tmp_path / "c.tif"),
                 "--looks", "5"]) == 1
    err = capsys.readouterr().err
    assert "notpsd.npy: expected covariance matrices" in err and "(100%)" in err
    assert not (tmp_path / "c.tif").exists()


# --- decorrelation of single-look channels given more looks ---------------------------------


def test_slc_channels_are_measured_for_correlation_whatever_looks_are_given():
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(7)
    white = (rng.standard_normal((256, 256, 2)) + 1j * rng.standard_normal((256, 256, 2)))
    correlated = (uniform_filter(white.real, (2, 2, 1)) + 1j * uniform_filter(white.imag, (2, 2, 1)))
    field = covariance_from_channels(correlated.astype(np.complex64))
    invalid = nodata_mask(field)
    assert choose_covariance_decorrelation(field, invalid, 4.0)[0] == "none"  # told multilooked
    choice, reason = choose_covariance_decorrelation(field, invalid, 4.0, from_channels=True)
    assert choice == "subsample" and "single-look input with speckle correlation" in reason


def test_run_notes_looks_given_for_complex_input(tmp_path, capsys):
    np.save(tmp_path / "slc.npy", slc((64, 64)))
    assert main(["run", str(tmp_path / "slc.npy"), "-o", str(tmp_path / "a.tif"),
                 "--method", "boxcar", "--looks", "4"]) == 0
    assert "complex (SLC) input has single-look speckle, but runs as 4 looks" in \
        capsys.readouterr().err
    assert main(["run", str(tmp_path / "slc.npy"), "-o", str(tmp_path / "b.tif"),
                 "--method", "boxcar", "--looks", "1"]) == 0
    assert "single-look speckle, but runs" not in capsys.readouterr().err


# --- stacks of channels given to run --------------------------------------------------------


@pytest.mark.parametrize("shape, expected", [
    ((32, 32, 2), "2 complex SLC channels (rows, cols, D): despeckle them together with "
                  "'sardespeckle covariance"),
    ((2, 32, 32), "stacked first (D, rows, cols): save them stacked last"),
    ((32, 32, 3, 3), "a field of 3×3 covariance matrices: despeckle it with 'sardespeckle covariance"),
])
def test_run_points_stacks_of_channels_to_the_covariance_command(tmp_path, capsys, shape, expected):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "stack.npy", (rng.standard_normal(shape) + 1j).astype(np.complex64))
    assert main(["run", str(tmp_path / "stack.npy"), "-o", str(tmp_path / "o.tif")]) == 1
    assert expected in capsys.readouterr().err


def test_real_arrays_are_not_taken_for_channels_or_fields(tmp_path, capsys):
    np.save(tmp_path / "real4.npy", np.ones((32, 32, 2, 2), np.float32))
    assert main(["run", str(tmp_path / "real4.npy"), "-o", str(tmp_path / "o.tif")]) == 1
    assert "covariance" not in capsys.readouterr().err


def test_info_says_what_run_would_refuse(tmp_path, capsys):
    np.save(tmp_path / "amp.npy", np.abs(slc()).astype(np.complex64))
    assert main(["info", str(tmp_path / "amp.npy")]) == 0
    assert "run refuses it: " in capsys.readouterr().out
    np.save(tmp_path / "slc.npy", slc())
    assert main(["info", str(tmp_path / "slc.npy")]) == 0
    assert "problem" not in capsys.readouterr().out


def test_the_api_points_channel_stacks_to_mulog_covariance():
    with pytest.raises(InvalidInputError, match="mulog_covariance") as error:
        despeckle(np.stack([slc(), slc(seed=1)], -1), method="boxcar", looks=1)
    assert "moveaxis" not in str(error.value)
    with pytest.raises(InvalidInputError, match=r"stacked first: numpy.moveaxis\(array, 0, -1\)"):
        despeckle(np.stack([slc(), slc(seed=1)], 0), method="boxcar", looks=1)
    with pytest.raises(InvalidInputError) as error:  # a real 3-D array is not said to be channels
        despeckle(np.ones((32, 32, 2), np.float32), method="boxcar", looks=1, kind="intensity")
    assert "mulog_covariance" not in str(error.value)
