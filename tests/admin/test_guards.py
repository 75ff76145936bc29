"""Hostile callers of the admin API: web pages (cross-site requests, DNS rebinding), bodies too
large or nested too deep, names and regexes that would cost the proxy dearly. Each gets a clear
JSON error with a request id, nothing reaches the log as a traceback, and the proxy keeps
serving."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaosproxy.runtime import Runtime
from tests.admin.conftest import call


async def raw(
    rt: Runtime, method: str, path: str, headers: dict[str, str], data: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, rt.admin_url + path, headers=headers, data=data) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_a_cross_site_post_is_refused(admin: Runtime) -> None:
    body = '{"fault": {"error": {"status": 500}}}'
    status, err = await raw(
        admin,
        "POST",
        "/rules",
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        body,
    )
    assert status == 403 and "cross-origin" in err["error"]["details"]
    assert admin.engine.adhoc_rules() == []


async def test_a_post_from_the_admin_apis_own_origin_is_fine(admin: Runtime) -> None:
    origin = admin.admin_url
    status, _ = await raw(admin, "POST", "/scenarios/stop", {"Origin": origin})
    assert status == 200


async def test_dns_rebinding_host_is_refused_without_a_token(admin: Runtime) -> None:
    status, err = await raw(admin, "GET", "/status", {"Host": f"evil.example:{admin.admin_port}"})
    assert status == 403 and "DNS rebinding" in err["error"]["details"]
    assert err["error"]["requestId"]


async def test_with_a_token_any_host_name_reaches_the_api(
    demo_upstream: str, start_proxy: Any, scenario_dir: Path
) -> None:
    rt = await start_proxy(demo_upstream, scenario_dir=str(scenario_dir), admin_token="t")
    headers = {"Host": f"sidecar.svc:{rt.admin_port}", "Authorization": "Bearer t"}
    status, _ = await raw(rt, "GET", "/status", headers)
    assert status == 200


async def test_deeply_nested_json_is_a_400_not_a_traceback(
    admin: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    deep = "[" * 100_000 + "]" * 100_000
    status, body = await call(admin, "POST", "/rules", raw=deep.encode())
    assert status == 400 and body["error"]["details"][0]["problem"] == "JSON nested too deeply"
    assert not [r for r in caplog.records if r.exc_info]
    assert (await call(admin, "GET", "/healthz"))[0] == 200


async def test_a_body_over_a_mebibyte_is_413(admin: Runtime) -> None:
    status, body = await call(admin, "POST", "/rules", raw=b" " * (1024 * 1024 + 1))
    assert status == 413 and body["error"]["requestId"]


async def test_an_over_long_rule_name_is_refused(admin: Runtime) -> None:
    rule = {"name": "x" * 100_000, "fault": {"error": {"status": 500}}}
    status, body = await call(admin, "POST", "/rules", rule)
    assert status == 400 and "at most 128 characters" in body["error"]["details"][0]["problem"]


@pytest.mark.parametrize("pattern", ["^/(a+)+$", "(x*)*", "^/api/(\\w+\\s?)*$"])
async def test_a_regex_that_can_take_exponential_time_is_refused(
    admin: Runtime, pattern: str
) -> None:
    rule = {"match": {"path_regex": pattern}, "fault": {"error": {"status": 500}}}
    status, body = await call(admin, "POST", "/rules", rule)
    assert status == 400 and "exponential time" in body["error"]["details"][0]["problem"]


@pytest.mark.parametrize("pattern", ["^/api/v[0-9]+/items/(\\d+)$", "^/(users|teams)/[^/]+$"])
async def test_ordinary_regexes_are_accepted(admin: Runtime, pattern: str) -> None:
    rule = {"match": {"path_regex": pattern}, "fault": {"error": {"status": 500}}, "ttl": "1m"}
    assert (await call(admin, "POST", "/rules", rule))[0] == 201
