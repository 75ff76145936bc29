"""`scenarios show`'s YAML: the model written back loads into the same scenario."""

from __future__ import annotations

import textwrap

import pytest

from chaosproxy.config.dump import (
    format_duration,
    human_duration,
    scenario_to_data,
    scenario_to_yaml,
)
from chaosproxy.config.loader import load_scenario_text

FULL = """
name: full
description: every part of the grammar
seed: 7
repeat: 3
max_duration: 10m
max_active_faults: 4
abort_if: {error_rate_above: 0.5, window: 30s}
rules:
  - name: wide
    match: {path: /health}
    fault: {latency: {delay: 250ms}}
phases:
  - name: warm
    duration: 1m
  - name: bad
    duration: 90s
    rules:
      - name: api
        match:
          methods: [GET, POST]
          path: /api/**
          headers: {X-Tenant: {regex: "^t-"}, X-Debug: {present: true}}
          query: {v: "2"}
          client_ip: [10.0.0.0/8]
        probability: {from: 0.1, to: 0.9}
        every: 2
        continue: true
        fault: {error: {status: 503}}
      - when: {inflight_above: 10}
        first: 5
        outcomes:
          - {weight: 3, fault: {reset: {at: headers}}}
          - {weight: 1, fault: {throttle: {rate: 16KiB/s}}}
"""


def test_the_dump_loads_back_into_the_same_scenario() -> None:
    original = load_scenario_text(textwrap.dedent(FULL), "full.yaml")
    text = scenario_to_yaml(original)
    again = load_scenario_text(text, "again.yaml")
    assert scenario_to_data(again) == scenario_to_data(original)
    assert scenario_to_yaml(again) == text


def test_defaults_are_left_out() -> None:
    sc = load_scenario_text("name: s\nphases: [{name: p, duration: 1s}]\n", "s.yaml")
    assert scenario_to_data(sc) == {"name": "s", "phases": [{"name": "p", "duration": "1s"}]}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (1.5, "1.5s"), (120, "2m"), (90, "90s"), (0, "0s"), (3600, "60m")],
)
def test_durations_are_written_in_a_unit_the_loader_reads(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "forever"), (45, "45s"), (200, "3m20s"), (3725, "1h2m5s"), (7200, "2h"), (1.5, "1.5s")],
)
def test_listings_use_compound_durations(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text
