"""A tiny SAR-CNN training configuration shared by the training tests."""


def tiny_train_values(reference_file, **overrides) -> dict:
    """Values of a tiny SAR-CNN training config on the ``reference_file`` fixture (its val.npy
    beside it for validation): fp32, one thread, a checkpoint every step; ``overrides`` win."""
    values = dict(references=[{"path": str(reference_file), "kind": "intensity"}],
                  validation=[{"path": str(reference_file.parent / "val.npy"), "kind": "intensity"}],
                  threads=1, precision="fp32", checkpoint_every=1, log_every=1, seed=7,
                  validation_draws=1, patch_size=16)
    values.update(overrides)
    return values
