"""`chaosproxy run --workers N` as a user runs it: the real CLI, its workers, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

READY = re.compile(r"proxying (\S+) -> \S+ \(admin (\S+)\)")
LOCAL = ("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")


@dataclass
class Supervised:
    proc: asyncio.subprocess.Process
    proxy_url: str
    admin_url: str
    lines: list[str]
    worker_pids: list[int] = field(default_factory=list)
    worker_admins: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    async def stderr(self) -> str:
        """Everything logged so far (all of it once the process has ended)."""
        if self.proc.returncode is not None and self._reader is not None:
            await self._reader
        return "\n".join(self.lines)


Spawn = Callable[..., Awaitable[Supervised]]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def until_gone(pids: list[int], deadline: float = 30.0) -> list[int]:
    """Poll until no pid runs (generous deadline: a guard against hanging, not a measure)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while any(alive(p) for p in pids) and loop.time() < end:
        await asyncio.sleep(0.05)
    return [p for p in pids if alive(p)]


async def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


@pytest.fixture
async def spawn_workers() -> AsyncIterator[Spawn]:
    """Start `python -m chaosproxy run ARGS --workers N`, wait for its one ready line, and learn
    its workers from `/status`. Everything still running at the end is killed."""
    started: list[Supervised] = []

    async def spawn(
        *args: str, workers: int = 2, env: dict[str, str] | None = None, session: bool = False
    ) -> Supervised:
        """`session`: a process group of its own, for a test to signal as a terminal would."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy",
            "run",
            *args,
            "--workers",
            str(workers),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=session,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(60):
            while True:
                raw = await proc.stderr.readline()
                if not raw:
                    raise AssertionError("exited early:\n" + "\n".join(lines))
                lines.append(raw.decode().rstrip("\n"))
                m = READY.search(lines[-1])
                if m:
                    break
        p = Supervised(proc, m.group(1), m.group(2), lines)
        started.append(p)

        async def drain() -> None:  # the workers keep logging: never let the pipe fill
            assert proc.stderr is not None
            async for raw in proc.stderr:
                lines.append(raw.decode().rstrip("\n"))

        p._reader = asyncio.ensure_future(drain())
        token = args[args.index("--admin-token") + 1] if "--admin-token" in args else None
        status = await get_json(p.admin_url + "/status", token)  # reads need it too
        p.worker_pids = [w["pid"] for w in status["workers"]]
        p.worker_admins = [w["admin"] for w in status["workers"]]
        return p

    yield spawn
    for p in started:
        if p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()
        for pid in p.worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if p._reader is not None:
            p._reader.cancel()
