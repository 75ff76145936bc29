"""`chaosproxy run` as a user runs it: the real CLI in a subprocess, ports found from its log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

StartUpstream = Callable[[web.Application], Awaitable[str]]

READY = re.compile(r"proxying (\S+) -> \S+ \(admin (\S+)\)")


@dataclass
class ProxyProcess:
    proc: asyncio.subprocess.Process
    proxy_url: str
    admin_url: str
    lines: list[str]

    async def rest_of_stderr(self) -> list[str]:
        assert self.proc.stderr is not None
        rest = await self.proc.stderr.read()
        self.lines += rest.decode().splitlines()
        return self.lines


SpawnProxy = Callable[..., Awaitable[ProxyProcess]]


@pytest.fixture
async def spawn_proxy() -> AsyncIterator[SpawnProxy]:
    """Start `python -m chaosproxy run ARGS` and wait (by reading its log) until it listens."""
    procs: list[asyncio.subprocess.Process] = []

    async def spawn(*args: str, env: dict[str, str] | None = None) -> ProxyProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy",
            "run",
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        assert proc.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(20):
            while True:
                raw = await proc.stderr.readline()
                if not raw:
                    raise AssertionError("proxy exited early: " + "\n".join(lines))
                line = raw.decode().rstrip("\n")
                lines.append(line)
                m = READY.search(line)
                if m:
                    return ProxyProcess(proc, m.group(1), m.group(2), lines)

    yield spawn
    for p in procs:
        if p.returncode is None:
            p.kill()
            await p.wait()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaosproxy", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


LOCAL = ("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")


def demo_with_arrival_signal(arrived: asyncio.Event) -> web.Application:
    """The bundled demo service, telling the test when a request has reached it."""
    from chaosproxy.demo.service import make_app

    @web.middleware
    async def signal_arrival(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrived.set()
        return await handler(request)

    app = make_app()
    app.middlewares.append(signal_arrival)
    return app


async def refused(url: str) -> bool:
    host, port = url.split("//")[1].rsplit(":", 1)
    try:
        _, w = await asyncio.open_connection(host, int(port))
    except ConnectionError:  # refused, or reset by a listener closing mid-handshake
        return True
    w.close()
    return False


# ---------------------------------------------------------------- shutdown


async def test_sigterm_lets_the_in_flight_request_finish_then_exits_0(
    start_upstream: StartUpstream, spawn_proxy: SpawnProxy
) -> None:
    arrived = asyncio.Event()
    up = await start_upstream(demo_with_arrival_signal(arrived))
    p = await spawn_proxy("--upstream", up, *LOCAL, "--grace", "10s")
    async with aiohttp.ClientSession() as s:
        inflight = asyncio.ensure_future(s.get(p.proxy_url + "/api/slow?delay=1"))
        await asyncio.wait_for(arrived.wait(), 10)
        p.proc.send_signal(signal.SIGTERM)
        r = await asyncio.wait_for(inflight, 10)
        body = await r.json()
    assert (r.status, body) == (200, {"slept": 1.0})
    assert await asyncio.wait_for(p.proc.wait(), 10) == 0


async def test_new_connections_are_refused_after_sigterm(
    start_upstream: StartUpstream, spawn_proxy: SpawnProxy
) -> None:
    arrived = asyncio.Event()
    up = await start_upstream(demo_with_arrival_signal(arrived))
    p = await spawn_proxy("--upstream", up, *LOCAL, "--grace", "10s")
    async with aiohttp.ClientSession() as s:
        inflight = asyncio.ensure_future(s.get(p.proxy_url + "/api/slow?delay=2"))
        await asyncio.wait_for(arrived.wait(), 10)
        p.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            while not await refused(p.proxy_url):
                await asyncio.sleep(0.02)
        assert not inflight.done()
        r = await asyncio.wait_for(inflight, 10)
        assert r.status == 200
        r.release()
    assert await asyncio.wait_for(p.proc.wait(), 10) == 0


async def test_sigterm_when_idle_exits_0(demo_upstream: str, spawn_proxy: SpawnProxy) -> None:
    p = await spawn_proxy("--upstream", demo_upstream, *LOCAL)
    p.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(p.proc.wait(), 10) == 0


async def test_sighup_reopens_the_journal_for_outside_rotation(
    demo_upstream: str, spawn_proxy: SpawnProxy, tmp_path: Path
) -> None:
    journal = tmp_path / "faults.jsonl"
    p = await spawn_proxy(
        "--upstream", demo_upstream, *LOCAL, "--journal", str(journal), "--log-format", "json"
    )
    async with aiohttp.ClientSession() as s:
        rule = {"match": {"path": "/api/**"}, "fault": {"error": {"status": 503}}}
        async with s.post(p.admin_url + "/rules", json=rule) as r:
            assert r.status == 201

        async def faulted(rid: str) -> None:
            async with s.get(p.proxy_url + "/api/items", headers={"X-Request-Id": rid}) as r:
                assert r.status == 503

        await faulted("before")
        moved = tmp_path / "faults.jsonl.1"
        journal.rename(moved)  # an outside rotation: rename, then SIGHUP
        p.proc.send_signal(signal.SIGHUP)
        assert p.proc.stderr is not None
        async with asyncio.timeout(10):  # until the proxy says it reopened the file
            while "journal reopened" not in (await p.proc.stderr.readline()).decode():
                pass
        await faulted("after")
    assert [json.loads(x)["request_id"] for x in moved.read_text().splitlines()] == ["before"]
    assert [json.loads(x)["request_id"] for x in journal.read_text().splitlines()] == ["after"]
    p.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(p.proc.wait(), 10) == 0


# ---------------------------------------------------------------- configuration


async def test_upstream_from_environment_alone(demo_upstream: str, spawn_proxy: SpawnProxy) -> None:
    p = await spawn_proxy(
        env={
            "CHAOSPROXY_UPSTREAM": demo_upstream,
            "CHAOSPROXY_LISTEN": "127.0.0.1:0",
            "CHAOSPROXY_ADMIN": "127.0.0.1:0",
        }
    )
    async with aiohttp.ClientSession() as s, s.get(p.proxy_url + "/api/items/3") as r:
        assert (r.status, (await r.json())["id"]) == (200, 3)


async def test_admin_urls_from_the_startup_line_answer_health(
    demo_upstream: str, spawn_proxy: SpawnProxy
) -> None:
    p = await spawn_proxy("--upstream", demo_upstream, *LOCAL)
    async with aiohttp.ClientSession() as s, s.get(p.admin_url + "/healthz") as r:
        assert r.status == 200


def test_help_tells_how_to_find_the_bound_ports() -> None:
    out = run_cli("run", "--help").stdout
    assert "proxying PROXY_URL" in out and "port 0" in out


# ---------------------------------------------------------------- bad input


def test_upstream_that_is_not_a_url_exits_2_with_one_line() -> None:
    r = run_cli("run", "--upstream", "notaurl", *LOCAL)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--upstream" in lines[0] and "notaurl" in lines[0]


def test_listen_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(
            "run",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            f"127.0.0.1:{port}",
            "--admin",
            "127.0.0.1:0",
        )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0]


def test_admin_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(
            "run",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            f"127.0.0.1:{port}",
        )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--journal-max-size", "lots", "expected a size"),
        ("--journal-keep", "0", "expected a number > 0"),
        ("--journal-faults", "error,explode", "unknown fault 'explode'"),
        ("--journal-faults", ",", "unknown fault list (empty)"),
    ],
)
def test_bad_journal_flags_exit_2_naming_the_flag(flag: str, value: str, says: str) -> None:
    r = run_cli("run", "--upstream", "http://127.0.0.1:9", *LOCAL, flag, value)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and says in lines[0]


def test_journal_flags_read_the_environment() -> None:
    env = {"CHAOSPROXY_JOURNAL_FAULTS": "error,nonsense"}
    r = run_cli("run", "--upstream", "http://127.0.0.1:9", *LOCAL, env=env)
    assert r.returncode == 2 and "--journal-faults" in r.stderr and "nonsense" in r.stderr


def test_tls_cert_without_key_exits_2_with_one_line() -> None:
    r = run_cli("run", "--upstream", "http://127.0.0.1:9", *LOCAL, "--tls-cert", "c.pem")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_tls_cert_file_exits_2_with_one_line() -> None:
    r = run_cli(
        "run",
        "--upstream",
        "http://127.0.0.1:9",
        *LOCAL,
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/c.pem" in lines[0]


# ---------------------------------------------------------------- logs


async def test_json_logs_are_one_object_per_line_with_request_id_on_upstream_failure(
    spawn_proxy: SpawnProxy,
) -> None:
    with socket.socket() as s0:
        s0.bind(("127.0.0.1", 0))
        dead = s0.getsockname()[1]
    p = await spawn_proxy("--upstream", f"http://127.0.0.1:{dead}", *LOCAL, "--log-format", "json")
    async with aiohttp.ClientSession() as s, s.get(p.proxy_url + "/x") as r:
        rid = r.headers["X-Request-Id"]
        assert r.status == 502
    p.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(p.proc.wait(), 10)
    records = [json.loads(line) for line in await p.rest_of_stderr() if line.strip()]
    failures = [rec for rec in records if "upstream" in rec["msg"] and rec["level"] == "warning"]
    assert failures and all(rec.get("request_id") == rid for rec in failures)


async def test_access_log_has_one_line_per_request_with_its_id(
    demo_upstream: str, spawn_proxy: SpawnProxy
) -> None:
    p = await spawn_proxy("--upstream", demo_upstream, *LOCAL, "--access-log")
    async with aiohttp.ClientSession() as s, s.get(p.proxy_url + "/api/items") as r:
        rid = r.headers["X-Request-Id"]
    p.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(p.proc.wait(), 10)
    hits = [line for line in await p.rest_of_stderr() if "/api/items" in line]
    assert len(hits) == 1 and rid in hits[0] and " 200 " in hits[0]


async def test_header_timeout_flag_answers_a_slow_head_with_408(
    demo_upstream: str, spawn_proxy: SpawnProxy
) -> None:
    """Slowloris: a client that never finishes its head gets a JSON 408 once --header-timeout
    passed, and the connection is closed (the proxy does not wait forever)."""
    p = await spawn_proxy(
        "--upstream", demo_upstream, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--header-timeout", "500ms",
    )  # fmt: skip
    host, port = p.proxy_url.split("://")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/items HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
    await writer.drain()
    async with asyncio.timeout(30):
        answer = await reader.read()  # until the proxy closes
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b'"requestId"' in body
    assert b"within 0.5s" in body  # the flag's value, not the 30s default, timed it out


async def test_idle_timeout_flag_closes_an_idle_keep_alive_connection(
    demo_upstream: str, spawn_proxy: SpawnProxy
) -> None:
    """A keep-alive client that goes quiet after its answer is disconnected by the proxy once
    --idle-timeout passed (the 75s default is far past the deadline this test waits to)."""
    p = await spawn_proxy(
        "--upstream", demo_upstream, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--idle-timeout", "500ms",
    )  # fmt: skip
    host, port = p.proxy_url.split("://")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/items HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive, then silence
    await writer.drain()
    async with asyncio.timeout(30):
        answer = await reader.read()  # until the proxy closes
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 200") and "connection: close" not in lines
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:")
    )
    assert len(body) == length  # the whole answer came, then the idle connection was closed


def held_upstream(expected: int, all_in: asyncio.Event, release: asyncio.Event) -> web.Application:
    """Every request waits for `release` (/forever never returns by itself); `all_in` is set
    once `expected` requests have arrived."""
    arrived = 0

    async def hold(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived == expected:
            all_in.set()
        if request.path == "/forever":
            await asyncio.Event().wait()
        await release.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", hold)
    return app


async def test_sigterm_under_load_lets_64_busy_connections_finish_then_exits_0(
    start_upstream: StartUpstream, spawn_proxy: SpawnProxy
) -> None:
    all_in, release = asyncio.Event(), asyncio.Event()
    up = await start_upstream(held_upstream(64, all_in, release))
    p = await spawn_proxy("--upstream", up, *LOCAL, "--grace", "30s")
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def one(i: int) -> tuple[int, str]:
            async with s.get(f"{p.proxy_url}/item/{i}") as r:
                return r.status, await r.text()

        requests = [asyncio.ensure_future(one(i)) for i in range(64)]
        await asyncio.wait_for(all_in.wait(), 30)  # every request reached the upstream
        p.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while not await refused(p.proxy_url):  # no new connections once draining
                await asyncio.sleep(0.02)
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*requests), 30)
    assert results == [(200, "done")] * 64
    assert await asyncio.wait_for(p.proc.wait(), 30) == 0


async def test_a_request_longer_than_the_grace_is_cut_and_the_proxy_exits(
    start_upstream: StartUpstream, spawn_proxy: SpawnProxy
) -> None:
    """The grace is an upper bound: the proxy exits while the upstream still works on the
    request (it is cut), instead of waiting for it."""
    all_in = asyncio.Event()
    up = await start_upstream(held_upstream(1, all_in, asyncio.Event()))
    p = await spawn_proxy("--upstream", up, *LOCAL, "--grace", "1s")
    async with aiohttp.ClientSession() as s:
        request = asyncio.ensure_future(s.get(p.proxy_url + "/forever"))
        await asyncio.wait_for(all_in.wait(), 30)
        p.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(p.proc.wait(), 60)
        with pytest.raises((aiohttp.ClientError, ConnectionError)):
            r = await asyncio.wait_for(request, 30)
            await r.read()
    assert code == 0


@pytest.mark.parametrize(
    ("flag", "value"), [("--upstream-max-head", "0"), ("--upstream-max-head", "512")]
)
def test_a_response_head_limit_no_answer_fits_exits_2_naming_the_flag(
    flag: str, value: str
) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaosproxy",
            "run",
            "--upstream",
            "http://127.0.0.1:9",
            flag,
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert flag in r.stderr and "at least 1024" in r.stderr
