"""PromQL read without evaluating it: how far a query reaches back, and its instant selectors."""

from __future__ import annotations

import pytest

from chaosproxy.experiment.promql import instant_selectors, lag_seconds, parse_duration
from tests.experiment.prom_api import ERROR_RATIO, ERRORS


@pytest.mark.parametrize(
    ("query", "lag"),
    [
        ("rate(x[5s])", 5.0),
        ("sum(rate(x[1m]))", 60.0),
        ("max_over_time(x[30s:1s])", 30.0),
        ("x", 0.0),
        ("rate(x[1m30s])", 90.0),
        ("sum(rate(x[5s])) / sum(rate(y[1m]))", 60.0),
        ("max_over_time(rate(x[5s])[30s:1s])", 35.0),  # a subquery adds its operand's reach
        ("max_over_time(x[5m:])", 300.0),
        ("rate(x[250ms])", 0.25),
        ("avg_over_time(x[300])", 300.0),  # a number of seconds
        ('sum(rate(x{path=~"/a[0-9]m"}[5s]))', 5.0),  # brackets in a string are not ranges
        ("sum(x) # [1h] in a comment\n", 0.0),
        (f"({ERRORS} or vector(0)) / sum(rate(chaosproxy_requests_total[5s]))", 5.0),
        ("rate(x[oops])", 0.0),
        ("rate(x[5s", 0.0),
    ],
)
def test_lag_seconds_is_how_far_the_query_reaches_back(query: str, lag: float) -> None:
    assert lag_seconds(query) == lag


def test_parse_duration() -> None:
    assert parse_duration("1h2m3s4ms") == 3723.004
    assert parse_duration(" 1d ") == 86400.0
    assert parse_duration("1.5") == 1.5
    for bad in ("", "5", "5x", "-1", "nan", "inf", "1e400", "9" * 30 + "y", "s"):
        if bad != "5":
            assert parse_duration(bad) is None, bad


@pytest.mark.parametrize(
    ("query", "selectors"),
    [
        ("x", ["x"]),
        ('sum by (code) (x{a="b"})', ['x{a="b"}']),
        ("sum(x) by (code) / on() group_left sum(y)", ["x", "y"]),
        ('{__name__="up"}', ['{__name__="up"}']),
        ("rate(x[5s])", []),  # a range: its window excludes old samples
        (ERROR_RATIO, []),
        ("max_over_time(g[30s:1s])", ["g"]),  # a subquery evaluates g with the lookback
        ("max_over_time((g)[30s:1s])", ["g"]),
        ("x offset 5m + y @ 100 + z", ["z"]),  # old on purpose
        ("x > bool 1e-3", ["x"]),
        ('label_replace(x, "a", "$1", "b", "(.*)") or vector(0)', ["x"]),
        ('x{a="}"} + x{a="}"}', ['x{a="}"}']),
        ("job:rate5m:sum", ["job:rate5m:sum"]),
        ("histogram_quantile(0.9, sum by (le) (rate(b[5s])))", []),
        ("sum(", []),
        ('"unterminated', []),
    ],
)
def test_instant_selectors(query: str, selectors: list[str]) -> None:
    assert instant_selectors(query) == selectors
