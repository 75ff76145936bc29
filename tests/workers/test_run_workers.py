"""`chaosproxy run --workers 2`: both workers serve, one admin API drives and reads them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from prometheus_client.parser import text_string_to_metric_families

from tests.workers.conftest import LOCAL, Spawn, get_json, until_gone

ALL_DOWN = """\
name: all-down
phases:
  - name: down
    duration: 10m
    rules:
      - match: {path: "/api/**"}
        fault: {error: {status: 503}}
"""


async def fresh_connections(url: str, n: int) -> list[tuple[int, str]]:
    """`n` GETs, each on a connection of its own (the kernel picks a worker per connection):
    (status, X-Request-Id) of each."""
    out = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:
        for _ in range(n):
            async with s.get(url) as r:
                await r.read()
                out.append((r.status, r.headers["X-Request-Id"]))
    return out


def prefixes(answers: list[tuple[int, str]]) -> set[str]:
    """Each process numbers its request ids after a random prefix of its own."""
    return {rid.split("-")[0] for _, rid in answers}


async def requests_counted(admin: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(admin + "/metrics") as r:
        text = await r.text()
    return sum(
        sample.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "chaosproxy_requests"
        for sample in fam.samples
    )


async def inflight(admin: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(admin + "/metrics") as r:
        text = await r.text()
    for fam in text_string_to_metric_families(text):
        if fam.name == "chaosproxy_inflight_requests":
            return fam.samples[0].value
    return 0.0


async def events(admin: str) -> list[dict[str, Any]]:
    body = await get_json(admin + "/events")
    found: list[dict[str, Any]] = body["events"]
    return found


# ---------------------------------------------------------------- traffic


async def test_both_workers_serve_and_metrics_count_every_request_once(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    answers = await fresh_connections(p.proxy_url + "/api/items/1", 40)
    assert {status for status, _ in answers} == {200}
    assert len(prefixes(answers)) == 2  # both workers answered
    loop = asyncio.get_running_loop()
    end = loop.time() + 30  # a request is counted just after its last byte is sent
    while await requests_counted(p.admin_url) < 40 and loop.time() < end:
        await asyncio.sleep(0.05)
    assert await requests_counted(p.admin_url) == 40
    per_worker = [await requests_counted(a) for a in p.worker_admins]
    assert all(n > 0 for n in per_worker) and sum(per_worker) == 40


@pytest.mark.slow
async def test_a_scenario_started_through_the_one_admin_faults_in_every_worker_from_one_instant(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    async with aiohttp.ClientSession() as s:
        async with s.put(p.admin_url + "/scenarios/all-down", data=ALL_DOWN) as r:
            assert r.status == 201, await r.text()
        async with s.post(p.admin_url + "/scenarios/all-down/start") as r:
            assert r.status == 201, await r.text()
    starts: list[float] = []
    async with asyncio.timeout(30):  # each worker starts it at the instant it was told, on its
        while len(starts) < 2:  # own timer: on a busy machine one may report a moment later
            starts = []
            for admin in p.worker_admins:
                starts += [e["t"] for e in await events(admin) if e["kind"] == "scenario_started"]
            if len(starts) < 2:
                await asyncio.sleep(0.05)  # polling the workers' event feeds
    assert len(starts) == 2 and starts[0] == starts[1]
    merged = [e["t"] for e in await events(p.admin_url) if e["kind"] == "scenario_started"]
    assert merged == starts[:1]

    answers = await fresh_connections(p.proxy_url + "/api/items/1", 40)
    assert {status for status, _ in answers} == {503}
    assert len(prefixes(answers)) == 2
    injected = []
    for admin in p.worker_admins:
        status = await get_json(admin + "/status")
        injected.append(status["scenario"]["rule_counts"][0]["injected"])
    assert all(n > 0 for n in injected)
    status = await get_json(p.admin_url + "/status")
    assert status["scenario"]["rule_counts"][0]["injected"] == 40
    assert [w["pid"] for w in status["workers"]] == p.worker_pids


@pytest.mark.slow
async def test_per_second_stats_are_every_workers_summed(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    await fresh_connections(p.proxy_url + "/api/items/1", 30)

    async def total(admin: str) -> int:
        body = await get_json(admin + "/stats/timeseries?seconds=60")
        return sum(int(row["requests"]) for row in body["series"])

    loop = asyncio.get_running_loop()
    end = loop.time() + 30  # until the seconds the requests started in are complete
    while await total(p.admin_url) < 30 and loop.time() < end:
        await asyncio.sleep(0.1)
    body = await get_json(p.admin_url + "/stats/timeseries?seconds=60&histograms=1")
    assert body["seconds"] == 60 and len(body["series"]) == 60
    assert sum(row["requests"] for row in body["series"]) == 30
    assert sum(sum(row["hist"].values()) for row in body["series"]) == 30
    per_worker = [await total(a) for a in p.worker_admins]
    assert all(n > 0 for n in per_worker) and sum(per_worker) == 30


# ---------------------------------------------------------------- lifecycle


async def test_sigterm_stops_every_worker_and_exits_0(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    p.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(p.proc.wait(), 60) == 0
    assert await until_gone(p.worker_pids) == []


@pytest.mark.slow
async def test_in_flight_requests_finish_on_sigterm(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--grace", "10s")
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:
        slow = [asyncio.ensure_future(s.get(p.proxy_url + "/api/slow?delay=1")) for _ in range(8)]
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while await inflight(p.admin_url) < 8 and loop.time() < end:
            await asyncio.sleep(0.05)  # until every request is in some worker's hands
        p.proc.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*slow)
        assert [r.status for r in answers] == [200] * 8
        for r in answers:
            r.release()
    assert await asyncio.wait_for(p.proc.wait(), 60) == 0


@pytest.mark.slow
async def test_ctrl_c_lets_in_flight_requests_finish(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    """Ctrl-C signals the terminal's whole process group: each worker must still drain once."""
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--grace", "10s", session=True)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:
        slow = [asyncio.ensure_future(s.get(p.proxy_url + "/api/slow?delay=1")) for _ in range(8)]
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while await inflight(p.admin_url) < 8 and loop.time() < end:
            await asyncio.sleep(0.05)
        os.killpg(p.proc.pid, signal.SIGINT)
        answers = await asyncio.gather(*slow)
        assert [r.status for r in answers] == [200] * 8
        for r in answers:
            r.release()
    assert await asyncio.wait_for(p.proc.wait(), 60) == 0
    assert "killed" not in await p.stderr()


@pytest.mark.slow
async def test_workers_of_a_killed_supervisor_stop_by_themselves(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--grace", "1s")
    p.proc.kill()
    await p.proc.wait()
    assert await until_gone(p.worker_pids) == []


@pytest.mark.slow
async def test_a_worker_that_dies_is_reported_and_the_proxy_exits_1(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    os.kill(p.worker_pids[1], signal.SIGKILL)
    assert await asyncio.wait_for(p.proc.wait(), 60) == 1
    log = await p.stderr()
    assert f"worker 1 (pid {p.worker_pids[1]}) ended on its own (killed by SIGKILL)" in log
    assert await until_gone(p.worker_pids) == []


# ---------------------------------------------------------------- the one admin API


@pytest.mark.slow
async def test_the_token_guards_the_one_admin_and_the_workers_refuse_it(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--admin-token", "s3cret")
    rule = {"match": {"path": "/api/**"}, "fault": {"error": {"status": 503}}}
    auth = {"Authorization": "Bearer s3cret"}
    async with aiohttp.ClientSession() as s:
        async with s.post(p.admin_url + "/rules", json=rule) as r:
            assert r.status == 401
        async with s.post(p.worker_admins[0] + "/rules", json=rule, headers=auth) as r:
            assert r.status == 401  # a worker's admin has a token of its own
        async with s.post(p.admin_url + "/rules", json=rule, headers=auth) as r:
            assert r.status == 201
            assert (await r.json())["id"] == "r1"
    for admin in p.worker_admins:
        assert [r["id"] for r in (await get_json(admin + "/rules"))["rules"]] == ["r1"]


@pytest.mark.slow
async def test_the_boot_scenario_starts_in_every_worker_at_one_instant(
    demo_upstream: str, spawn_workers: Spawn, tmp_path: Path
) -> None:
    scenario = tmp_path / "all-down.yaml"
    scenario.write_text(ALL_DOWN)
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--scenario", str(scenario))
    starts: list[float] = []
    async with asyncio.timeout(30):  # each worker starts it at the instant it was told, on its
        while len(starts) < 2:  # own timer: on a busy machine one may report a moment later
            starts = []
            for admin in p.worker_admins:
                starts += [e["t"] for e in await events(admin) if e["kind"] == "scenario_started"]
            if len(starts) < 2:
                await asyncio.sleep(0.05)  # polling the workers' event feeds
    assert len(starts) == 2 and starts[0] == starts[1]


@pytest.mark.slow
async def test_health_command_asks_the_one_admin(demo_upstream: str, spawn_workers: Spawn) -> None:
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL)
    r = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chaosproxy", "health", "--admin", p.admin_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout.strip()) == (0, "ok")


def test_a_listen_port_in_use_exits_2_naming_listen(demo_upstream: str) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        argv = ["run", "--upstream", demo_upstream, "--listen", f"127.0.0.1:{port}"]
        r = subprocess.run(
            [sys.executable, "-m", "chaosproxy", *argv, "--admin", "127.0.0.1:0", "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"chaosproxy run: error: --listen 127.0.0.1:{port}: cannot listen: Address already in use"
    ]


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_worker_count_out_of_range_exits_2_naming_the_flag(count: str) -> None:
    argv = ["run", "--upstream", "http://127.0.0.1:9", "--workers", count]
    r = subprocess.run(
        [sys.executable, "-m", "chaosproxy", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--workers" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
async def test_each_worker_journals_to_its_own_file(
    demo_upstream: str, spawn_workers: Spawn, tmp_path: Path
) -> None:
    journal = tmp_path / "faults.jsonl"
    p = await spawn_workers("--upstream", demo_upstream, *LOCAL, "--journal", str(journal))
    rule = {"match": {"path": "/api/**"}, "fault": {"error": {"status": 503}}}
    async with aiohttp.ClientSession() as s, s.post(p.admin_url + "/rules", json=rule) as r:
        assert r.status == 201
    answers = await fresh_connections(p.proxy_url + "/api/items/1", 30)
    p.proc.send_signal(signal.SIGTERM)  # a journal line is flushed when written; stop to be sure
    assert await asyncio.wait_for(p.proc.wait(), 60) == 0
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["faults.w0.jsonl", "faults.w1.jsonl"]
    ids = [json.loads(line)["request_id"] for f in files for line in f.read_text().splitlines()]
    assert sorted(ids) == sorted(rid for _, rid in answers)
    assert all(f.read_text() for f in files)


async def raw_get(url: str, host: str) -> tuple[int, str]:
    """GET `url` over a real connection with `Host: host` as written (a browser after DNS
    rebinding sends its page's name)."""
    u = yarl.URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    try:
        writer.write(
            f"GET {u.raw_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), 30)  # a hang guard, not a measure
    finally:
        writer.close()
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_upstream_credentials_stay_secret_and_workers_refuse_foreign_hosts(
    demo_upstream: str, spawn_workers: Spawn
) -> None:
    """An upstream URL with userinfo: used as given, shown as `***@` by `/readyz` (open
    without a token) and in every log line of the supervisor and its workers. A worker's
    private admin, whose reads need no token, answers only requests addressed to a loopback
    name (a DNS-rebound page sends its own)."""
    upstream = demo_upstream.replace("http://", "http://svc-user:hunter2@")
    p = await spawn_workers("--upstream", upstream, *LOCAL)
    async with aiohttp.ClientSession() as s:
        async with s.get(p.proxy_url + "/api/items/1") as r:
            assert r.status == 200  # the upstream is used as given
        async with s.get(p.admin_url + "/readyz") as r:
            ready = await r.text()
    assert r.status == 200 and "hunter2" not in ready and "***@" in ready
    for admin in p.worker_admins:
        port = yarl.URL(admin).port
        assert (await raw_get(admin + "/status", f"127.0.0.1:{port}"))[0] == 200
        status, body = await raw_get(admin + "/status", "rebound.example")
        assert status == 403 and "DNS rebinding" in body
    logged = await p.stderr()
    assert "proxying" in logged and "***@" in logged  # the supervisor's and workers' lines
    assert "hunter2" not in logged and "svc-user" not in logged
