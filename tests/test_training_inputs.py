"""``sardespeckle train`` on bad inputs: clear usage errors, no broken or half-made run folders,
exports that never replace a run's own files or its data."""

import json

import numpy as np
import pytest
from _tiny_training import tiny_train_values

from sardespeckle.cli.main import main
from sardespeckle.errors import InputFileError, OutputExistsError, UsageError
from sardespeckle.training import TrainConfig, export_weights, train


def tiny_values(reference_file, **overrides):
    return tiny_train_values(reference_file, **{"depth": 3, "features": 4, "batch_size": 2,
                                                "steps": 2, "validate_every": 2, **overrides})


def tiny_config(reference_file, **overrides):
    return TrainConfig.from_dict(tiny_values(reference_file, **overrides))


def write_config(path, values):
    path.write_text(json.dumps(values))
    return str(path)


@pytest.fixture
def finished_run(tmp_path, reference_file):
    run = tmp_path / "run"
    train(tiny_config(reference_file), run)
    return run


# --------------------------------------------------------------------------- --export


def test_export_refuses_an_existing_file_unless_overwrite(tmp_path, finished_run, capsys):
    npy = tmp_path / "data.npy"
    np.save(npy, np.arange(5.0))
    # Not a weights file name: refused, --overwrite or not (it would replace data).
    assert main(["train", "--run-dir", str(finished_run), "--export", str(npy), "--overwrite"]) == 2
    assert "ending in .pt or .pth" in capsys.readouterr().err
    data = tmp_path / "old.pt"
    data.write_bytes(b"an older export")
    before = data.read_bytes()
    assert main(["train", "--run-dir", str(finished_run), "--export", str(data)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert data.read_bytes() == before
    with pytest.raises(OutputExistsError):
        export_weights(finished_run, data)
    assert main(["train", "--run-dir", str(finished_run), "--export", str(data), "--overwrite"]) == 0
    from sardespeckle.models.weights import load_weights

    network, _ = load_weights(data)
    assert network.depth == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically


@pytest.mark.parametrize("target", ["checkpoint.pt", "config.json", "log.csv", "../ref.npy",
                                    "../val.npy"])
def test_export_never_replaces_the_runs_own_files_or_its_data(tmp_path, finished_run, target, capsys):
    path = finished_run / target
    before = path.read_bytes()
    assert main(["train", "--run-dir", str(finished_run), "--export", str(path), "--overwrite"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert path.read_bytes() == before
    with pytest.raises(UsageError, match="never overwritten"):
        export_weights(finished_run, path.resolve(), overwrite=True)
    # The run is intact: it still exports and resumes (as finished).
    assert main(["train", "--run-dir", str(finished_run), "--export", str(tmp_path / "w.pt")]) == 0
    assert train(tiny_config(finished_run.parent / "ref.npy"), finished_run).finished


def test_export_and_overwrite_option_misuse(tmp_path, finished_run, reference_file, capsys):
    assert main(["train", "--run-dir", str(finished_run), "--export", str(finished_run)]) == 2
    assert "folder" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(finished_run), "--export", ""]) == 2
    assert main(["train", "--run-dir", str(tmp_path / "none"), "--export", str(tmp_path / "w.pt")]) == 2
    assert "no run in" in capsys.readouterr().err
    config = write_config(tmp_path / "c.json", tiny_values(reference_file))
    assert main(["train", config, "--run-dir", str(tmp_path / "new"), "--overwrite"]) == 2
    assert "--overwrite only applies to --export" in capsys.readouterr().err
    # options --export would ignore are refused, not ignored
    assert main(["train", "--run-dir", str(finished_run), "--export", str(tmp_path / "w.pt"),
                 "--references", str(reference_file), "--steps", "5"]) == 2
    assert "--references, --steps would be ignored" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


def test_a_replaced_checkpoint_is_a_clear_error(tmp_path, finished_run, reference_file, capsys):
    (finished_run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--run-dir", str(finished_run), "--export", str(tmp_path / "w.pt")]) == 1
    assert "cannot read the run checkpoint" in capsys.readouterr().err
    import torch

    torch.save({"state_dict": {}, "meta": {}}, finished_run / "checkpoint.pt")  # a weights file
    with pytest.raises(InputFileError, match="expected a training checkpoint"):
        train(tiny_config(reference_file), finished_run)


# --------------------------------------------------------------------------- name


@pytest.mark.parametrize("name", ["checkpoint", "Checkpoint", "config", "log", "../escaped", "a/b",
                                  "a\\b", "", ".hidden", "..", "my model", "x" * 101, 3, None])
def test_bad_names_are_refused(reference_file, name):
    with pytest.raises(UsageError, match="name"):
        tiny_config(reference_file, name=name)


@pytest.mark.parametrize("name", ["sarcnn", "my-sarcnn", "sarcnn-s1-l1-v2", "dncnn_sar.s25", "v1+2"])
def test_good_names_are_kept(reference_file, name):
    assert tiny_config(reference_file, name=name).name == name


@pytest.mark.parametrize("name", ["checkpoint", "../escaped", ""])
def test_cli_refuses_bad_names_before_writing_anything(tmp_path, reference_file, name, capsys):
    run = tmp_path / "out" / "run"
    assert main(["train", "--run-dir", str(run), "--references", str(reference_file),
                 "--name", name, "-q"]) == 2
    assert "name" in capsys.readouterr().err
    config = write_config(tmp_path / "c.json", tiny_values(reference_file, name=name))
    assert main(["train", config, "--run-dir", str(run), "-q"]) == 2
    assert f"training config {config}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "ref.npy", "val.npy"]


# --------------------------------------------------------------------------- failed calls


@pytest.mark.parametrize("bad", [
    {"references": [{"path": "nope.npy", "kind": "intensity"}]},
    {"validation": [{"path": "nope.npy", "kind": "intensity"}]},
    {"references": [{"path": "REF", "kind": "speckle"}]},
    {"references": [{"path": "REF", "kind": "intensity", "window": [0, 0, 500, 10]}]},
    {"references": [{"path": "REF", "kind": "intensity", "window": [0, 0, -1, 10]}]},
    {"patch_size": 200},
    {"learning_rate": -1},
    {"init_from": "nope.pt"},
])
@pytest.mark.parametrize("folder", ["fresh", "empty", "other"])
def test_a_failed_call_leaves_the_run_folder_as_it_was(tmp_path, reference_file, bad, folder):
    run = tmp_path / "parent" / "run"
    if folder != "fresh":
        run.mkdir(parents=True)
    if folder == "other":
        (run / "notes.txt").write_text("mine")
    values = json.loads(json.dumps(bad).replace("REF", str(reference_file)))
    config = write_config(tmp_path / "bad.json", tiny_values(reference_file, **values))
    assert main(["train", config, "--run-dir", str(run), "-q"]) in (1, 2)
    if folder == "fresh":
        assert not (tmp_path / "parent").exists()
    else:
        assert sorted(p.name for p in run.iterdir()) == ([] if folder == "empty" else ["notes.txt"])
    good = write_config(tmp_path / "good.json", tiny_values(reference_file))
    assert main(["train", good, "--run-dir", str(run), "-q"]) == 0
    assert (run / "sarcnn.pt").is_file()


def test_a_run_failing_before_its_first_checkpoint_is_undone(tmp_path, reference_file):
    def crash(step, total, loss):
        raise RuntimeError("crash")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train(tiny_config(reference_file, checkpoint_every=5, steps=6), run, progress=crash)
    assert not run.exists()
    # Once a checkpoint exists the run is kept (it resumes from there).
    calls = []

    def crash_at_two(step, total, loss):
        calls.append(step)
        if step == 2:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        train(tiny_config(reference_file, steps=4), run, progress=crash_at_two)
    assert {"config.json", "checkpoint.pt", "log.csv"} <= {p.name for p in run.iterdir()}
    assert train(tiny_config(reference_file, steps=4), run).finished


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("key, value", [
    ("steps", "abc"), ("steps", 0), ("steps", 1.5), ("steps", True), ("steps", None),
    ("batch_size", "4"), ("patch_size", -1), ("depth", 2), ("features", 0),
    ("validation_draws", 0), ("validate_every", 0), ("checkpoint_every", 0), ("log_every", 0),
    ("seed", -1), ("seed", 2**64), ("threads", 0), ("threads", -1), ("threads", "2"),
    ("learning_rate", -1), ("learning_rate", 0), ("learning_rate", "1e-3"),
    ("learning_rate", float("nan")), ("learning_rate", float("inf")),
    ("looks", 0), ("looks", "1"), ("decay", 0), ("decay", -0.1), ("decay_at", 0),
    ("decay_at", 1.5), ("decay_at", "0.6"), ("init_from", 3), ("init_from", ""), ("notes", 5),
    ("schedule", "linear"), ("schedule", None), ("warmup_steps", -1), ("warmup_steps", 2.5),
])
def test_bad_values_name_the_key(reference_file, key, value):
    with pytest.raises(UsageError, match=key):
        tiny_config(reference_file, **{key: value})


@pytest.mark.parametrize("references", [
    "ref.npy", 5, [5], [{"pth": "ref.npy"}], [{"path": 3}], [{"path": ""}],
    [{"path": "ref.npy", "kind": 1}], [{"path": "ref.npy", "window": "abc"}],
    [{"path": "ref.npy", "window": [0, 0, 8]}], [{"path": "ref.npy", "window": [0, 0, 0, 8]}],
    [{"path": "ref.npy", "window": [0, "0", 8, 8]}],
])
def test_bad_references_are_usage_errors(reference_file, references):
    with pytest.raises(UsageError, match="reference"):
        tiny_config(reference_file, references=references)


def test_good_values_are_normalised(reference_file):
    assert tiny_config(reference_file, validation=None).validation == ()
    config = tiny_config(reference_file, steps=2e1, looks=1, learning_rate=1, decay_at=1,
                         references=[{"path": str(reference_file), "window": [0.0, 0, 16, 16]}])
    assert config.steps == 20 and isinstance(config.steps, int)
    assert isinstance(config.looks, float) and isinstance(config.learning_rate, float)
    assert config.references[0].window == (0, 0, 16, 16)


def test_step_schedule_drops_once_at_decay_at(reference_file):
    config = tiny_config(reference_file, steps=100, learning_rate=1e-3, decay_at=0.6, decay=0.1)
    assert config.schedule == "step" and config.warmup_steps == 0
    assert [config.learning_rate_at(s) for s in (0, 59)] == [1e-3, 1e-3]
    assert config.learning_rate_at(60) == pytest.approx(1e-4)
    assert config.learning_rate_at(99) == pytest.approx(1e-4)


def test_cosine_schedule_holds_then_falls_to_the_floor(reference_file):
    config = tiny_config(reference_file, steps=101, learning_rate=1e-3, decay_at=0.1, decay=0.01,
                         schedule="cosine")
    start = 0.1 * 101
    rates = [config.learning_rate_at(s) for s in range(101)]
    assert all(rate == 1e-3 for rate in rates[:11])
    assert all(a >= b for a, b in zip(rates, rates[1:]))            # never rises
    assert rates[-1] == pytest.approx(1e-5)                          # ends at the floor
    middle = round((start + 100) / 2)                                # half way down the cosine
    assert config.learning_rate_at(middle) == pytest.approx(
        1e-3 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * (middle - start) / (100 - start)))))


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_warmup_ramps_linearly_then_follows_the_schedule(reference_file, schedule):
    config = tiny_config(reference_file, steps=100, learning_rate=1e-3, decay_at=0.5,
                         schedule=schedule, warmup_steps=10)
    assert [config.learning_rate_at(s) for s in (0, 4, 9)] == pytest.approx([1e-4, 5e-4, 1e-3])
    plain = tiny_config(reference_file, steps=100, learning_rate=1e-3, decay_at=0.5,
                        schedule=schedule)
    assert all(config.learning_rate_at(s) == plain.learning_rate_at(s) for s in range(10, 100))


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{\"references\": ", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"\"ref.npy\"", "JSON object"),
])
def test_unreadable_config_files_are_usage_errors(tmp_path, content, message, capsys):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "internal error" not in err
    # a folder for the config is a missing input (exit 1), a bad config a usage error (2)
    assert main(["train", str(tmp_path), "--run-dir", str(tmp_path / "run"), "-q"]) == 1
    assert "folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    (["--learning-rate", "-1"], "learning_rate"),
    (["--threads", "-1"], "threads"),
    (["--threads", "0"], "threads"),
    (["--max-steps", "0"], "--max-steps: expected an integer >= 1"),
    (["--steps", "0"], "steps"),
    (["--looks", "nan"], "looks"),
    (["--warmup-steps", "10", "--steps", "3"], "expected warmup_steps (--warmup-steps) below"),
])
def test_cli_bad_values_exit_2(tmp_path, reference_file, options, message, capsys):
    config = write_config(tmp_path / "c.json", tiny_values(reference_file))
    args = (["train", "--run-dir", str(tmp_path / "run"), "--references", str(reference_file),
             "--patch-size", "16", "--batch-size", "2", "-q", *options]
            if options[0] in ("--learning-rate", "--steps", "--looks", "--warmup-steps")
            else ["train", config, "--run-dir", str(tmp_path / "run"), "-q", *options])
    try:
        code = main(args)
    except SystemExit as exit_:  # refused by the option's own type, with the usage line
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file(tmp_path, reference_file, capsys):
    config = write_config(tmp_path / "c.json", tiny_values(reference_file))
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["train", config, "--run-dir", str(afile), "-q"]) == 2
    assert "expected a run folder" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(afile), "-q"]) == 2
    assert main(["train", "--run-dir", str(afile), "--export", str(tmp_path / "w.pt")]) == 2
    assert main(["train", config, "--run-dir", str(afile / "sub"), "-q"]) == 2
    assert "cannot create the run folder" in capsys.readouterr().err
    assert afile.read_text() == "keep"


def test_the_count_and_changes_files_of_a_reference_are_refused(tmp_path, capsys):
    # 'train --references refs/*.tif' also matches what 'references build' writes beside each
    # reference: a uint16 date count and uint8 change codes are not speckle-free images.
    from sardespeckle.references import build_reference_files
    from sardespeckle.speckle import simulate_speckle

    dates = []
    for index in range(3):
        path = tmp_path / f"date_{index}.npy"
        np.save(path, (9.0 * simulate_speckle((40, 40), 1, seed=index)).astype(np.float32))
        dates.append(path)
    refs = tmp_path / "refs"
    refs.mkdir()
    build_reference_files(dates, refs / "site.npy", looks=1, kind="intensity")
    run = tmp_path / "run"
    for side, match in (("site_count.npy", "count of dates used"),
                        ("site_changes.npy", "per-date change codes")):
        code = main(["train", "--run-dir", str(run), "--references", str(refs / "site.npy"),
                     str(refs / side), "--kind", "intensity", "--patch-size", "16",
                     "--steps", "1", "-q"])
        assert code == 2
        err = capsys.readouterr().err
        assert match in err and "site.npy; pass the reference itself" in err
        assert not run.exists()
    # A file that merely ends in _count, with no reference beside it, is an ordinary input.
    from sardespeckle.training.data import ReferenceSpec, load_reference

    plain = tmp_path / "field_count.npy"
    np.save(plain, np.full((40, 40), 5.0, np.float32))
    loaded = load_reference(ReferenceSpec(path=str(plain), kind="intensity", window=None))
    assert loaded.intensity.shape == (40, 40)


def test_the_weights_of_an_unfinished_run_point_to_export(tmp_path, reference_file, capsys):
    from sardespeckle.errors import WeightsError
    from sardespeckle.models.weights import load_weights

    run = tmp_path / "run"
    train(tiny_config(reference_file, steps=5), run, max_steps=1)
    with pytest.raises(WeightsError, match=r"has not finished: 'sardespeckle train --run-dir .* "
                                           r"--export partial.pt'"):
        load_weights(run / "sarcnn.pt")
    assert main(["train", "--run-dir", str(run), "--export", str(tmp_path / "p.pt")]) == 0
    assert "checkpoint at step 1 of 5" in capsys.readouterr().err


def test_weights_mistakes_inside_a_run_folder_say_what_to_pass(tmp_path, finished_run):
    from sardespeckle.errors import WeightsError
    from sardespeckle.models.weights import load_weights

    weights = finished_run / "sarcnn.pt"
    assert weights.is_file()
    for wrong in (finished_run / "nope.pt", finished_run):
        with pytest.raises(WeightsError, match=r"holds a finished training run: its weights are "
                                               + str(weights).replace(".", r"\.")):
            load_weights(wrong)
    with pytest.raises(WeightsError, match=r"is a training checkpoint, not weights: .*--export"):
        load_weights(finished_run / "checkpoint.pt")


def test_cli_schedule_options_reach_the_run_config(tmp_path, reference_file):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--references", str(reference_file),
                 "--kind", "intensity", "--patch-size", "16", "--batch-size", "2", "--steps", "6",
                 "--schedule", "cosine", "--warmup-steps", "5", "--learning-rate", "1e-3",
                 "--precision", "fp32", "-q"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["schedule"] == "cosine" and saved["warmup_steps"] == 5
    rows = [row.split(",") for row in (run / "log.csv").read_text().splitlines()[1:]]
    assert [int(row[0]) for row in rows] == [6]   # the last step is always logged
    # the rate logged with step 6 is the one it trained at (0-based step 5, the cosine's end)
    config = TrainConfig.from_dict(saved)
    assert float(rows[0][2]) == pytest.approx(config.learning_rate_at(5))
    assert config.learning_rate_at(5) != pytest.approx(config.learning_rate_at(4))


def test_options_that_a_config_holds_are_refused_not_ignored(tmp_path, reference_file, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_train_values(reference_file, steps=2, validation=[])))
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run), "--steps", "6",
                 "--learning-rate", "0.5", "-q"]) == 2
    assert "--steps, --learning-rate are set by the config file" in capsys.readouterr().err
    assert not run.exists()
    assert main(["train", str(config), "--run-dir", str(run), "--threads", "1", "-q"]) == 0
    # Resuming with the run folder alone: the run's own config.json holds the options.
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--seed", "3", "-q"]) == 2
    assert "--seed is set by the run's" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run), "--max-steps", "1", "-q"]) == 0
    assert json.loads((run / "config.json").read_text())["steps"] == 2


def test_validation_needs_a_file_and_warns_when_it_is_trained_on(tmp_path, reference_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--run-dir", str(tmp_path / "a"), "--references", str(reference_file),
              "--validation"])
    assert exit_info.value.code == 2
    assert main(["train", "--run-dir", str(tmp_path / "b"), "--references", str(reference_file),
                 "--validation", str(reference_file), "--kind", "intensity", "--patch-size", "16",
                 "--batch-size", "2", "--steps", "1", "--precision", "fp32", "-q"]) == 0
    assert "is also a training reference" in capsys.readouterr().err


def test_weights_command_describes_a_users_weights_file(tmp_path, finished_run, capsys):
    from sardespeckle.models.weights import sha256_file

    weights = finished_run / "sarcnn.pt"
    assert main(["weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sarcnn\n  architecture: dncnn depth=3 features=4 channels=1")
    assert f"sha256: {sha256_file(weights)[:16]}  file: {weights}" in out
    assert "looks: 1" in out and "training level (median intensity, level=auto):" in out
    assert main(["weights", str(finished_run / "checkpoint.pt")]) == 1
    assert "is a training checkpoint" in capsys.readouterr().err
    assert main(["weights", str(weights), "--verify"]) == 2


def test_resuming_from_another_folder_says_where_to_resume_from(tmp_path, reference_file,
                                                                 monkeypatch):
    start = tmp_path / "project"
    start.mkdir()
    (start / "site.npy").write_bytes(reference_file.read_bytes())
    monkeypatch.chdir(start)
    config = tiny_config(start / "site.npy", steps=4, validation=[])
    values = config.as_dict()
    values["references"] = [{"path": "site.npy", "kind": "intensity", "window": None}]
    train(TrainConfig.from_dict(values), start / "run", max_steps=1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputFileError, match=r"relative to the folder it was started in: resume "
                                             r"from that folder"):
        train(TrainConfig.load(start / "run" / "config.json"), start / "run")
    # An export needs no reference: the checkpoint carries the training level.
    from sardespeckle.models.weights import load_weights

    export_weights(start / "run", tmp_path / "partial.pt")
    level = load_weights(tmp_path / "partial.pt")[1]["training_level"]
    assert level == pytest.approx(float(np.median(np.load(reference_file))))


def test_export_into_a_missing_folder_is_refused_not_created(tmp_path, finished_run, capsys):
    target = tmp_path / "typo" / "deep" / "w.pt"
    assert main(["train", "--run-dir", str(finished_run), "--export", str(target)]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_cli_gain_range_reaches_the_config_and_the_training_level(tmp_path, reference_file):
    from sardespeckle.models.weights import load_weights

    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--references", str(reference_file),
                 "--kind", "intensity", "--patch-size", "16", "--batch-size", "2", "--steps", "1",
                 "--precision", "fp32", "--gain-range", "0.01", "100", "-q"]) == 0
    assert json.loads((run / "config.json").read_text())["gain_range"] == [0.01, 100.0]
    median = float(np.median(np.load(reference_file)))
    assert load_weights(run / "sarcnn.pt")[1]["training_level"] == pytest.approx(median * 1.0)
    assert main(["train", "--run-dir", str(tmp_path / "bad"), "--references", str(reference_file),
                 "--gain-range", "100", "0.01"]) == 2


def test_repeated_reference_options_add_up(tmp_path, reference_file):
    second = tmp_path / "second.npy"
    second.write_bytes(reference_file.read_bytes())
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--references", str(reference_file),
                 "--references", str(second), "--validation", str(reference_file.parent / "val.npy"),
                 "--validation", str(second), "--kind", "intensity", "--patch-size", "16",
                 "--batch-size", "2", "--steps", "1", "--precision", "fp32", "-q"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert [spec["path"] for spec in saved["references"]] == [str(reference_file), str(second)]
    assert [spec["path"] for spec in saved["validation"]] == \
        [str(reference_file.parent / "val.npy"), str(second)]


def test_references_that_are_not_speckle_free_images_are_refused(tmp_path):
    """An SLC (complex, speckled), an all-nodata file and dB data given as intensity are not
    training references: each is refused naming the file, before any training."""
    from sardespeckle.errors import InvalidInputError
    from sardespeckle.training.data import ReferenceSpec, load_reference

    rng = np.random.default_rng(0)
    slc = tmp_path / "slc.npy"
    np.save(slc, (rng.standard_normal((40, 40)) + 1j * rng.standard_normal((40, 40))).astype(
        np.complex64))
    with pytest.raises(InvalidInputError, match="slc.npy holds complex data.*references build"):
        load_reference(ReferenceSpec(path=str(slc), kind=None, window=None))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.full((40, 40), np.nan, np.float32))
    with pytest.raises(InvalidInputError, match="empty.npy has no valid pixel"):
        load_reference(ReferenceSpec(path=str(empty), kind="intensity", window=None))
    db = tmp_path / "db.npy"
    np.save(db, rng.normal(-15, 3, (40, 40)).astype(np.float32))
    with pytest.raises(InvalidInputError, match="100% negative.*--kind db"):
        load_reference(ReferenceSpec(path=str(db), kind="intensity", window=None))


def test_a_diverging_run_is_a_clear_error_that_says_what_to_change(tmp_path, reference_file,
                                                                     capsys):
    code = main(["train", "--run-dir", str(tmp_path / "run"), "--references",
                 str(reference_file), "--kind", "intensity", "--patch-size", "16",
                 "--batch-size", "2", "--steps", "2", "--learning-rate", "1e30", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "internal error" not in err
    assert "training diverged at step" in err and "lower --learning-rate" in err
