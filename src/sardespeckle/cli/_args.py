"""argparse value types shared by the sub-commands: one wording for one check."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


#: Most looks a simulation accepts: beyond, the speckle is below float32's resolution of 1.
MAX_SIMULATED_LOOKS = 1e4


def simulated_looks(text: str) -> float:
    """Looks of simulated speckle: a number in (0, :data:`MAX_SIMULATED_LOOKS`]."""
    value = positive_float(text)
    if value > MAX_SIMULATED_LOOKS:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_SIMULATED_LOOKS:g} looks (more leave no speckle to "
            f"simulate: its std is 1/√L), got {text!r}")
    return value


def false_alarm_or_off(text: str) -> float | None:
    """A false-alarm rate in (0, 0.01], or None for ``0``/``off``/``none`` (keep_targets)."""
    if text.strip().lower() in ("0", "off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 0.01:
        raise argparse.ArgumentTypeError(
            f"expected a false-alarm rate in (0, 0.01] (e.g. 1e-5), or 0 or off for off, "
            f"got {text!r}")
    return value


def _positive_float_or_auto(text: str, auto):
    if text == "auto":
        return auto
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'auto', got {text!r}") from None


def positive_float_or_auto(text: str) -> float | None:
    """``auto`` (None) or a finite number > 0."""
    return _positive_float_or_auto(text, None)


def positive_float_or_auto_word(text: str) -> float | str:
    """``auto`` (kept as the word, where None already means "not given") or a number > 0."""
    return _positive_float_or_auto(text, "auto")


def _integer(text: str, minimum: int, *, odd: bool = False) -> int:
    """An integer ≥ ``minimum`` (and odd, with ``odd``)."""
    wanted = f"an {'odd ' if odd else ''}integer >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
    if value < minimum or (odd and value % 2 == 0):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0 (seeds)."""
    return _integer(text, 0)


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    return _integer(text, 1)


def band_or_all(text: str) -> int | str:
    """A band number ≥ 1, or ``all``."""
    return "all" if text == "all" else _integer(text, 1)


def odd_positive_int(text: str) -> int:
    """An odd integer ≥ 1 (window sides)."""
    return _integer(text, 1, odd=True)
