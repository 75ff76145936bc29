"""Human units: durations, sizes and rates as scenario files write them."""

from __future__ import annotations

import pytest

from chaosproxy.common.units import parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        (" 3 s ", 3.0),
        (".5s", 0.5),
        ("7", 7.0),
        (2, 2.0),
        (0.1, 0.1),
        (0, 0.0),
    ],
)
def test_durations_read_in_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "fast", "1d", "-1s", "1 s s", True, -1, float("inf"), None])
def test_a_bad_duration_says_what_it_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("512", 512),
        (512, 512),
        ("16KiB", 16 * 1024),
        ("1MiB", 1024**2),
        ("1GiB", 1024**3),
        ("2k", 2048),
        ("1MB", 1000**2),
        ("1KB", 1000),
        ("1.5KiB", 1536),
        ("10B", 10),
        (0, 0),
    ],
)
def test_sizes_read_in_bytes_binary_unless_decimal_units(text: object, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["-1", -1, "1TB", "lots", True, 1.5, None])
def test_a_bad_size_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("16KiB/s", 16384.0), ("16KiB", 16384.0), ("100/s", 100.0), (100, 100.0), (2.5, 2.5)],
)
def test_rates_read_in_bytes_per_second(text: object, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", [0, "0/s", -5.0, float("nan"), "fast/s", "1KiB/m"])
def test_a_rate_must_be_a_positive_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(bad)
