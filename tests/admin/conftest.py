"""Admin API fixtures: a proxy whose scenario directory is a temp dir with one small scenario."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

SCENARIO = """\
name: small
description: one broken phase
phases:
  - name: warmup
    duration: 1s
  - name: broken
    duration: 60s
    rules:
      - name: boom
        match: {path: /api/**}
        fault: {error: {status: 503}}
"""

Call = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    (tmp_path / "small.yaml").write_text(SCENARIO)
    (tmp_path / "broken.yaml").write_text("name: broken\nphases: 3\n")
    return tmp_path


@pytest.fixture
async def admin(demo_upstream: str, start_proxy: StartProxy, scenario_dir: Path) -> Runtime:
    return await start_proxy(demo_upstream, scenario_dir=str(scenario_dir))


async def call(
    rt: Runtime,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {"headers": headers}
    if raw is not None:
        kw["data"] = raw
    elif body is not None:
        kw["json"] = body
    async with aiohttp.ClientSession() as s, s.request(method, rt.admin_url + path, **kw) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()
