"""Collection over recorded real runs (`fixtures/`): the plugin's lines as Locust wrote them,
the proxy's `/events` and `/stats/timeseries` as it answered, into the phase windows and the
per-second rows the real run judged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaosproxy.experiment import align
from chaosproxy.experiment.outcome import COOLDOWN, WARMUP
from chaosproxy.experiment.series import View, second_to_json
from tests.experiment.fixtures.replay import NAMES, Recording, recording


def client_data(rec: Recording) -> align.ClientData:
    data = align.ClientData(rec.client_path)
    data.poll()
    return data


# ---------------------------------------------------------------- the client view


@pytest.mark.parametrize("name", NAMES)
def test_the_plugins_lines_sum_by_second(name: str) -> None:
    rec = recording(name)
    data = client_data(rec)
    lines = [json.loads(x) for x in rec.client_path.read_text().splitlines()]
    counts = [x for x in lines if "t" in x]
    status = [x for x in lines if "users" in x]
    # A second's requests come in two lines (written in it and just after): summed.
    assert len(counts) > len(data.seconds)
    for t, v in data.seconds.items():
        mine = [x for x in counts if x["t"] == t]
        assert v.requests == sum(x["n"] for x in mine)
        assert v.failures == sum(x["f"] for x in mine)
        assert sum(v.hist.values()) == v.requests == sum(v.sketch.values())
        assert sum(n for n, _ in v.tenths.values()) == v.requests
    assert data.users == status[-1]["users"] and data.last_report == status[-1]["now"]
    assert data.users_at == {int(x["now"]): x["users"] for x in status}
    assert data.workers is None  # one Locust process, no workers


def test_tailing_the_file_as_it_grows_reads_the_same(tmp_path: Path) -> None:
    """The runner reads the file while Locust appends: cut anywhere, even mid-line."""
    rec = recording("failover")
    raw = rec.client_path.read_bytes()
    path = tmp_path / "client.jsonl"
    tail = align.ClientData(path)
    tail.poll()  # no file yet: nothing, no error
    step = 777  # not a line length
    with path.open("wb") as f:
        for i in range(0, len(raw), step):
            f.write(raw[i : i + step])
            f.flush()
            tail.poll()
    whole = client_data(rec)
    assert tail.seconds == whole.seconds and tail.users_at == whole.users_at
    assert tail.users == whole.users and tail._partial == b""


def test_a_failed_outage_is_in_the_client_view() -> None:
    """No failover: every request the outage's first second started failed."""
    rec = recording("halt")
    data = client_data(rec)
    outage = int(rec.at) + 3
    assert data.seconds[outage].requests > 0
    assert data.seconds[outage].failures == data.seconds[outage].requests
    assert data.seconds[outage - 1].failures == 0


# ---------------------------------------------------------------- phases and rows


@pytest.mark.parametrize("name", NAMES)
def test_the_phase_windows_are_the_proxys_events(name: str) -> None:
    rec = recording(name)
    windows = align.phase_windows(rec.events, rec.scenario, rec.load_stopped)
    ran = [p for p in rec.expected["phases"] if p["seconds"]]
    assert [(w.name, w.start, w.end) for w in windows] == [
        (p["name"], p["start"], p["end"]) for p in ran
    ]
    assert windows[0].start == rec.at
    assert [w.has_rules for w in windows] == [w.name == "outage" for w in windows]


def test_a_halted_scenario_ends_its_phase_at_the_stop() -> None:
    rec = recording("halt")
    windows = align.phase_windows(rec.events, rec.scenario, rec.load_stopped)
    assert [w.name for w in windows] == ["steady", "outage"]
    stop = next(e for e in rec.events if e["kind"] == "scenario_stopped")
    assert windows[-1].end == stop["t"] < rec.at + 7  # cut short of its 4 s
    # Without the stop (still running as far as anyone knows) the window runs to `end`.
    running = [e for e in rec.events if e["kind"] != "scenario_stopped"]
    assert align.phase_windows(running, rec.scenario, 123.0)[-1].end == 123.0


@pytest.mark.parametrize("name", NAMES)
def test_the_rows_are_the_rows_the_real_run_judged(name: str) -> None:
    rec = recording(name)
    data = client_data(rec)
    proxy = align.proxy_views(rec.timeseries)
    windows = align.phase_windows(rec.events, rec.scenario, rec.load_stopped)
    rows = align.build_rows(rec.first, rec.last, data.seconds, proxy, windows, {}, data.users_at)
    assert [second_to_json(s) for s in rows] == [second_to_json(s) for s in rec.series]
    # What the rows say about the run: the warm-up, the phases in order, the cool-down label.
    labels = [s.phase for s in rows]
    assert labels[0] == WARMUP and labels.index("steady") == rec.at - rec.first
    outage = [s for s in rows if s.phase == "outage"]
    assert sum(s.proxy.injected for s in outage) == next(
        p["injected"] for p in rec.expected["phases"] if p["name"] == "outage"
    )


def test_labels_before_between_and_after_the_phases() -> None:
    rec = recording("failover")
    windows = align.phase_windows(rec.events, rec.scenario, rec.load_stopped)
    at = int(rec.at)
    assert align.label(at - 1, windows) == WARMUP
    assert [align.label(at + i, windows) for i in (0, 2, 3, 6, 7, 12)] == [
        "steady",
        "steady",
        "outage",
        "outage",
        "after",
        "after",
    ]
    assert align.label(at + 13, windows) == COOLDOWN
    assert align.label(at, []) == WARMUP


# ---------------------------------------------------------------- the proxy view


def test_the_proxy_view_of_the_outage_is_what_it_injected() -> None:
    rec = recording("failover")
    views = align.proxy_views(rec.timeseries)
    rows = {r["t"]: r for r in rec.timeseries}
    assert set(views) == {t for t, r in rows.items() if r["requests"]}  # empty seconds dropped
    outage = [views[int(rec.at) + i] for i in range(3, 7)]
    assert all(v.injected == v.requests == v.failures > 0 for v in outage)
    for t, v in views.items():
        assert sum(v.hist.values()) == v.requests == rows[t]["requests"]


def test_several_sidecars_add_up_by_second() -> None:
    rec = recording("spike")
    one = align.proxy_views(rec.timeseries)
    assert align.merge_views([one]) is one
    two = align.merge_views([one, align.proxy_views(rec.timeseries)])
    assert set(two) == set(one)
    for t, v in one.items():
        assert two[t].requests == 2 * v.requests and two[t].injected == 2 * v.injected
    assert two[min(one)].hist == {b: 2 * c for b, c in one[min(one)].hist.items()}
    assert isinstance(two[min(one)], View)


def test_proxy_rows_carry_their_sketch_and_a_malformed_row_is_skipped() -> None:
    rows = [
        {"t": 100, "requests": 2, "errors": 1, "injected": 1, "hist": {"3": 2},
         "sketch": {"-400": 1, "-300": 1}},
        {"t": 101, "requests": 1, "errors": "x", "injected": 0},
        {"t": 102, "requests": 1, "errors": 0, "injected": 0, "sketch": ["not", "a", "map"]},
    ]  # fmt: skip
    views = align.proxy_views(rows)
    assert list(views) == [100] and views[100].sketch == {-400: 1, -300: 1}
