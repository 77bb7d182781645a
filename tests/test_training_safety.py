"""A run folder is trained by one process at a time; damaged checkpoints and weights are
refused; a full disk while checkpointing is a plain error; an ignored Ctrl-C stays ignored."""

import json
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from _tiny_training import tiny_train_values

from sardespeckle.errors import InputFileError, OutputFileError, WeightsError
from sardespeckle.models.weights import damaged_member, load_weights
from sardespeckle.training import TrainConfig, export_weights, train


def tiny_config(reference_file, **overrides):
    return TrainConfig.from_dict(tiny_train_values(
        reference_file, **{"depth": 4, "features": 8, "batch_size": 4, "steps": 6,
                           "validate_every": 3, **overrides}))


def damage(path):
    """Flip one byte inside the stored data of the archive's largest member (a tensor)."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
        start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    data = bytearray(path.read_bytes())
    data[start + member.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return member.filename


def test_a_second_process_on_a_run_folder_is_refused(reference_file, tmp_path):
    config = tiny_config(reference_file, steps=100000, validate_every=1000)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tiny_train_values(
        reference_file, depth=4, features=8, batch_size=4, steps=100000, validate_every=1000)))
    run = tmp_path / "run"
    code = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    first = subprocess.Popen([sys.executable, "-c", code, "train", str(config_path),
                              "--run-dir", str(run), "-q"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.05)
        with pytest.raises(OutputFileError, match="is in use by another 'sardespeckle train'"):
            train(config, run, progress=None, max_steps=1)
        assert (run / "config.json").exists()  # the refused call touched nothing
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 143, err
    # once the first has ended, the folder is free: the run resumes
    result = train(config, run, progress=None, max_steps=1)
    assert result.step >= 2


def test_damaged_weights_and_checkpoints_are_refused(reference_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(reference_file, steps=4), run, progress=None, max_steps=2)
    checkpoint = run / "checkpoint.pt"
    export_weights(run, tmp_path / "w.pt")
    exported = tmp_path / "w.pt"
    assert damaged_member(checkpoint) is None and damaged_member(exported) is None
    load_weights(exported)  # intact: loads
    member = damage(tmp_path / "w.pt")
    assert damaged_member(tmp_path / "w.pt") == member
    with pytest.raises(WeightsError, match=f"is damaged: its member {member} does not match"):
        load_weights(tmp_path / "w.pt")
    good = checkpoint.read_bytes()
    damage(checkpoint)
    with pytest.raises(InputFileError, match="the run checkpoint .* is damaged"):
        train(tiny_config(reference_file, steps=4), run, progress=None)
    checkpoint.write_bytes(good)
    assert train(tiny_config(reference_file, steps=4), run, progress=None).finished


def test_a_checkpoint_with_nan_or_of_another_network_is_named_as_such(reference_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(reference_file, steps=4), run, progress=None, max_steps=2)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    first = next(name for name, tensor in state["model"].items() if tensor.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(InputFileError, match=f"holds non-finite values \\({first}"):
        train(tiny_config(reference_file, steps=4), run, progress=None)
    other = tmp_path / "other"
    train(tiny_config(reference_file, steps=4, features=4), other, progress=None, max_steps=1)
    (run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(InputFileError, match="does not fit the network of .*depth 4, 8 features"):
        train(tiny_config(reference_file, steps=4), run, progress=None)
    with pytest.raises(InputFileError, match="does not fit the network"):
        export_weights(run, tmp_path / "x.pt")


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(reference_file, tmp_path,
                                                                     monkeypatch):
    run = tmp_path / "run"
    train(tiny_config(reference_file, steps=6), run, progress=None, max_steps=2)
    before = (run / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def short_write(payload, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 80128 "
                           "vs 80020")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(OutputFileError, match="cannot write .*checkpoint.pt: .* MiB left on the "
                                              "device .*the previous file .* is intact"):
        train(tiny_config(reference_file, steps=6), run, progress=None)
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(torch, "save", real_save)
    assert train(tiny_config(reference_file, steps=6), run, progress=None).finished


def test_an_ignored_interrupt_stays_ignored_while_training(reference_file, tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tiny_train_values(
        reference_file, depth=3, features=4, batch_size=2, steps=120, validate_every=1000)))
    run = tmp_path / "run"
    code = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "train", str(config_path), "--run-dir", str(run), "-q"],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # a script's `cmd &`
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the training ended before the interrupt"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "finished 120 steps" in err


def test_files_saved_without_checksums_are_not_called_damaged(tmp_path):
    from sardespeckle.models.weights import WEIGHTS_DIR

    payload = torch.load(WEIGHTS_DIR / "sarcnn-s1-l1.pt", weights_only=True)
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(payload, tmp_path / "nocrc.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    assert damaged_member(tmp_path / "nocrc.pt") is None
    load_weights(tmp_path / "nocrc.pt")
