"""The fault journal: one line per injected fault; same seed, same lines; bounded by rotation
(never a lost or split line), reopened for outside rotation, filtered by fault."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.events import EventBus, FaultInjected, RequestDone, StateChanged, StateKind
from chaosproxy.engine import journal as journal_module
from chaosproxy.engine.journal import Journal, journal_files
from tests.conftest import StartProxy

SEEDED = """\
name: coin-flips
seed: 99
phases:
  - name: flaky
    duration: 1h
    rules:
      - name: api
        match: {path: "/api/**"}
        probability: 0.5
        outcomes:
          - {weight: 2, fault: {error: {status: 500}}}
          - {weight: 1, fault: {error: {status: 503}}}
"""


async def drive(proxy_url: str, n: int) -> list[int]:
    codes = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            path = "/api/items" if i % 3 else "/health"
            async with s.get(proxy_url + path, headers={"X-Request-Id": f"req-{i}"}) as r:
                await r.read()
                codes.append(r.status)
    return codes


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_journal_has_one_line_per_injected_fault(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    journal = tmp_path / "journal.jsonl"
    rt = await start_proxy(
        demo_upstream,
        scenario="coin-flips",
        scenario_dir=str(tmp_path),
        journal=str(journal),
        reload_interval=0,
    )
    codes = await drive(rt.proxy_url, 30)
    entries = lines(journal)
    assert len(entries) == sum(c >= 500 for c in codes) > 0
    first = entries[0]
    assert set(first) == {
        "t",
        "time",
        "request_id",
        "method",
        "path",
        "scenario",
        "phase",
        "rule",
        "fault",
        "outcome",
    }
    assert first["scenario"] == "coin-flips" and first["phase"] == "flaky"
    assert first["rule"] == "api" and first["fault"] == "error" and first["method"] == "GET"
    assert first["path"] == "/api/items" and first["request_id"].startswith("req-")
    assert first["outcome"] in ("status=500", "status=503")
    assert 0 <= first["t"] < 60
    when = datetime.datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert first["time"].endswith("Z") and abs(when.timestamp() - time.time()) < 60


async def test_same_seed_same_journal(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    runs = []
    for i in range(2):
        journal = tmp_path / f"journal-{i}.jsonl"
        rt = await start_proxy(
            demo_upstream,
            scenario=str(tmp_path / "coin-flips.yaml"),
            journal=str(journal),
            reload_interval=0,
        )
        await drive(rt.proxy_url, 60)
        await rt.stop()
        runs.append(
            [{k: v for k, v in e.items() if k not in ("t", "time")} for e in lines(journal)]
        )
    assert runs[0] == runs[1]
    assert 5 < len(runs[0]) < 35


async def test_seed_flag_overrides_the_scenarios_seed(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    runs = []
    for seed in (1, 2):
        journal = tmp_path / f"journal-{seed}.jsonl"
        rt = await start_proxy(
            demo_upstream,
            scenario=str(tmp_path / "coin-flips.yaml"),
            journal=str(journal),
            seed=seed,
            reload_interval=0,
        )
        await drive(rt.proxy_url, 60)
        await rt.stop()
        runs.append([e["request_id"] + e["outcome"] for e in lines(journal)])
    assert rt.engine.status()["scenario"]["seed"] == 2
    assert runs[0] != runs[1]


def fault(i: int, name: str = "error") -> FaultInjected:
    return FaultInjected(float(i), f"req-{i:04d}", "GET", "/api/items", "", "", "r1", name, "x")


def journal_bus(path: Path, **kw: Any) -> tuple[EventBus, Journal]:
    bus = EventBus()
    j = Journal(path, FakeClock(), **kw)
    j.attach(bus)
    return bus, j


def all_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the journal and its rotated files, oldest first; each must be whole."""
    out = []
    for f in journal_files(path):
        text = f.read_text()
        assert text.endswith("\n"), f"{f.name} ends mid-line"
        out += [json.loads(line) for line in text.splitlines()]
    return out


async def test_a_run_past_the_size_limit_rotates_and_loses_no_line(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "coin-flips.yaml").write_text(SEEDED)
    journal = tmp_path / "journal.jsonl"
    rt = await start_proxy(
        demo_upstream,
        scenario="coin-flips",
        scenario_dir=str(tmp_path),
        journal=str(journal),
        journal_max_size=1000,
        journal_keep=50,
        reload_interval=0,
    )
    codes = await drive(rt.proxy_url, 90)
    await rt.stop()
    files = journal_files(journal)
    assert len(files) > 2  # the run crossed the limit more than once
    assert all(f.stat().st_size <= 1000 for f in files)
    entries = all_lines(journal)
    assert len(entries) == sum(c >= 500 for c in codes)
    ids = [e["request_id"] for e in entries]
    assert ids == sorted(ids, key=lambda r: int(r.split("-")[1]))  # oldest file first


def test_rotation_keeps_the_newest_files_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path, max_size=400, keep=2)
    for i in range(40):
        bus.emit(fault(i))
    j.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "journal.jsonl",
        "journal.jsonl.1",
        "journal.jsonl.2",
    ]
    ids = [e["request_id"] for e in all_lines(path)]
    assert ids[-1] == "req-0039" and ids == sorted(ids)
    assert len(ids) == len(set(ids)) < 40  # the oldest were dropped with journal.jsonl.3


def test_a_line_longer_than_the_limit_still_lands_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path, max_size=10, keep=3)
    bus.emit(fault(1))
    bus.emit(fault(2))
    j.close()
    assert [e["request_id"] for e in all_lines(path)] == ["req-0001", "req-0002"]


def test_reopen_sends_new_lines_to_a_new_file_after_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path)
    bus.emit(fault(1))
    moved = tmp_path / "journal.jsonl.moved"
    path.rename(moved)  # what logrotate does before it signals
    bus.emit(fault(2))  # still the open file, now named .moved
    j.reopen()
    bus.emit(fault(3))
    j.close()
    assert [e["request_id"] for e in lines(moved)] == ["req-0001", "req-0002"]
    assert [e["request_id"] for e in lines(path)] == ["req-0003"]


def test_the_fault_filter_keeps_only_the_named_faults(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path, faults={"error", "reset"})
    for i, name in enumerate(["latency", "error", "throttle", "reset", "latency"]):
        bus.emit(fault(i, name))
    j.close()
    assert [e["fault"] for e in lines(path)] == ["error", "reset"]


def test_an_existing_file_counts_towards_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"from": "an earlier run"}\n' * 20)
    bus, j = journal_bus(path, max_size=600)
    bus.emit(fault(1))
    j.close()
    assert lines(path) == [lines(path)[0]] and lines(path)[0]["request_id"] == "req-0001"
    assert journal_files(path) == [tmp_path / "journal.jsonl.1", path]


def test_a_fault_is_timed_from_its_own_scenarios_start(tmp_path: Path) -> None:
    """A request of scenario A that records its fault after B started (a throttle records when
    the body leaves; or an instant after an admin-thread start) is timed from A's start."""
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path)
    bus.emit(StateChanged(100.0, StateKind.SCENARIO_STARTED, "a"))
    bus.emit(StateChanged(105.0, StateKind.SCENARIO_STARTED, "b"))
    for t, scenario in [(104.99, "a"), (106.0, "a"), (106.0, "b"), (107.0, "")]:
        bus.emit(FaultInjected(t, "r", "GET", "/", scenario, "p", "rule", "error", "x"))
    j.close()
    assert [(e["scenario"], e["t"]) for e in lines(path)] == [
        ("a", 4.99),
        ("a", 6.0),
        ("b", 1.0),
        ("", 2.0),  # an ad-hoc rule's fault: from the latest start
    ]


def test_each_line_carries_its_wall_clock_time_in_utc(tmp_path: Path) -> None:
    """`t` is relative to the scenario's start; `time` is the instant itself, UTC, to the
    millisecond (what logs and dashboards are read against)."""
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path)
    start = 1796132644.0  # 2026-12-01T13:44:04Z
    bus.emit(StateChanged(start, StateKind.SCENARIO_STARTED, "a"))
    for t in (start + 0.0004, start + 1.9996, start + 86400.25):
        bus.emit(FaultInjected(t, "r", "GET", "/", "a", "p", "rule", "error", "x"))
    j.close()
    assert [(e["t"], e["time"]) for e in lines(path)] == [
        (0.0004, "2026-12-01T13:44:04.000Z"),
        (1.9996, "2026-12-01T13:44:05.999Z"),
        (86400.25, "2026-12-02T13:44:04.250Z"),
    ]


def test_a_fault_on_an_http2_stream_waits_for_the_calls_status(tmp_path: Path) -> None:
    """HTTP/1.1 lines are written at once; an HTTP/2 stream's lines say `h2` and are written
    when the stream ends, in the order their faults acted, with the status its RequestDone
    carries (a plain HTTP/2 request's: none)."""
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path)
    call = ("c", "POST", "/demo.Items/Get", "", "", "r1")
    plain = ("p", "GET", "/items", "", "", "r1")
    bus.emit(FaultInjected(1.0, "h", "GET", "/x", "", "", "r1", "error", "status=503"))
    bus.emit(FaultInjected(2.0, *call, "latency", "delay", protocol="h2"))
    bus.emit(FaultInjected(2.5, *plain, "latency", "delay", protocol="h2"))
    bus.emit(FaultInjected(3.0, *call, "grpc_abort", "x", protocol="h2", grpc_status=14))
    assert [e["request_id"] for e in lines(path)] == ["h"]
    bus.emit(done("p", None))
    bus.emit(done("c", 4))  # the status the client read wins over the fault's own
    j.close()
    got = [
        (e["request_id"], e["fault"], e.get("protocol"), e.get("grpc_status")) for e in lines(path)
    ]
    assert got == [
        ("h", "error", None, None),
        ("p", "latency", "h2", None),
        ("c", "latency", "h2", "DEADLINE_EXCEEDED"),
        ("c", "grpc_abort", "h2", "DEADLINE_EXCEEDED"),
    ]


def test_streams_waiting_are_bounded_and_written_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_HELD open streams the oldest one's lines go out as they are; `close` writes
    the lines of streams that never ended."""
    monkeypatch.setattr(journal_module, "MAX_HELD", 2)
    path = tmp_path / "journal.jsonl"
    bus, j = journal_bus(path)
    for rid in ("s1", "s2", "s3"):
        bus.emit(FaultInjected(1.0, rid, "POST", "/a.B/C", "", "", "r", "hang", "x", protocol="h2"))
    assert [e["request_id"] for e in lines(path)] == ["s1"]
    bus.emit(done("s3", 14))
    j.close()
    got = [(e["request_id"], e.get("grpc_status")) for e in lines(path)]
    assert got == [("s1", None), ("s3", "UNAVAILABLE"), ("s2", None)]


def done(request_id: str, grpc_status: int | None) -> RequestDone:
    return RequestDone(
        4.0,
        "POST",
        200,
        0.1,
        None,
        None,
        True,
        protocol="h2",
        grpc_status=grpc_status,
        request_id=request_id,
    )
