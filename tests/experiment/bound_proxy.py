"""Pointing a demo system's gateways at a proxy that an `experiment run` subprocess starts on
a port of the kernel's choosing: the runner's `proxy-address.json` says which, once bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from chaosproxy.cli.demo import DemoSystem
from chaosproxy.common.address_file import read


@contextlib.asynccontextmanager
async def gateways_follow(system: DemoSystem, out: Path) -> AsyncIterator[None]:
    """While inside: once `out/proxy-address.json` appears, the gateways call through it."""

    async def follow() -> None:
        where = out / "proxy-address.json"
        while (bound := read(str(where))) is None:
            await asyncio.sleep(0.05)  # polling a file that appears once: no event to wait on
        system.point_at(f"http://{bound.listen}")

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
