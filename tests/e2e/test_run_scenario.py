"""End to end through the real CLI: `chaosproxy run --scenario ...` as a subprocess.

The proxy listens on `--listen 127.0.0.1:0`; the test learns the bound port from the startup
log line (`proxying http://127.0.0.1:PORT -> ...`) on stderr.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
STARTUP = re.compile(r"proxying (http://\S+) -> ")

Run = Callable[..., Awaitable[tuple[str, asyncio.subprocess.Process]]]


@pytest.fixture
async def run_cli() -> AsyncIterator[Run]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> tuple[str, asyncio.subprocess.Process]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--grace",
            "1s",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        assert proc.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(20):
            while True:
                line = (await proc.stderr.readline()).decode()
                if not line:
                    raise AssertionError("proxy exited before listening:\n" + "".join(seen))
                seen.append(line)
                m = STARTUP.search(line)
                if m:
                    return m.group(1), proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def fetch(url: str, agent: str, rid: str) -> int:
    """Status, or 0 when the connection was reset or closed without one."""
    headers = {"User-Agent": agent, "X-Request-Id": rid}
    try:
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, ConnectionError):
        return 0


def journal_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["request_id"] for line in path.read_text().splitlines()}


MOBILE_ONLY = """\
name: mobile-only
seed: 3
phases:
  - name: mobile-broken
    duration: 1h
    rules:
      - match: {user_agent: mobile}
        fault: {error: {status: 503}}
"""


async def test_own_scenario_file_faults_mobile_and_never_desktop(
    demo_upstream: str, run_cli: Run, tmp_path: Path
) -> None:
    scenario = tmp_path / "mobile-only.yaml"
    scenario.write_text(MOBILE_ONLY)
    journal = tmp_path / "journal.jsonl"
    url, _ = await run_cli(
        "--upstream", demo_upstream, "--scenario", str(scenario), "--journal", str(journal)
    )
    mobile = [await fetch(url + "/api/items", ua, f"m{i}") for i, ua in enumerate([IPHONE] * 5)]
    desktop = [await fetch(url + "/api/items", DESKTOP, f"d{i}") for i in range(5)]
    assert mobile == [503] * 5
    assert desktop == [200] * 5
    assert journal_ids(journal) == {f"m{i}" for i in range(5)}


async def test_scenario_name_resolves_in_the_scenario_dir(
    demo_upstream: str, run_cli: Run, tmp_path: Path
) -> None:
    (tmp_path / "mobile-only.yaml").write_text(MOBILE_ONLY)
    url, _ = await run_cli(
        "--upstream", demo_upstream, "--scenario", "mobile-only", "--scenario-dir", str(tmp_path)
    )
    assert await fetch(url + "/api/items", ANDROID, "a") == 503


async def test_a_bad_scenario_file_exits_2_with_located_errors(
    demo_upstream: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MOBILE_ONLY.replace("status: 503", "status: 700"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        "run",
        "--upstream",
        demo_upstream,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--scenario",
        str(bad),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert f"{bad}:8:" in err.decode()
    assert "phases[0].rules[0].fault.error.status: must be ≤ 599" in err.decode()
    assert "Traceback" not in err.decode()


async def test_bundled_mobile_only_failures_affects_mobile_and_never_desktop(
    demo_upstream: str, run_cli: Run, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    url, _ = await run_cli(
        "--upstream",
        demo_upstream,
        "--scenario",
        "mobile-only-failures",
        "--journal",
        str(journal),
    )
    agents = [IPHONE, ANDROID] * 5
    mobile = await asyncio.gather(
        *(fetch(url + "/api/items", ua, f"m{i}") for i, ua in enumerate(agents))
    )
    desktop = await asyncio.gather(
        *(fetch(url + "/api/items", DESKTOP, f"d{i}") for i in range(10))
    )
    assert desktop == [200] * 10
    ids = journal_ids(journal)
    assert ids == {f"m{i}" for i in range(10)}  # every mobile request carried a fault
    assert all(status in (0, 200, 504) for status in mobile)
