"""A real Prometheus server for tests (Debian's `prometheus`), scraping given targets every 1 s.

Import the fixture explicitly: `from tests.experiment.prom_fixture import start_prometheus`.
Each server gets a free loopback port and a fresh TSDB directory under tmp_path (a reused one
reports stale `up`); it is ready when /api/v1/targets shows every target up. Stopped with
SIGTERM after the test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from chaosproxy.experiment.processes import free_port

StartPrometheus = Callable[[list[str]], Awaitable[str]]
READY_WITHIN = 60.0  # seconds; the first scrape lands ~6 s after start on this kind of machine


async def poll_until(what: str, deadline: float, probe: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a real Prometheus server's state (it offers no event to wait on): poll, and
    give up with a clear message at `deadline` (a bound on waiting, not a speed check)."""
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus: {what} not seen before the deadline")
        await asyncio.sleep(0.1)


@pytest.fixture
async def start_prometheus(tmp_path: Path) -> AsyncIterator[StartPrometheus]:
    """start(["127.0.0.1:PORT", ...]) → the server's base URL, once every target is up."""
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("prometheus is not installed (make tools, or ci/debian-tools.sh prometheus)")
    procs: list[subprocess.Popen[bytes]] = []

    async def start(targets: list[str]) -> str:
        n = len(procs)
        config = tmp_path / f"prometheus-{n}.yml"
        listed = ", ".join(f'"{t}"' for t in targets)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: chaosproxy\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: [{listed}]\n"
        )
        port = free_port()
        log = (tmp_path / f"prometheus-{n}.log").open("wb")
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / f'tsdb-{n}'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_WITHIN
        async with aiohttp.ClientSession() as s:

            async def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"prometheus exited with {proc.returncode}; see {log.name}"
                    )
                try:
                    async with s.get(f"{url}/-/ready") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            async def targets_up() -> bool:
                async with s.get(f"{url}/api/v1/targets") as r:
                    active = (await r.json())["data"]["activeTargets"]
                return len(active) == len(targets) and all(t["health"] == "up" for t in active)

            await poll_until("/-/ready", deadline, ready)
            await poll_until("every target up in /api/v1/targets", deadline, targets_up)
        return url

    yield start
    for proc in procs:
        proc.terminate()  # SIGTERM: Prometheus shuts down cleanly in milliseconds
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
