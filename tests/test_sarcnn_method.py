"""The ``sarcnn`` method end to end: registry, weights, precision, decorrelation, engine, CLI.

No trained weights exist yet, so every test saves random weights with ``save_weights`` in
``tmp_path``. They are random but not inert: He-normal convolutions and random batch-norm
statistics keep the signal alive through the 19 layers, and the last layer is scaled so that
the network removes a speckle-sized component, like a trained SAR-CNN. Narrow networks
(16 features, full depth 19 so that the halo is the real one) keep the tests fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from _random_dncnn import random_network, speckled
from rasterio.transform import from_origin

from sardespeckle.api import despeckle
from sardespeckle.cli.main import main
from sardespeckle.decorrelate import simulate_correlated_slc
from sardespeckle.errors import UsageError, WeightsError
from sardespeckle.methods import build_method, get_method, list_methods
from sardespeckle.models import Architecture, WeightsEntry, save_weights
from sardespeckle.models import weights as weights_module
from sardespeckle.models.inference import NO_WEIGHTS_MESSAGE, cpu_has_fast_bf16
from sardespeckle.models.sarcnn import scene_level
from sardespeckle.models.weights import sha256_file
from sardespeckle.tiling import process_array


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "random-sarcnn.pt"
    save_weights(random_network(0), path, name="random-sarcnn", training_data="none (random)")
    return str(path)


def run_params(weights_file: str, **extra) -> dict:
    return {"weights": weights_file, "precision": "fp32", "device": "cpu", **extra}


def write_tif(path, array):
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, crs="EPSG:32631", transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.set_band_description(1, "Amplitude_VV")
    return path


# ------------------------------------------------------------------------------ registry


def test_registered_as_a_network():
    spec = get_method("sarcnn")
    assert spec.family == "cnn"
    assert set(spec.defaults) == {"weights", "precision", "device", "decorrelate", "threads", "ensemble",
                                  "level"}
    assert spec.defaults["level"] == "auto"
    assert spec.defaults["ensemble"] == 1
    assert list_methods()[0].family == "cnn"


def test_no_weights_installed_is_a_clear_error(tmp_path, monkeypatch):
    from sardespeckle.models import weights as weights_module

    monkeypatch.setattr(weights_module, "REGISTRY", {})  # an installation without weights
    with pytest.raises(WeightsError, match=r"no trained SAR-CNN weights are installed yet; give a "
                                           r"weights file \(weights=PATH; CLI --weights PATH\)"):
        build_method("sarcnn", looks=1)
    assert NO_WEIGHTS_MESSAGE in str(WeightsError(NO_WEIGHTS_MESSAGE))


def test_built_method_carries_halo_batch_and_weights_identity(weights_file):
    built = build_method("sarcnn", looks=1, params=run_params(weights_file))
    assert built.halo == 19 and built.batch_size > 1 and built.decorrelate == "none"
    assert built.weights == f"random-sarcnn.pt sha256:{sha256_file(weights_file)[:16]}"
    assert built.parameters == {"weights": weights_file, "precision": "fp32", "device": "cpu",
                                "decorrelate": "none", "threads": 0, "ensemble": 1, "level": "none"}
    subsampled = build_method("sarcnn", looks=1, params=run_params(weights_file, decorrelate="subsample"))
    assert subsampled.halo == 2 * 19 + 1


def test_default_weights_come_from_the_registry(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    digest = save_weights(random_network(3), tmp_path / "sarcnn-test.pt", name="sarcnn-test")
    weights_module.REGISTRY["sarcnn-test"] = WeightsEntry(
        name="sarcnn-test", filename="sarcnn-test.pt", sha256=digest,
        architecture=Architecture(depth=19, features=16),  # random_network's width
    )
    built = build_method("sarcnn", looks=1, params={"precision": "fp32"})
    assert built.parameters["weights"] == "sarcnn-test"
    assert built.weights == f"sarcnn-test sha256:{digest[:16]}"


@pytest.fixture
def weights_per_looks(tmp_path, monkeypatch):
    """A registry of two random SAR-CNNs, ``one`` (1 look, the default) and ``four`` (4.4
    looks), the defaults per looks."""
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    monkeypatch.setattr(weights_module, "DEFAULT_SARCNN", "one")
    monkeypatch.setattr(weights_module, "DEFAULT_SARCNN_BY_LOOKS", {1.0: "one", 4.4: "four"})
    for name, looks in (("one", 1.0), ("four", 4.4)):
        digest = save_weights(random_network(3), tmp_path / f"{name}.pt", name=name, looks=looks)
        weights_module.REGISTRY[name] = WeightsEntry(
            name=name, filename=f"{name}.pt", sha256=digest, looks=looks,
            architecture=Architecture(depth=19, features=16))


def test_default_weights_follow_the_looks_of_the_input(weights_per_looks):
    from sardespeckle.api import looks_mismatch

    for looks, expected in ((1.0, "one"), (1.3, "one"), (2.0, "one"), (2.3, "four"), (4.2, "four"),
                            (12.0, "four")):
        built = build_method("sarcnn", looks=looks, params={"precision": "fp32", "device": "cpu"})
        assert built.parameters["weights"] == expected and built.trained_looks == float(
            {"one": 1.0, "four": 4.4}[expected]), looks
    # Named weights win; a clear mismatch either way draws a note.
    built = build_method("sarcnn", looks=1.0, params={"weights": "four", "precision": "fp32"})
    assert built.parameters["weights"] == "four"
    assert "leaving some of its speckle" in looks_mismatch(built, 1.0)
    assert "more than these data need" in looks_mismatch(built, 12.0)
    assert looks_mismatch(built, 4.0) is None


def test_run_says_which_weights_it_chose_for_the_looks(weights_per_looks, tmp_path, capsys):
    rng = np.random.default_rng(18)
    reflectivity = np.exp(np.kron(rng.normal(5.0, 1.0, (12, 12)), np.ones((8, 8))))
    four = write_tif(tmp_path / "four.tif", np.sqrt(reflectivity * rng.gamma(4.4, 1 / 4.4,
                                                                           reflectivity.shape)))
    one = write_tif(tmp_path / "one.tif", np.sqrt(speckled((96, 96), seed=19)))
    for src, chosen in ((four, "four"), (one, "one")):
        out = tmp_path / f"o_{src.stem}.tif"
        assert main(["run", str(src), "-o", str(out), "-m", "sarcnn", "--precision", "fp32",
                     "--kind", "amplitude", "--decorrelate", "none", "--device", "cpu"]) == 0
        err = capsys.readouterr().err
        assert ("note: weights four (trained for 4.4-look speckle) chosen for the input's"
                in err) == (chosen == "four")
        assert "trained for 1-look speckle and this input has" not in err
        with rasterio.open(out) as dst:
            assert dst.tags()["SARDESPECKLE_WEIGHTS"].startswith(f"{chosen} sha256:")


@pytest.mark.parametrize(("params", "message"), [
    ({"precision": "int8"}, "expected precision"),
    ({"precision": "fp16"}, "CUDA only"),
    ({"decorrelate": "blur"}, "expected decorrelate"),
    ({"threads": -1}, "threads"),
    ({"device": "tpu"}, "expected device"),
    ({"ensemble": 4}, "expected ensemble in"),
    ({"ensemble": True}, "expected ensemble in"),
])
def test_bad_parameters_are_usage_errors(weights_file, params, message):
    with pytest.raises(UsageError, match=message):
        build_method("sarcnn", looks=1, params={"weights": weights_file, "device": "cpu", **params})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_without_cuda(weights_file):
    with pytest.raises(UsageError, match="CUDA"):
        build_method("sarcnn", looks=1, params={"weights": weights_file, "device": "cuda"})


def test_precision_auto_follows_the_cpu(weights_file):
    built = build_method("sarcnn", looks=1, params={"weights": weights_file, "device": "cpu"})
    assert built.parameters["precision"] == ("bf16" if cpu_has_fast_bf16() else "fp32")


# ------------------------------------------------------------------------------- engine


def test_array_api(weights_file):
    image = speckled((70, 90), seed=1)
    out = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file))
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    # It does something speckle-sized: the log-ratio is not zero, and not the whole image.
    log_ratio = np.log(image / out)
    assert 0.01 < log_ratio.std() < np.log(image).std()


def test_an_array_and_its_file_get_the_same_decorrelation(weights_file, tmp_path):
    """``decorrelate="auto"`` measures the speckle correlation on the central window for an
    array as for a file: here white speckle in the central 1024², strongly correlated speckle
    around it (38 % of the pixels, enough to push a whole-image measure over the threshold)."""
    from sardespeckle.api import despeckle_file
    from sardespeckle.decorrelate import (CORRELATION_THRESHOLD, central_window,
                                          estimate_speckle_correlation)
    from sardespeckle.speckle import add_speckle

    intensity = np.abs(simulate_correlated_slc(np.full((1300, 1300), 50.0), band=(0.5, 0.5), seed=0)) ** 2
    center = central_window(intensity.shape).slices
    intensity[center] = add_speckle(np.full((1024, 1024), 50.0), looks=1, seed=1)
    intensity = intensity.astype(np.float32)
    assert max(estimate_speckle_correlation(intensity)) > CORRELATION_THRESHOLD  # the premise
    np.save(tmp_path / "in.npy", intensity)
    params = run_params(weights_file, decorrelate="auto")
    report = despeckle_file(tmp_path / "in.npy", tmp_path / "out.npy", method="sarcnn", looks=1,
                            kind="intensity", params=params)
    assert any("white enough, not decorrelated" in note for note in report.notes)
    from_array = despeckle(intensity, method="sarcnn", looks=1, kind="intensity", params=params)
    np.testing.assert_allclose(from_array, np.load(tmp_path / "out.npy"), rtol=1e-6)


@pytest.mark.parametrize("decorrelate", ["none", "subsample"])
def test_tiled_equals_whole_image(weights_file, decorrelate):
    """fp32 tiles of 128, 256 and 512 px give the whole-image result (zero padding only at the
    raster border in both). The sides are not multiples of the tiles, and for ``subsample``
    the tiles start at odd offsets too (no alignment is needed)."""
    image = speckled((601, 547), seed=2)
    params = run_params(weights_file, decorrelate=decorrelate)
    whole = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=None)
    for tile in (128, 256, 512):
        tiled = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=tile)
        np.testing.assert_allclose(tiled, whole, rtol=1e-4, err_msg=f"tile {tile}")
    # The comparison has power: with half the halo, seams show.
    built = build_method("sarcnn", looks=1, params=params)
    if decorrelate == "none":
        # The engine mirrors raster edges for the network (batch_with_context); the network
        # called directly mirrors each image itself: the same result (at the level the API
        # measured: the median of the central 1024² window, here the whole image).
        direct = build_method("sarcnn", looks=1, params={**params, "level": scene_level(image)}
                              ).function.denoiser(image)
        np.testing.assert_allclose(whole, direct, rtol=1e-4)
    short = process_array(image, built.function, halo=built.halo // 2, tile=128, batch_size=4)
    assert np.max(np.abs(short / whole - 1)) > 1e-3


def test_self_ensemble_is_the_mean_of_the_eight_flips_and_rotations(weights_file):
    from sardespeckle.models.sarcnn import SarCnnDenoiser

    image = speckled((45, 38), seed=8)  # not square: rotations swap the sides
    single = SarCnnDenoiser.from_weights(weights_file)
    logs = []
    for turns in range(4):
        for flip in (False, True):
            view = np.rot90(image, turns)
            view = view[:, ::-1] if flip else view
            out = single(np.ascontiguousarray(view))
            out = out[:, ::-1] if flip else out
            logs.append(np.log(np.rot90(out, -turns)))
    expected = np.exp(np.mean(logs, axis=0))
    ensemble = SarCnnDenoiser.from_weights(weights_file, ensemble=8)
    np.testing.assert_allclose(ensemble(image), expected, rtol=1e-4)
    assert not np.allclose(single(image), expected, rtol=1e-3)  # it is not the single pass
    # Through the engine: tiled (the engine's halo on every side) equals the whole image.
    params = run_params(weights_file, ensemble=8)
    big = speckled((150, 131), seed=9)
    whole = despeckle(big, method="sarcnn", looks=1, kind="intensity", params=params, tile=None)
    np.testing.assert_allclose(despeckle(big, method="sarcnn", looks=1, kind="intensity", params=params, tile=64),
                               whole, rtol=1e-4)
    np.testing.assert_allclose(
        whole, SarCnnDenoiser.from_weights(weights_file, ensemble=8, level=scene_level(big))(big),
        rtol=1e-4)
    assert build_method("sarcnn", looks=1, params=params).parameters["ensemble"] == 8


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="no native bf16 on this CPU")
def test_bf16_tiled_equals_whole_image(weights_file):
    # The float32 first convolution must not make tiles round differently from the whole
    # image (an earlier attempt flipped bf16 roundings: 2.6 % at isolated pixels).
    image = speckled((300, 281), seed=6)
    params = run_params(weights_file, precision="bf16")
    whole = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=None)
    for tile in (64, 128):
        tiled = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=params, tile=tile)
        np.testing.assert_allclose(tiled, whole, rtol=1e-4, err_msg=f"tile {tile}")


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (40, 33), (130, 7)])
@pytest.mark.parametrize("decorrelate", ["none", "subsample"])
def test_images_smaller_than_a_tile(weights_file, shape, decorrelate):
    image = speckled((max(shape[0], 8), max(shape[1], 8)), seed=3)[: shape[0], : shape[1]]
    out = despeckle(image, method="sarcnn", looks=1, kind="intensity", tile=512,
                    params=run_params(weights_file, decorrelate=decorrelate))
    assert out.shape == shape and np.all(np.isfinite(out)) and np.all(out > 0)


def test_nodata_stays_nodata(weights_file):
    image = speckled((64, 80), seed=4)
    image[10:20, 30:50] = np.nan
    out = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file), tile=32)
    assert np.isnan(out[10:20, 30:50]).all()
    assert np.isfinite(np.delete(out, np.s_[10:20], axis=0)).all()


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="no native bf16 on this CPU")
def test_bf16_close_to_fp32(weights_file):
    image = speckled((96, 96), seed=5)
    fp32 = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file))
    bf16 = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file, precision="bf16"))
    # bf16 error is a few percent of the removed log-speckle (std ≈ 0.05 · (M − m) here).
    assert np.mean(np.abs(np.log(bf16 / fp32))) < 0.05


def test_threads_parameter(weights_file):
    before = torch.get_num_threads()
    image = speckled((40, 40), seed=6)
    one = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file, threads=1))
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(one, despeckle(image, method="sarcnn", looks=1, kind="intensity",
                                              params=run_params(weights_file)), rtol=1e-5)


def test_whiten_needs_complex_input(weights_file):
    with pytest.raises(UsageError, match="expected complex .* use decorrelate='subsample'"):
        despeckle(speckled((64, 64), seed=7), method="sarcnn", looks=1, kind="intensity",
                  params=run_params(weights_file, decorrelate="whiten"))


def test_complex_input_is_whitened_by_default(weights_file):
    slc = simulate_correlated_slc(np.full((96, 96), 50.0), band=(0.7, 0.8), seed=8).astype(np.complex64)
    auto = despeckle(slc, method="sarcnn", looks=1, kind="complex", params=run_params(weights_file))
    white = despeckle(slc, method="sarcnn", looks=1, kind="complex",
                      params=run_params(weights_file, decorrelate="whiten"))
    plain = despeckle(slc, method="sarcnn", looks=1, kind="complex",
                      params=run_params(weights_file, decorrelate="none"))
    np.testing.assert_array_equal(auto, white)
    assert not np.allclose(white, plain, rtol=1e-3)
    # Whitening keeps the mean intensity.
    assert abs(white.mean() / plain.mean() - 1) < 0.1


# ---------------------------------------------------------------------------------- CLI


def test_cli_geotiff_writes_weights_provenance(tmp_path, weights_file, capsys):
    src = write_tif(tmp_path / "amp.tif", np.sqrt(speckled((90, 70), seed=9)))
    out = tmp_path / "out.tif"
    code = main(["run", str(src), "-o", str(out), "-m", "sarcnn", "--weights", weights_file,
                 "--precision", "fp32", "--device", "cpu", "--decorrelate", "none", "--looks", "1"])
    assert code == 0, capsys.readouterr().err
    with rasterio.open(src) as source, rasterio.open(out) as dst:
        tags = dst.tags()
        assert dst.crs == source.crs and dst.transform == source.transform
        result = dst.read(1)
    assert tags["SARDESPECKLE_METHOD"] == "sarcnn"
    assert tags["SARDESPECKLE_WEIGHTS"] == f"random-sarcnn.pt sha256:{sha256_file(weights_file)[:16]}"
    parameters = json.loads(tags["SARDESPECKLE_PARAMETERS"])
    assert parameters["precision"] == "fp32" and parameters["decorrelate"] == "none"
    assert tags["SARDESPECKLE_HALO"] == "19"
    assert np.all(np.isfinite(result)) and np.all(result > 0)
    assert "weights=random-sarcnn.pt sha256:" in capsys.readouterr().err


def test_cli_npy_matches_array_api(tmp_path, weights_file):
    image = speckled((50, 61), seed=10)
    src = tmp_path / "in.npy"
    np.save(src, image)
    out = tmp_path / "out.npy"
    assert main(["run", str(src), "-o", str(out), "-m", "sarcnn", "--weights", weights_file,
                 "--precision", "fp32", "--decorrelate", "none", "--kind", "intensity",
                 "--looks", "1", "-q", "-p", "device=cpu"]) == 0
    expected = despeckle(image, method="sarcnn", looks=1, kind="intensity", params=run_params(weights_file, decorrelate="none"))
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4)


def test_cli_auto_decorrelation_is_reported(tmp_path, weights_file, capsys):
    slc = simulate_correlated_slc(np.full((128, 128), 400.0), band=(0.6, 0.7), seed=11)
    correlated = write_tif(tmp_path / "slc_amp.tif", np.abs(slc).astype(np.float32))
    white = write_tif(tmp_path / "white_amp.tif", np.sqrt(speckled((128, 128), seed=12)))
    for src, expected in [(correlated, "subsample"), (white, "none")]:
        out = tmp_path / f"out_{expected}.tif"
        assert main(["run", str(src), "-o", str(out), "-m", "sarcnn", "--weights", weights_file,
                     "--precision", "fp32", "--looks", "1"]) == 0
        with rasterio.open(out) as dst:
            tags = dst.tags()
        assert json.loads(tags["SARDESPECKLE_PARAMETERS"])["decorrelate"] == expected
        assert tags["SARDESPECKLE_DECORRELATE"].startswith(f"decorrelate={expected} (")
        assert f"note: decorrelate={expected}" in capsys.readouterr().err


def test_cli_complex_npy_is_whitened(tmp_path, weights_file):
    slc = simulate_correlated_slc(np.full((64, 64), 30.0), band=(0.7, 0.8), seed=13)
    src = tmp_path / "slc.npy"
    np.save(src, np.stack([slc.real, slc.imag], axis=-1).astype(np.float32))
    out = tmp_path / "slc_out.npy"
    assert main(["run", str(src), "-o", str(out), "-m", "sarcnn", "--weights", weights_file,
                 "--precision", "fp32", "--complex-layout", "last", "--tile", "24", "-q"]) == 0
    expected = despeckle(slc.astype(np.complex64), method="sarcnn", looks=1, kind="complex",
                         params=run_params(weights_file), tile=None)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4)


def test_cli_whiten_on_intensity_is_a_usage_error(tmp_path, weights_file, capsys):
    src = write_tif(tmp_path / "amp.tif", np.sqrt(speckled((64, 64), seed=14)))
    code = main(["run", str(src), "-o", str(tmp_path / "o.tif"), "-m", "sarcnn", "--weights",
                 weights_file, "--decorrelate", "whiten", "--looks", "1"])
    assert code == 2
    assert "expected complex (SLC) input for decorrelate='whiten'" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_cli_weights_errors_exit_1(tmp_path, weights_file, capsys, monkeypatch):
    from sardespeckle.models import weights as weights_module

    monkeypatch.setattr(weights_module, "REGISTRY", {})  # an installation without weights
    src = write_tif(tmp_path / "amp.tif", np.sqrt(speckled((40, 40), seed=15)))
    out = tmp_path / "o.tif"
    base = ["run", str(src), "-o", str(out), "-m", "sarcnn", "--looks", "1"]

    assert main(base) == 1
    assert ("no trained SAR-CNN weights are installed yet; give a weights file (weights=PATH; "
            "CLI --weights PATH)") in capsys.readouterr().err

    corrupt = tmp_path / "corrupt.pt"
    data = open(weights_file, "rb").read()
    corrupt.write_bytes(data[: len(data) // 3])
    assert main([*base, "--weights", str(corrupt)]) == 1
    err = capsys.readouterr().err
    assert str(corrupt) in err and "corrupt or not a file written by torch.save" in err
    assert "Traceback" not in err

    assert main([*base, "--weights", str(tmp_path / "missing.pt")]) == 1
    assert "expected a registered weights name" in capsys.readouterr().err
    assert not out.exists()


def test_cli_filter_refuses_network_options(tmp_path, capsys):
    src = write_tif(tmp_path / "amp.tif", np.sqrt(speckled((40, 40), seed=16)))
    assert main(["run", str(src), "-o", str(tmp_path / "o.tif"), "-m", "lee", "--looks", "1",
                 "--precision", "fp32"]) == 2
    assert "no parameter 'precision'" in capsys.readouterr().err


def test_run_help_lists_network_options_without_torch():
    code = ("import sys; from sardespeckle.cli.main import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'torch' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for option in ("--weights", "--precision", "--device", "--decorrelate"):
        assert option in result.stdout


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    digest = save_weights(random_network(4, depth=5, features=8), tmp_path / "tiny.pt", name="tiny")
    entry = WeightsEntry(name="tiny", filename="tiny.pt", sha256=digest,
                         architecture=Architecture(depth=5, features=8), training_data="random draws",
                         validation_psnr=12.34)
    weights_module.REGISTRY["tiny"] = entry
    return entry


def test_weights_command_lists_the_registry(registry, capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for text in ("tiny", "depth=5", "features=8", "looks: 1", registry.sha256[:16], "12.34 dB",
                 "random draws"):
        assert text in out
    assert main(["weights", "--verify"]) == 0
    assert "verify: ok" in capsys.readouterr().out
    # by name, and several at once: each described, a bad one said and counted
    assert main(["weights", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny") and "12.34 dB" in out and registry.sha256[:16] in out
    assert main(["weights", "tiny", "nope.pt", "tiny"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("depth=5") == 2
    assert "got 'nope.pt'" in captured.err and "1 of 3 weights could not be described" in captured.err


def test_weights_verify_fails_on_a_modified_or_missing_file(registry, capsys):
    with open(registry.path, "ab") as handle:
        handle.write(b"\0")
    assert main(["weights", "--verify"]) == 1
    captured = capsys.readouterr()
    assert "SHA256 MISMATCH" in captured.out and "failed verification" in captured.err
    registry.path.unlink()
    assert main(["weights", "--verify"]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_weights_command_in_json(registry, capsys):
    import json

    assert main(["weights", "--json", "--verify"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["name"] == "tiny" and record["sha256"] == registry.sha256
    assert record["architecture"]["depth"] == 5 and record["architecture"]["features"] == 8
    assert record["validation_psnr"] == 12.34 and record["verify"] == "ok"
    assert record["training_data"] == "random draws" and record["looks"] == 1
    # files: each described or given with its error, still exit 1 when one fails
    assert main(["weights", "--json", "tiny", "nope.pt"]) == 1
    captured = capsys.readouterr()
    described, refused = json.loads(captured.out)
    assert described["name"] == "tiny" and "verify" not in described
    assert refused["file"] == "nope.pt" and "got 'nope.pt'" in refused["error"]
    assert "1 of 2 weights could not be described" in captured.err
    registry.path.unlink()
    assert main(["weights", "--json", "--verify"]) == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert record["verify"].startswith("MISSING")


def test_methods_command_in_json(capsys):
    import json

    from sardespeckle.methods import list_methods

    assert main(["methods", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == [spec.name for spec in list_methods()]
    by_name = {m["name"]: m for m in listed}
    assert [m["name"] for m in listed if m["default"]] == ["sarcnn"]
    assert by_name["boxcar"]["parameters"] == {"window_size": 3, "keep_targets": None}
    assert by_name["sarcnn"]["family"] == "cnn" and by_name["sarcnn"]["parameters"]["ensemble"] == 1


def test_weights_command_with_an_empty_registry(monkeypatch, capsys):
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    assert main(["weights", "--verify"]) == 0
    assert "no weights registered yet" in capsys.readouterr().out


def test_isolated_zero_samples_are_estimated_blocks_and_nodata_stay_missing(tmp_path, weights_file):
    """Quantised single-look data have exact zeros where the return is weak: those get an
    estimate; a block of zeros (a fill region) and the file's nodata value stay missing."""
    slc = simulate_correlated_slc(np.full((96, 96), 3000.0), band=(0.7, 0.8), seed=15)
    slc = np.round(slc).astype(np.complex64)  # integer I/Q, as delivered
    slc[slc == 0] = 1  # only the zeros placed below
    slc[20, 30] = 0  # isolated zero samples
    slc[60, 61] = 0
    slc[70:74, 10:14] = 0  # a fill block
    zero_block = np.zeros(slc.shape, bool)
    zero_block[70:74, 10:14] = True
    params = run_params(weights_file)
    for out in (despeckle(slc, method="sarcnn", looks=1, kind="complex", params=params),
                despeckle(slc, method="sarcnn", looks=1, kind="complex", params=params, tile=32)):
        assert np.isnan(out[zero_block]).all()
        assert np.isfinite(out[~zero_block]).all() and (out[~zero_block] > 0).all()
    # Through a file, with nodata declared as 0: every zero is then missing data.
    amplitude = np.abs(slc).astype(np.float32)
    for nodata, isolated_missing in ((None, False), (0.0, True)):
        src = tmp_path / f"amp_{nodata}.tif"
        profile = dict(driver="GTiff", width=96, height=96, count=1, dtype="float32",
                       crs="EPSG:32631", transform=from_origin(600000, 5800000, 10, 10),
                       nodata=nodata)
        with rasterio.open(src, "w", **profile) as dst:
            dst.write(amplitude, 1)
        out_path = tmp_path / f"out_{nodata}.tif"
        assert main(["run", str(src), "-o", str(out_path), "-m", "sarcnn", "--weights",
                     weights_file, "--precision", "fp32", "--kind", "amplitude", "--looks", "1",
                     "--decorrelate", "none", "-q"]) == 0
        with rasterio.open(out_path) as dst:
            assert dst.nodata == nodata or (nodata is None and np.isnan(dst.nodata))
            missing = np.ma.getmaskarray(dst.read(1, masked=True))  # NaN or the nodata value
        assert missing[zero_block].all()
        assert missing[20, 30] == isolated_missing and missing[60, 61] == isolated_missing
        assert not missing[amplitude > 0].any()


def test_multilooked_input_draws_a_note_that_the_weights_know_one_look(tmp_path, weights_file,
                                                                       capsys):
    rng = np.random.default_rng(16)
    reflectivity = np.exp(np.kron(rng.normal(5.0, 1.0, (12, 12)), np.ones((8, 8))))
    four = write_tif(tmp_path / "four.tif", np.sqrt(reflectivity * rng.gamma(4.0, 0.25,
                                                                           reflectivity.shape)))
    one = write_tif(tmp_path / "one.tif", np.sqrt(speckled((96, 96), seed=17)))
    for src, expected in ((four, True), (one, False)):
        assert main(["run", str(src), "-o", str(tmp_path / f"o_{src.stem}.tif"), "-m", "sarcnn",
                     "--weights", weights_file, "--precision", "fp32", "--kind", "amplitude",
                     "--decorrelate", "none"]) == 0
        err = capsys.readouterr().err
        assert ("note: the sarcnn weights were trained for 1-look speckle and this input has "
                in err) == expected, err
    with pytest.warns(UserWarning, match="trained for 1-look speckle and this input has 4 looks"):
        despeckle(reflectivity.astype(np.float32), method="sarcnn", looks=4, kind="intensity",
                  params=run_params(weights_file))


def test_user_weights_folders_register_names(tmp_path, monkeypatch, capsys):
    """SARDESPECKLE_WEIGHTS_PATH: each NAME.pt of its folders is a name like the shipped
    ones, for run --weights, sardespeckle weights and the Python API; a shipped name is
    never replaced and a file that is not weights is left out, both with a warning."""
    monkeypatch.setattr(weights_module, "REGISTRY", dict(weights_module.REGISTRY))
    mine = tmp_path / "mine"
    mine.mkdir()
    digest = save_weights(random_network(4, depth=5, features=8), mine / "lab-s1.pt",
                          name="lab-s1", validation_psnr=21.5, training_data="our stacks")
    save_weights(random_network(5, depth=5, features=8), mine / "sarcnn-s1-l1-v3.pt")
    (mine / "notes.pt").write_text("not weights")
    shipped_gaussian = weights_module.REGISTRY["dncnn-sar-s25"]
    (mine / "lab-gauss.pt").write_bytes(shipped_gaussian.path.read_bytes())
    other = tmp_path / "other"
    other.mkdir()
    save_weights(random_network(6, depth=5, features=8), other / "lab-s1.pt")
    with pytest.warns(UserWarning) as caught:
        names = weights_module.register_user_weights(
            os.pathsep.join([str(mine), str(tmp_path / "missing"), str(other)]))
    messages = " | ".join(str(w.message) for w in caught)
    assert names == ["lab-gauss", "lab-s1"]
    from sardespeckle.mulog.method import denoiser_weights_id

    # MuLoG with user Gaussian weights records them like shipped ones
    assert denoiser_weights_id("lab-gauss") == f"lab-gauss sha256:{shipped_gaussian.sha256[:16]}"
    assert "the name 'sarcnn-s1-l1-v3' is taken by shipped weights" in messages
    assert "other/lab-s1.pt is not registered: the name 'lab-s1' is taken by an earlier" in messages
    assert "notes.pt left out" in messages and "missing is not a folder" in messages
    entry = weights_module.REGISTRY["lab-s1"]
    assert entry.sha256 == digest and entry.path == (mine / "lab-s1.pt").resolve()
    assert entry.validation_psnr == 21.5 and entry.architecture.depth == 5
    assert weights_module.REGISTRY["sarcnn-s1-l1-v3"].path.parent == weights_module.WEIGHTS_DIR
    image = speckled((32, 32), seed=2)
    by_name = despeckle(image, method="sarcnn", looks=1, kind="intensity",
                        params={"weights": "lab-s1", "precision": "fp32"})
    by_path = despeckle(image, method="sarcnn", looks=1, kind="intensity",
                        params={"weights": str(mine / "lab-s1.pt"), "precision": "fp32"})
    np.testing.assert_array_equal(by_name, by_path)
    assert main(["weights", "lab-s1"]) == 0
    assert "our stacks" in capsys.readouterr().out


def test_without_weights_correlated_single_look_input_gets_the_correlated_speckle_weights(
        tmp_path, capsys):
    """The default for detected SLC data: the weights trained on correlated speckle at full
    resolution; white speckle, multilooked and complex input and an explicit subsample keep
    theirs."""
    from sardespeckle.models.weights import (DEFAULT_SARCNN, DEFAULT_SARCNN_CORRELATED, REGISTRY,
                                             load_weights, trained_on_correlated_speckle)

    assert DEFAULT_SARCNN_CORRELATED in REGISTRY
    assert trained_on_correlated_speckle(load_weights(DEFAULT_SARCNN_CORRELATED)[1])
    assert not trained_on_correlated_speckle(load_weights(DEFAULT_SARCNN)[1])
    slc = simulate_correlated_slc(np.full((96, 96), 400.0), band=(0.6, 0.7), seed=11)
    correlated = write_tif(tmp_path / "slc_amp.tif", np.abs(slc).astype(np.float32))
    white = write_tif(tmp_path / "white_amp.tif", np.sqrt(speckled((96, 96), seed=12)))
    # Speckle more correlated than the weights' narrowest training band (0.4) made: beyond
    # what they learnt, the image is subsampled for v3 as before.
    assert REGISTRY[DEFAULT_SARCNN_CORRELATED].speckle_band[0] == 0.4
    strong_slc = simulate_correlated_slc(np.full((96, 96), 400.0), band=(0.28, 0.28), seed=3)
    strong = write_tif(tmp_path / "strong_amp.tif", np.abs(strong_slc).astype(np.float32))
    # Inside it (band 0.45, more correlated than Sentinel-1's): the weights at full resolution.
    medium_slc = simulate_correlated_slc(np.full((96, 96), 400.0), band=(0.45, 0.45), seed=5)
    medium = write_tif(tmp_path / "medium_amp.tif", np.abs(medium_slc).astype(np.float32))
    cases = [(correlated, [], DEFAULT_SARCNN_CORRELATED, "none"),
             (correlated, ["--decorrelate", "subsample"], DEFAULT_SARCNN, "subsample"),
             # told 2 looks: the 2-look weights, trained on white speckle only, get the
             # strongly correlated image subsampled, as multilooked input above 0.2
             (correlated, ["--looks", "2"], "sarcnn-s1-l2", "subsample"),
             (correlated, ["--looks", "1.45"], "sarcnn-s1-l2", "subsample"),  # l2's looks
             (strong, [], DEFAULT_SARCNN, "subsample"),
             (medium, [], DEFAULT_SARCNN_CORRELATED, "none"),
             (white, [], DEFAULT_SARCNN, "none")]
    for index, (src, extra, weights, mode) in enumerate(cases):
        out = tmp_path / f"out{index}.tif"
        argv = ["run", str(src), "-o", str(out), "--precision", "fp32", *extra]
        assert main(argv + ([] if "--looks" in extra else ["--looks", "1"])) == 0
        with rasterio.open(out) as dst:
            parameters = json.loads(dst.tags()["SARDESPECKLE_PARAMETERS"])
        assert (parameters["weights"], parameters["decorrelate"]) == (weights, mode), extra
        err = capsys.readouterr().err
        if index == 0:
            assert f"weights trained on correlated speckle: not decorrelated, full resolution; " \
                   f"weights {DEFAULT_SARCNN_CORRELATED}" in err
    # The array API decides the same way.
    out = despeckle(np.abs(slc) ** 2, method="sarcnn", looks=1, kind="intensity",
                    params={"precision": "fp32"})
    with rasterio.open(tmp_path / "out0.tif") as dst:
        np.testing.assert_allclose(out, dst.read(1) ** 2, rtol=1e-4)


def test_shipped_white_speckle_weights_stay_finite_on_strong_texture():
    """On a strongly textured scene (log-normal reflectivity, log-intensity std 2 over ~3 px)
    with white speckle, the white-speckle networks' raw output ran to ±30–80 in normalised
    log-amplitude on a small patch: intensities of 0 and inf, and despeckle refused its own
    output. The local-range guard keeps every value within the data's range."""
    from scipy import ndimage

    from sardespeckle.models.sarcnn import (_SPAN, GUARD_MARGIN, SarCnnDenoiser,
                                            normalize_log_amplitude)
    from sardespeckle.speckle import simulate_speckle

    rng = np.random.default_rng(11)
    field = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 3.0)
    reflectivity = np.exp(2.0 * field / field.std())
    noisy = (reflectivity * simulate_speckle(reflectivity.shape, 1, seed=12)).astype(np.float32)
    out = despeckle(noisy, method="sarcnn", looks=1, kind="intensity",
                    params={"weights": "sarcnn-s1-l1-v3", "decorrelate": "none",
                            "precision": "fp32", "level": "none"})
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    # Every output within the 9×9 neighbourhood's input range, widened by the margin
    # (2·margin·span in log-intensity) and the debiasing offset (cn(1) < 0.06 normalised).
    span = 2 * _SPAN
    log_out = np.log(out.astype(np.float64))
    log_in = np.log(noisy.astype(np.float64))
    high = ndimage.maximum_filter(log_in, 9, mode="mirror")
    low = ndimage.minimum_filter(log_in, 9, mode="mirror")
    slack = span * (GUARD_MARGIN + 0.06)
    assert np.all(log_out <= high + slack) and np.all(log_out >= low - slack)
    # The guard binds only there: on ordinary scenes (flat speckle, blocks with an edge) it
    # changes nothing.
    denoiser = SarCnnDenoiser.from_weights("sarcnn-s1-l1-v3", looks=1, precision="fp32")
    for scene in (100.0 * simulate_speckle((64, 64), 1, seed=3), speckled((64, 64), seed=4)):
        x = torch.from_numpy(normalize_log_amplitude(scene.astype(np.float32)))[None, None]
        guarded = denoiser._clean_log_amplitude(x)
        raw = denoiser.network.denoise(x, None).float() - denoiser.offset
        assert torch.equal(guarded, raw)


def test_without_looks_correlated_single_look_input_is_still_single_look(tmp_path, capsys):
    """Without --looks, correlated single-look speckle (band 0.4 × 0.45, more correlated than
    Sentinel-1's) used to be estimated at 1.5 looks: read as multilooked, given the 2-look
    weights, and the note called it multilooked. The looks are now measured on the ×2
    polyphase grids: one look, and the correlated-speckle weights at full resolution."""
    from sardespeckle.models.weights import DEFAULT_SARCNN_CORRELATED

    slc = simulate_correlated_slc(np.full((512, 512), 400.0), band=(0.4, 0.45), seed=8)
    src = write_tif(tmp_path / "slc_amp.tif", np.abs(slc).astype(np.float32))
    out = tmp_path / "out.tif"
    assert main(["run", str(src), "-o", str(out), "--precision", "fp32"]) == 0
    with rasterio.open(out) as dst:
        parameters = json.loads(dst.tags()["SARDESPECKLE_PARAMETERS"])
    assert (parameters["weights"], parameters["decorrelate"]) == (DEFAULT_SARCNN_CORRELATED, "none")
    err = capsys.readouterr().err
    assert "on every other row and column (the speckle is spatially correlated)" in err
    assert "multilooked" not in err


def test_named_weights_keep_their_own_correlation_limit(tmp_path, capsys):
    """sarcnn-s1-l1-corr2 learnt bands down to 0.55 only: speckle of band 0.45 is beyond it and
    goes subsampled even though the default correlated weights (band 0.4) would take it."""
    slc = simulate_correlated_slc(np.full((256, 256), 400.0), band=(0.45, 0.45), seed=9)
    src = write_tif(tmp_path / "slc_amp.tif", np.abs(slc).astype(np.float32))
    for weights, mode in (("sarcnn-s1-l1-corr2", "subsample"), ("sarcnn-s1-l1-corr3w", "none")):
        out = tmp_path / f"{weights}.tif"
        assert main(["run", str(src), "-o", str(out), "--looks", "1", "--precision", "fp32",
                     "--weights", weights]) == 0
        with rasterio.open(out) as dst:
            assert json.loads(dst.tags()["SARDESPECKLE_PARAMETERS"])["decorrelate"] == mode, weights


def test_mildly_correlated_speckle_goes_to_the_correlated_weights_but_is_not_subsampled(
        tmp_path):
    """Speckle of a Hamming-weighted band sampled at Nyquist (fraction 1: lag 1 about 0.06, the
    least correlated an SLC processor makes) is above CORRELATED_NETWORK_THRESHOLD and below
    CORRELATION_THRESHOLD: SAR-CNN takes the correlated-speckle weights at full resolution (they
    beat v3 there), MuLoG with decorrelate=auto is not subsampled; white speckle keeps v3."""
    from sardespeckle.decorrelate import (CORRELATED_NETWORK_THRESHOLD, CORRELATION_THRESHOLD,
                                          estimate_speckle_correlation)
    from sardespeckle.models.weights import DEFAULT_SARCNN, DEFAULT_SARCNN_CORRELATED
    from sardespeckle.speckle import simulate_speckle

    mild = np.abs(simulate_correlated_slc(np.full((512, 512), 400.0), band=(1.0, 1.0),
                                          seed=14)) ** 2
    assert CORRELATED_NETWORK_THRESHOLD < max(estimate_speckle_correlation(mild)) \
        < CORRELATION_THRESHOLD  # the premise
    white = 400.0 * simulate_speckle((512, 512), 1, seed=15)
    for name, image, method, extra, expected in (
            ("mild", mild, "sarcnn", [], (DEFAULT_SARCNN_CORRELATED, "none")),
            ("white", white, "sarcnn", [], (DEFAULT_SARCNN, "none")),
            ("mild-mulog", mild, "mulog", ["--decorrelate", "auto", "--denoiser", "dncnn-sar"],
             (None, "none"))):
        src = write_tif(tmp_path / f"{name}.tif", image.astype(np.float32))
        out = tmp_path / f"{name}_out.tif"
        assert main(["run", str(src), "-o", str(out), "--looks", "1", "--kind", "intensity",
                     "--method", method, "--precision", "fp32", *extra]) == 0
        with rasterio.open(out) as dst:
            parameters = json.loads(dst.tags()["SARDESPECKLE_PARAMETERS"])
        assert (parameters.get("weights"), parameters["decorrelate"]) == expected, name


def test_weights_trained_on_correlated_multilooked_speckle_are_described_and_checked(tmp_path, capsys):
    from sardespeckle.decorrelate import sarcnn_handles_correlation
    from sardespeckle.models.dncnn import DnCNN
    from sardespeckle.models.weights import save_weights

    path = tmp_path / "l4corr.pt"
    save_weights(DnCNN(depth=3, features=4), path, name="l4corr", looks=4.4,
                 speckle_band=(0.55, 1.0), speckle_band_share=0.8)
    assert main(["weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "correlated data of its looks" in out and "single-look" not in out
    check = sarcnn_handles_correlation(4.4)
    assert check({"weights": str(path)}, (0.3, 0.3)) == {}  # within what 4.4 looks of 0.55 made
    assert check({"weights": str(path)}, (0.9, 0.9)) is None
    # A file recording fewer than one look (a user's) is judged as single-look, not refused.
    odd = tmp_path / "l09corr.pt"
    save_weights(DnCNN(depth=3, features=4), odd, name="l09corr", looks=0.9,
                 speckle_band=(0.55, 1.0), speckle_band_share=0.8)
    assert sarcnn_handles_correlation(1.0)({"weights": str(odd)}, (0.2, 0.2)) == {}


def test_without_weights_correlated_multilooked_input_gets_the_correlated_multilook_weights(tmp_path):
    """From about 3 looks, correlated speckle goes at full resolution to the weights trained on
    correlated multilooked speckle; white multilooked speckle keeps the 4.4-look weights."""
    from sardespeckle.decorrelate import correlated_speckle
    from sardespeckle.models.weights import (DEFAULT_SARCNN_CORRELATED_BY_LOOKS, REGISTRY,
                                             load_weights, trained_on_correlated_speckle)

    chosen = DEFAULT_SARCNN_CORRELATED_BY_LOOKS[4.4]
    assert chosen in REGISTRY and REGISTRY[chosen].looks == 4.4
    assert trained_on_correlated_speckle(load_weights(chosen)[1])
    rng = np.random.default_rng(8)
    correlated = 400.0 * correlated_speckle(1, 96, np.array([[0.7, 0.7]]), rng, looks=4.4)[0]
    white = 400.0 * rng.gamma(4.4, 1 / 4.4, (96, 96))
    for image, weights in ((correlated, chosen), (white, "sarcnn-s1-l4")):
        src = write_tif(tmp_path / f"{weights}.tif", np.sqrt(image).astype(np.float32))  # amplitude
        out = tmp_path / f"{weights}_out.tif"
        assert main(["run", str(src), "-o", str(out), "--looks", "4.4", "--precision", "fp32"]) == 0
        with rasterio.open(out) as dst:
            parameters = json.loads(dst.tags()["SARDESPECKLE_PARAMETERS"])
        assert (parameters["weights"], parameters["decorrelate"]) == (weights, "none")


def test_correlated_counterpart_maps_each_default_to_its_correlated_weights():
    from sardespeckle.models.weights import (DEFAULT_SARCNN, DEFAULT_SARCNN_CORRELATED,
                                             correlated_counterpart)

    assert correlated_counterpart(DEFAULT_SARCNN) == DEFAULT_SARCNN_CORRELATED
    assert correlated_counterpart("sarcnn-s1-l4") == "sarcnn-s1-l4-corr"
    assert correlated_counterpart("sarcnn-s1-l2") is None  # no correlated 2-look weights yet
    assert correlated_counterpart("my.pt") is None and correlated_counterpart(None) is None
