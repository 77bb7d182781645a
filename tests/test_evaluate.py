"""The evaluation protocols, the report files and ``sardespeckle evaluate`` on tiny images."""

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from sardespeckle.cli.main import main
from sardespeckle.errors import OutputExistsError, UsageError
from sardespeckle.evaluation import (
    PEERS,
    Peer,
    resolve_candidates,
    run_evaluation,
    speed_scene,
    write_report,
)
from sardespeckle.evaluation.peers import PeerError
from sardespeckle.methods import list_methods
from sardespeckle.speckle import simulate_speckle

FAST = ["boxcar", "lee"]


@pytest.fixture
def speckled(tmp_path):
    """A 96² single-look speckled intensity: two flat fields of different brightness."""
    reflectivity = np.full((96, 96), 30.0)
    reflectivity[:, 48:] = 120.0
    path = tmp_path / "real_intensity.npy"
    np.save(path, reflectivity * simulate_speckle(reflectivity.shape, 1, seed=1))
    return str(path)


def tiny_run(references, **options):
    settings = dict(references=references, kind="amplitude", methods=FAST, looks=1, draws=2,
                    seed=0, peers="none", speed_size=0, crop=32)
    settings.update(options)
    return run_evaluation(**settings)


def test_full_reference_report_files_and_table_layout(references, tmp_path):
    calls = []
    result = tiny_run(references, speed_size=64, memory="tracemalloc",
                      progress=lambda done, total: calls.append((done, total)))
    paths = write_report(result, tmp_path / "out")

    out = tmp_path / "out"
    for name in ("report.md", "report.html", "results.csv", "results.json",
                 "crops_ref0.png", "ratio_ref1.png", "speed_quality.png"):
        assert (out / name).is_file(), name
    table = result.full_reference.table("psnr")
    assert table.rows == ["ref0", "ref1", "average"]
    assert table.columns == ["noisy", "boxcar", "lee"]
    assert table.mean.shape == table.std.shape == (3, 3)
    assert calls[-1][0] == calls[-1][1] == (2 * 2 + 1) * len(FAST)

    markdown = (out / "report.md").read_text()
    assert "| image | noisy | boxcar | lee |" in markdown
    assert markdown.count(" ± ") >= 3 * 3 * 3
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="crops_' not in html
    assert paths["markdown"].endswith("report.md")

    data = json.loads((out / "results.json").read_text())
    assert data["full_reference"]["columns"] == ["noisy", "boxcar", "lee"]
    assert len(data["full_reference"]["per_draw"]["psnr"]["ref0"]["lee"]) == 2
    assert data["speed"][0]["name"] == "boxcar"
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 3 * 2 + 2 * 5  # metrics × images × columns × draws + speed


def test_filters_beat_the_noisy_input_and_numbers_are_reproducible(references):
    first = tiny_run(references)
    second = tiny_run(references)
    for metric, values in first.full_reference.values.items():
        np.testing.assert_array_equal(values, second.full_reference.values[metric])
    psnr = first.full_reference.values["psnr"]  # (images, columns, draws)
    assert np.all(psnr[:, 1:, :] > psnr[:, :1, :])
    other_seed = tiny_run(references, seed=1)
    assert not np.array_equal(psnr, other_seed.full_reference.values["psnr"])


def test_no_reference_ratio_of_a_speckled_image(speckled):
    result = run_evaluation(real=[speckled], kind="intensity", methods=["boxcar"], peers="none",
                            speed_size=0, enl_window=16, enl_count=6)
    real = result.no_reference
    assert real.columns == ["noisy", "boxcar"]
    values = {metric: real.values[metric][0] for metric in real.values}
    assert values["ratio_mean"][1] == pytest.approx(1.0, abs=0.05)
    assert values["enl"][0] == pytest.approx(1.0, rel=0.2)
    assert values["enl"][1] > 3.0
    assert abs(values["bias"][1]) < 0.02
    assert np.isnan(values["ratio_mean"][0])  # no ratio for the input itself
    assert len(real.boxes["real_intensity"]) == 6


def test_real_images_mix_complex_layouts_and_amplitude(tmp_path):
    rng = np.random.default_rng(2)
    parts = rng.standard_normal((64, 64, 2)).astype(np.float32) * 10
    np.save(tmp_path / "slc.npy", parts)
    np.save(tmp_path / "amp.npy", np.sqrt(50 * simulate_speckle((64, 64), 1, seed=3)))
    result = run_evaluation(real=[str(tmp_path / "slc.npy"), str(tmp_path / "amp.npy")],
                            kind="amplitude", complex_layout="last", methods=["boxcar"],
                            peers="none", speed_size=0, enl_window=16, enl_count=4)
    assert result.no_reference.kinds == {"slc": "complex", "amp": "amplitude"}
    assert np.all(np.isfinite(result.no_reference.values["enl"]))


def test_all_methods_skip_those_that_cannot_be_built_with_a_note():
    candidates, notes = resolve_candidates("all", looks=1)
    built = {c.name for c in candidates}
    assert {s.name for s in list_methods() if s.family == "filter"} <= built
    for spec in list_methods():
        assert spec.name in built or any(note.startswith(spec.name + ":") for note in notes)


def test_parameters_are_passed_and_checked():
    candidates, _ = resolve_candidates(["kuan"], looks=1, params={"kuan": {"window_size": "9"}})
    assert candidates[0].parameters["window_size"] == 9
    with pytest.raises(UsageError, match="not evaluated"):
        resolve_candidates(["kuan"], looks=1, params={"lee": {"window_size": "5"}})
    with pytest.raises(UsageError, match="unknown peer"):
        resolve_candidates(["kuan"], looks=1, peers=["no-such-peer"])


def test_one_method_under_several_labels_with_their_own_parameters(references):
    candidates, _ = resolve_candidates(
        ["kuan", "kuan-9=kuan", "lee"], looks=1, params={"kuan-9": {"window_size": "9"}})
    by_name = {c.name: c for c in candidates}
    assert list(by_name) == ["kuan", "kuan-9", "lee"]
    assert by_name["kuan-9"].method == "kuan" and by_name["kuan-9"].parameters["window_size"] == 9
    assert by_name["kuan"].parameters["window_size"] != 9
    result = tiny_run(references, methods=["kuan", "kuan-9=kuan"], params={"kuan-9": {"window_size": "9"}})
    psnr = result.full_reference.table("psnr")
    assert "kuan-9" in psnr.columns and "kuan" in psnr.columns
    # Two different filters: different numbers.
    assert psnr.mean[-1][psnr.columns.index("kuan")] != psnr.mean[-1][psnr.columns.index("kuan-9")]
    for bad in (["=kuan"], ["x="], ["k=no-such-method"]):
        with pytest.raises(UsageError):
            resolve_candidates(bad, looks=1)
    with pytest.raises(UsageError, match="names two methods"):
        resolve_candidates(["a=kuan", "a=lee"], looks=1)


def test_a_peer_adapter_is_evaluated_and_a_failing_peer_is_noted(references, monkeypatch):
    def smooth(intensity, looks):
        return ndimage.uniform_filter(intensity, 5)

    def broken(intensity, looks):
        raise RuntimeError("weights missing")

    monkeypatch.setitem(PEERS, "smooth", Peer("smooth", "json", "json", "json", "test", smooth))
    monkeypatch.setitem(PEERS, "broken", Peer("broken", "json", "json", "json", "test", broken))
    result = tiny_run(references, methods=["boxcar"], peers=["smooth", "broken"], draws=1)
    full = result.full_reference
    assert full.columns == ["noisy", "boxcar", "peer:smooth", "peer:broken"]
    assert np.all(np.isfinite(full.values["psnr"][:, 2]))
    assert np.all(np.isnan(full.values["psnr"][:, 3]))
    assert any("peer:broken not evaluated" in note for note in result.notes)
    with pytest.raises(PeerError, match="weights missing"):
        PEERS["broken"].run(np.ones((8, 8)), looks=1)


def test_missing_peers_are_reported_as_not_installed(references, tmp_path, monkeypatch):
    monkeypatch.setitem(PEERS, "ghost", Peer("ghost", "no_such_module_xyz", "no_such_module_xyz",
                                             "ghost-dist", "test", lambda i, looks: i))
    result = tiny_run(references, draws=1)
    assert result.peers["ghost"] == "not installed (pip install ghost-dist)"
    write_report(result, tmp_path / "out")
    assert "| ghost | not installed (pip install ghost-dist) | no |" in \
        (tmp_path / "out" / "report.md").read_text()


def test_the_speed_section_names_the_cpu_it_ran_on(references, tmp_path, monkeypatch):
    from sardespeckle.evaluation import protocol
    from sardespeckle.models import inference

    monkeypatch.setattr(protocol, "cpu_model", lambda: "Test CPU 9000 @ 1.00GHz")
    monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda: False)
    result = tiny_run(references, speed_size=64, memory="tracemalloc")
    assert result.environment["cpu_model"] == "Test CPU 9000 @ 1.00GHz"
    write_report(result, tmp_path / "out")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert ("CPU core(s) (Test CPU 9000 @ 1.00GHz; no native bf16: precision=auto runs the "
            "networks in fp32 on this CPU)") in markdown
    assert json.loads((tmp_path / "out" / "results.json").read_text())["environment"][
        "cpu_fast_bf16"] is False

    def broken():
        raise OSError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(inference, "cpu_has_fast_bf16", broken)  # a torch that cannot say
    assert protocol._fast_bf16() is None


def test_speed_in_a_subprocess_reports_memory():
    from sardespeckle.evaluation import measure_speed

    candidates, _ = resolve_candidates(["boxcar"], looks=1)
    (speed,) = measure_speed(candidates, size=128, memory="subprocess")
    assert speed.rows == speed.cols == 128
    assert speed.megapixels_per_second > 0
    assert speed.peak_memory_mib is None or speed.peak_memory_mib >= 0
    assert speed_scene(64, seed=1).dtype == np.float32


def test_cli_evaluate_writes_the_report_and_refuses_to_overwrite(references, tmp_path):
    out = tmp_path / "cli"
    argv = ["evaluate", "--references", *references, "--kind", "amplitude",
            "--methods", ",".join(FAST), "--param", "boxcar:window_size=5", "--draws", "1",
            "--speed-size", "0", "--peers", "none", "--crop", "32", "--out", str(out), "-q"]
    assert main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["candidates"][0]["parameters"] == {"window_size": 5}
    assert main(argv) == 1  # the report exists
    assert main([*argv, "--overwrite"]) == 0
    assert main(["evaluate", "--out", str(out)]) == 2  # nothing to evaluate
    # The command printed at the top of report.md reproduces every quality number.
    import shlex

    block = (out / "report.md").read_text().split("```")[1]
    again = shlex.split(block.replace("\\\n", " ").strip())
    assert again[:2] == ["sardespeckle", "evaluate"] and again[-2:] == ["--out", str(out)]
    assert main([*again[1:-1], str(tmp_path / "again"), "-q"]) == 0
    first = json.loads((out / "results.json").read_text())
    second = json.loads((tmp_path / "again" / "results.json").read_text())
    assert first["full_reference"] and second["full_reference"] == first["full_reference"]
    assert second["settings"] == first["settings"]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--param", "window_size=5", "--out", str(out)])
    assert exit_info.value.code == 2


def test_evaluate_on_the_shared_tsx_crop(shared_data):
    path = shared_data / "sar" / "tsx_slc" / "test_image_data.npy"
    result = run_evaluation(real=[str(path)], complex_layout="last", methods=["boxcar"],
                            peers="none", speed_size=0)
    assert result.no_reference.kinds["test_image_data"] == "complex"
    assert result.no_reference.values["ratio_mean"][0, 1] == pytest.approx(1.0, abs=0.1)


def test_one_draw_shows_no_spread(references, tmp_path):
    # A sample std is undefined for one draw: no "± 0.00" in the cells, null in the JSON.
    result = tiny_run(references, draws=1)
    table = result.full_reference.table("psnr")
    assert table.std is None and np.all(np.isfinite(table.mean))
    write_report(result, tmp_path / "one")
    markdown = (tmp_path / "one" / "report.md").read_text()
    assert " ± " not in markdown and "single draw, without a spread" in markdown
    summary = json.loads((tmp_path / "one" / "results.json").read_text())
    assert summary["full_reference"]["summary"]["psnr"]["average"]["lee"]["std"] is None
    write_report(tiny_run(references, draws=2), tmp_path / "two")
    assert "mean ± std over the draws" in (tmp_path / "two" / "report.md").read_text()


def test_the_report_names_the_decorrelation_each_image_got(tmp_path):
    # sarcnn's default decorrelate=auto resolves per image: none on white simulated speckle
    # over flat fields, subsample on correlated single-look speckle. The report must say so,
    # not "decorrelate=none" (the build's value before any image).
    from _random_dncnn import random_network

    from sardespeckle.decorrelate import simulate_correlated_slc
    from sardespeckle.models import save_weights

    weights = tmp_path / "random-sarcnn.pt"
    save_weights(random_network(0), weights, name="random-sarcnn", training_data="none (random)")
    truth = np.full((96, 96), 4.0)
    truth[:, 48:] = 16.0
    np.save(tmp_path / "correlated.npy", np.abs(simulate_correlated_slc(truth, seed=1)))
    references = []
    for index in range(2):
        np.save(tmp_path / f"ref{index}.npy", np.sqrt(truth * (index + 1)))
        references.append(str(tmp_path / f"ref{index}.npy"))
    network = {"weights": str(weights), "precision": "fp32", "device": "cpu"}
    result = tiny_run(
        references, real=[str(tmp_path / "correlated.npy")],
        methods=["sarcnn", "none=sarcnn", "subsample=sarcnn"], enl_window=16, enl_count=4,
        params={"sarcnn": network, "none": {**network, "decorrelate": "none"},
                "subsample": {**network, "decorrelate": "subsample"}})
    parameters = {c.name: c.parameters["decorrelate"] for c in result.candidates}
    assert parameters == {"sarcnn": "auto", "none": "none", "subsample": "subsample"}
    assert result.no_reference.decorrelation == {"sarcnn": {"correlated": "subsample"}}
    assert result.full_reference.decorrelation == {"sarcnn": {"ref0": ["none", "none"],
                                                              "ref1": ["none", "none"]}}
    # What is reported is what ran: the auto column's numbers are those of its choice.
    real = result.no_reference.values["ratio_var"][0]
    assert real[1] == real[3] and real[1] != real[2]
    psnr = result.full_reference.values["psnr"]
    np.testing.assert_array_equal(psnr[:, 1], psnr[:, 2])
    assert any(note.startswith("correlated: sarcnn with decorrelate=auto ran "
                               "decorrelate=subsample (single-look") for note in result.notes)
    write_report(result, tmp_path / "out")
    rows = {line.split(" | ")[0].strip("| "): line
            for line in (tmp_path / "out" / "report.md").read_text().splitlines()
            if line.startswith("| ") and " | cnn | " in line}
    assert "decorrelate=auto (per image: none on the references; subsample on the real " \
           "images)" in rows["sarcnn"]
    assert "decorrelate=none" not in rows["sarcnn"] and "decorrelate=none" in rows["none"]
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["no_reference"]["decorrelation"] == {"sarcnn": {"correlated": "subsample"}}
    assert data["candidates"][0]["parameters"]["decorrelate"] == "auto"
    # SAR-CNN's scene level is measured on each image too, and labelled so.
    assert {c.name: c.parameters["level"] for c in result.candidates} == {
        "sarcnn": "auto", "none": "auto", "subsample": "auto"}
    assert "level=auto" in rows["sarcnn"]


def test_reserved_labels_are_refused():
    for label in ("noisy", "peer:mulog-bm3d"):
        with pytest.raises(UsageError, match="reserved"):
            resolve_candidates([f"{label}=kuan", "boxcar"], looks=1, peers="none")


def test_an_existing_report_stops_the_command_before_any_work(references, tmp_path, monkeypatch):
    import sardespeckle.evaluation as evaluation

    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    ran = []
    monkeypatch.setattr(evaluation, "run_evaluation", lambda **kw: ran.append(kw))
    argv = ["evaluate", "--references", *references, "--kind", "amplitude", "--methods", "boxcar",
            "--speed-size", "0", "--peers", "none", "--out", str(out), "-q"]
    assert main(argv) == 1 and not ran
    assert (out / "report.md").read_text() == "an earlier report"
    assert main(["evaluate", "--references", *references, "--out", references[0], "-q"]) == 2
    with pytest.raises(SystemExit):
        main([*argv, "--speed-size", "10"])  # 0 or at least 64


def test_a_real_image_named_like_a_reference_keeps_both_figures(references, tmp_path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "ref0.npy"
    np.save(real, np.sqrt(np.load(references[0]) ** 2 * simulate_speckle((48, 48), 1, seed=5)))
    result = tiny_run(references[:1], real=[str(real)], enl_window=8, enl_count=2)
    assert result.full_reference.images == ["ref0"] and result.no_reference.images == ["ref0#2"]
    paths = write_report(result, tmp_path / "out")
    figures = paths["figures"].split(",")
    assert len(figures) == len(set(figures)) == 4


def test_a_real_image_without_homogeneous_windows_is_skipped_with_a_note(speckled, tmp_path):
    image = np.load(speckled)
    holes = image.copy()
    holes[::7, ::7] = 0  # isolated zero samples everywhere: no 16×16 window without one
    np.save(tmp_path / "holes.npy", holes)
    result = run_evaluation(real=[str(tmp_path / "holes.npy"), speckled], kind="intensity",
                            methods=["boxcar"], peers="none", speed_size=0, enl_window=16,
                            enl_count=4)
    enl = result.no_reference.values["enl"]
    assert np.all(np.isnan(enl[0])) and np.all(np.isfinite(enl[1]))
    note = next(n for n in result.notes if n.startswith("holes:"))
    assert "holes.npy" in note and "196 masked pixels" in note and "--enl-window" in note
    write_report(result, tmp_path / "out")
    assert "holes: not scored" in (tmp_path / "out" / "report.md").read_text()


def test_bad_references_are_named(tmp_path):
    np.save(tmp_path / "flat.npy", np.full((48, 48), 7.0))
    with pytest.raises(Exception, match="flat.npy.*--real") as info:
        run_evaluation(references=[str(tmp_path / "flat.npy")], kind="amplitude",
                       methods=["boxcar"], peers="none", speed_size=0)
    assert "constant" in str(info.value)
    np.save(tmp_path / "slc.npy", np.ones((48, 48, 2), np.float32))
    np.save(tmp_path / "cplx.npy", np.ones((48, 48), np.complex64))
    for name in ("slc.npy", "cplx.npy"):
        with pytest.raises(UsageError, match=f"must be a speckle-free real image.*{name}") as info:
            run_evaluation(references=[str(tmp_path / name)], kind="amplitude",
                           methods=["boxcar"], peers="none", speed_size=0)
        assert "--kind complex" not in str(info.value)


def test_speckle_that_underflows_is_refused_with_the_reason(references):
    with pytest.raises(UsageError, match="underflows.*looks >= 0.5"):
        tiny_run(references, looks=0.02)


def test_results_carry_their_units(references, tmp_path):
    write_report(tiny_run(references), tmp_path / "out")
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    units = {row["metric"]: row["unit"] for row in rows}
    assert units == {"psnr": "dB", "ssim": "1", "edge": "1"}
    metrics = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    assert metrics["bias"]["unit"] == "fraction" and "%" in metrics["bias"]["definition"]
    assert metrics["psnr"]["unit"] == "dB" and "99th percentile" in metrics["psnr"]["definition"]


def test_evaluate_refuses_what_would_skew_or_empty_a_report(tmp_path, capsys):
    clean = tmp_path / "clean_amplitude.npy"
    np.save(clean, 1.0 + np.add.outer(np.arange(48.0), np.arange(48.0)) / 10)
    common = ["--kind", "amplitude", "--methods", "boxcar", "--peers", "none",
              "--speed-size", "0", "--draws", "1", "-q"]
    assert main(["evaluate", "--references", str(clean), str(tmp_path / "." / clean.name),
                 "--out", str(tmp_path / "a"), *common]) == 2
    assert "twice" in capsys.readouterr().err and not (tmp_path / "a").exists()
    empty = tmp_path / "empty.npy"
    np.save(empty, np.full((48, 48), np.nan))
    assert main(["evaluate", "--real", str(empty), "--out", str(tmp_path / "b"), *common]) == 1
    assert "empty.npy has no valid pixel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--references", str(clean), "--looks", "1e300", "--out",
              str(tmp_path / "c"), *common])
    assert "expected at most 10000 looks" in capsys.readouterr().err
    # a reference too small to score names itself and the size needed, before any run
    small = tmp_path / "small_amplitude.npy"
    np.save(small, 1.0 + np.add.outer(np.arange(9.0), np.arange(9.0)) / 10)
    assert main(["evaluate", "--references", str(small), "--out", str(tmp_path / "d"),
                 *common]) == 1
    assert f"at least 32 × 32 pixels, got 9×9 in {small}" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_report_is_written_whole_or_not_at_all(references, tmp_path, monkeypatch):
    from sardespeckle.evaluation import report as report_module

    result = tiny_run(references)
    out = tmp_path / "out"
    out.mkdir()
    (out / "crops_gone.png").write_bytes(b"an earlier report's figure")
    (out / "notes.txt").write_text("mine")
    (out / ".report.abc.partial").mkdir()  # what a report killed outright leaves

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "_write_methods", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(result, out)
    assert sorted(path.name for path in out.iterdir()) == ["crops_gone.png", "notes.txt"]
    monkeypatch.undo()
    write_report(result, out)  # not refused for a half report
    with pytest.raises(OutputExistsError):
        write_report(result, out)
    # an earlier report that showed crops_gone.png; crops_mine.png is the user's (not shown)
    with open(out / "report.md", "a", encoding="utf-8") as handle:
        handle.write("\n![old](crops_gone.png)\n")
    (out / "crops_mine.png").write_bytes(b"my own figure")
    write_report(result, out, overwrite=True)  # the earlier report's figure goes, mine stay
    names = sorted(path.name for path in out.iterdir())
    assert "crops_gone.png" not in names and "report.md" in names
    assert "notes.txt" in names and "crops_mine.png" in names
    assert not [name for name in names if name.startswith(".")]


def test_a_figure_of_the_report_in_the_folder_stops_the_command_before_any_work(
        references, tmp_path, monkeypatch):
    import sardespeckle.evaluation as evaluation

    out = tmp_path / "rep"
    out.mkdir()
    (out / "crops_ref1.png").write_bytes(b"the user's own figure, named like the report's")
    ran = []
    monkeypatch.setattr(evaluation, "run_evaluation", lambda **kw: ran.append(kw))
    argv = ["evaluate", "--references", *references, "--kind", "amplitude", "--methods", "boxcar",
            "--speed-size", "0", "--peers", "none", "--out", str(out), "-q"]
    assert main(argv) == 1 and not ran


def test_image_names_do_not_depend_on_the_command_line_order(tmp_path):
    from sardespeckle.evaluation.protocol import unique_names

    a, b, c = (str(tmp_path / folder / "ref.npy") for folder in ("a", "b", "c"))
    assert unique_names([a, b, c]) == ["ref", "ref#2", "ref#3"]
    assert unique_names([c, a, b]) == ["ref#3", "ref", "ref#2"]  # each file keeps its name
    # a real image of the same stem never renames a reference, whatever its path
    assert unique_names([b], [a]) == ["ref", "ref#2"]
    assert unique_names(["x/one.npy", "y/two.tif"]) == ["one", "two"]


def test_same_stem_references_get_the_same_draws_in_any_order(tmp_path, references):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder, source in (("a", references[0]), ("b", references[1])):
        np.save(tmp_path / folder / "ref.npy", np.load(source))
    first = [str(tmp_path / "a" / "ref.npy"), str(tmp_path / "b" / "ref.npy")]
    forward = tiny_run(first, draws=1).full_reference
    backward = tiny_run(first[::-1], draws=1).full_reference
    psnr_forward = dict(zip(forward.images, forward.table("psnr").mean[:-1, 1]))
    psnr_backward = dict(zip(backward.images, backward.table("psnr").mean[:-1, 1]))
    assert psnr_forward == psnr_backward


def test_real_images_whose_enl_does_not_fit_the_looks_get_a_note(speckled):
    result = run_evaluation(real=[speckled], kind="intensity", methods=["boxcar"], peers="none",
                            speed_size=0, enl_window=16, enl_count=4, looks=4.4)
    assert any("measure an ENL of" in note and "against the 4.4 looks given" in note
               for note in result.notes)
    result = run_evaluation(real=[speckled], kind="intensity", methods=["boxcar"], peers="none",
                            speed_size=0, enl_window=16, enl_count=4, looks=1)
    assert not any("measure an ENL of" in note for note in result.notes)


def test_the_average_row_says_how_many_images_it_averages(speckled, tmp_path):
    image = np.load(speckled)
    holes = image.copy()
    holes[::7, ::7] = 0  # no homogeneous window: not scored
    np.save(tmp_path / "holes.npy", holes)
    result = run_evaluation(real=[str(tmp_path / "holes.npy"), speckled], kind="intensity",
                            methods=["boxcar"], peers="none", speed_size=0, enl_window=16,
                            enl_count=4)
    write_report(result, tmp_path / "out")
    assert "| **average** (1 of 2 images) |" in (tmp_path / "out" / "report.md").read_text()


def test_an_interrupted_report_does_not_leave_the_folder_it_made(references, tmp_path,
                                                                  monkeypatch):
    from sardespeckle.evaluation import report as report_module

    result = tiny_run(references)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "_write_methods", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(result, tmp_path / "new" / "out")
    assert not (tmp_path / "new" / "out").exists()


def test_short_times_keep_three_significant_digits():
    from sardespeckle.evaluation.report import _seconds

    assert [_seconds(v) for v in (12.3456, 0.1, 0.0123, 0.000283)] == [
        "12.346", "0.100", "0.0123", "0.000283"]


def test_a_real_image_of_several_bands_says_which_band_is_evaluated(tmp_path):
    import rasterio

    from sardespeckle.evaluation.protocol import load_image

    rng = np.random.default_rng(0)
    path = tmp_path / "vv_vh.tif"
    with rasterio.open(path, "w", driver="GTiff", width=48, height=48, count=2,
                       dtype="float32") as dst:
        dst.write(rng.exponential(1.0, (2, 48, 48)).astype(np.float32))
        dst.set_band_description(1, "Sigma0_VV")
    loaded = load_image(path)
    assert "the file has 2 bands: only band 1 is evaluated" in loaded.kind_reason


def test_the_report_names_the_weights_auto_picked_per_image(tmp_path):
    from sardespeckle.decorrelate import simulate_correlated_slc
    from sardespeckle.models.weights import DEFAULT_SARCNN_CORRELATED

    slc = simulate_correlated_slc(np.full((64, 64), 100.0), band=(0.6, 0.7), seed=2)
    np.save(tmp_path / "slc_amplitude.npy", np.abs(slc).astype(np.float32))
    out = tmp_path / "ev"
    assert main(["evaluate", "--real", str(tmp_path / "slc_amplitude.npy"), "--kind", "amplitude",
                 "--methods", "sarcnn", "--param", "sarcnn:precision=fp32", "--peers", "none",
                 "--speed-size", "0", "--out", str(out), "-q"]) == 0
    report = (out / "report.md").read_text()
    assert f"none with {DEFAULT_SARCNN_CORRELATED} on the real images" in report
    assert f"({DEFAULT_SARCNN_CORRELATED} where decorrelate says so)" in report
