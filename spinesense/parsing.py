"""Parsers for the values people type on the command line: durations, time windows, numbers.

Each raises ``BadValue``, which argparse prints as the option's error and which other
callers catch as a ValueError.
"""

from __future__ import annotations

import argparse
import math
import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|min|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A value that cannot be parsed; the message says what to write instead."""


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """'3600', '45s', '90m', '20min', '2h', '1h30m', '0.5h', '1d' → seconds."""
    s = re.sub(r"\s+", "", text).lower()
    try:
        value = float(s)
    except ValueError:
        value, pos = 0.0, 0
        for part in _PART.finditer(s):
            if part.start() != pos:
                break
            value += float(part[1]) * _SECONDS[part[2]]
            pos = part.end()
        if not s or pos != len(s):
            raise BadValue(f"duration {text!r} not understood; write seconds or a number "
                           "with a unit, e.g. 90s, 20m, 2h, 1h30m") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise BadValue(f"duration {text!r} must be a finite number of seconds "
                       f"{'>= 0' if allow_zero else '> 0'}")
    return value


def parse_window(text: str) -> tuple[float, float]:
    """'START:END' in seconds of a recording's own time base (END at least 1 s later)."""
    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise BadValue(f"--calibrate {text!r}: expected START:END in seconds, "
                       "e.g. 2:12") from None
    if not (math.isfinite(start) and math.isfinite(end)) or end - start < 1.0:
        raise BadValue(f"--calibrate {text!r}: END must be at least 1 s after START")
    return start, end


def parse_number(text: str) -> float:
    """A finite number ('nan', 'inf' and words are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadValue(f"{text!r} is not a finite number")
    return value


def parse_non_negative(text: str) -> float:
    """A finite number >= 0."""
    value = parse_number(text)
    if value < 0:
        raise BadValue(f"{text!r} must be >= 0")
    return value


def parse_positive(text: str) -> float:
    """A finite number > 0."""
    value = parse_number(text)
    if value <= 0:
        raise BadValue(f"{text!r} must be > 0")
    return value


def _whole(text: str, name: str) -> int:
    """``text`` as an int; ``name`` is how the error calls it."""
    try:
        return int(text)
    except ValueError:
        raise BadValue(f"{name} is not a whole number") from None


def parse_seed(text: str) -> int:
    """A random seed: a whole number >= 0 (what numpy's generators accept)."""
    value = _whole(text, f"seed {text!r}")
    if value < 0:
        raise BadValue(f"seed {text!r} must be >= 0")
    return value


def parse_count(text: str) -> int:
    """A count of things: a whole number >= 1."""
    value = _whole(text, repr(text))
    if value < 1:
        raise BadValue(f"{text!r} must be at least 1")
    return value


def parse_speed(text: str) -> float:
    """A time-acceleration factor for emulated runs: > 0 and <= 10000."""
    value = parse_number(text)
    if not 0 < value <= 10000:
        raise BadValue(f"{text!r} is out of range; use > 0 and <= 10000")
    return value


def parse_bus(text: str) -> int:
    """An I2C bus number, 0..255 (/dev/i2c-N)."""
    try:
        value = int(text)
    except ValueError:
        raise BadValue(f"bus {text!r} is not a whole number") from None
    if not 0 <= value <= 255:
        raise BadValue(f"bus {text!r} must be between 0 and 255")
    return value
