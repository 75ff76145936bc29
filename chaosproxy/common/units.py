"""Parsing of human units: durations (`250ms`, `1.5s`, `2m`), sizes (`16KiB`), rates (`16KiB/s`)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|s|m|h)?\s*$")
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "k": 1024,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration(value: object) -> float:
    """Seconds from `250ms`, `1.5s`, `2m`, `1h`, or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 250ms, 1.5s or 2m, got {value!r}")
    if isinstance(value, int | float):
        try:
            x = float(value)
        except OverflowError:  # an integer with hundreds of digits
            x = math.inf
        if (isinstance(value, float) and not math.isfinite(value)) or x < 0:
            raise ValueError(f"duration must be a finite number ≥ 0, got {value!r}")
        return _bounded(x, MAX_DURATION, value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return _bounded(float(m.group(1)) * _DURATION_UNITS[m.group(2)], MAX_DURATION, value)
    raise ValueError(f"expected a duration like 250ms, 1.5s or 2m, got {value!r}")


MAX_DURATION = 366 * 86400.0  # a year: longer is a typo (or "9" * 400), not a plan
MAX_SIZE = 1024**4  # a tebibyte


_LIMITS = {MAX_DURATION: "a year", MAX_SIZE: "1TiB"}


def _shown(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _bounded(x: float, limit: float, raw: object) -> float:
    """`x`, unless it is not finite or beyond `limit` (a value error naming what was given)."""
    if not math.isfinite(x) or x > limit:
        raise ValueError(f"{_shown(raw)} is too large (at most {_LIMITS.get(limit, limit)})")
    return x


def parse_size(value: object) -> int:
    """Bytes from `512`, `16KiB`, `1MiB` (binary) or `1MB` (decimal)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512, 16KiB or 1MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must be ≥ 0, got {value!r}")
        return int(_bounded(float(min(value, MAX_SIZE + 1)), MAX_SIZE, value))
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(_bounded(float(m.group(1)) * _SIZE_UNITS[m.group(2)], MAX_SIZE, value))
    raise ValueError(f"expected a size like 512, 16KiB or 1MiB, got {value!r}")


def parse_rate(value: object) -> float:
    """Bytes per second from `16KiB/s` (or a bare number of bytes per second)."""
    if isinstance(value, str) and value.strip().endswith("/s"):
        value = value.strip()[:-2]
    try:
        rate = parse_size(value) if not isinstance(value, float) else value
    except ValueError:
        raise ValueError(f"expected a rate like 16KiB/s, got {_shown(value)}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate must be a finite number > 0, got {value!r}")
    return float(rate)
