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

from chaosproxy.process.runtime import Runtime
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


async def get_path(rt: Runtime, path: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + path) as r:
        await r.read()
        return r.status


@pytest.mark.parametrize("pattern", ["^/(a+)+$", "^/(a|aa)+$", "^/api/(\\w+\\s?)*$"])
async def test_a_regex_that_backtracks_exponentially_in_python_is_matched_in_linear_time(
    admin: Runtime, pattern: str
) -> None:
    """Patterns the old guard refused (or, `(a|aa)+$`, let through to stall the proxy loop for
    minutes on a 45-character path) are fine on RE2: the adversarial request is answered at
    unfaulted (the demo upstream's 404), and a matching one is faulted."""
    rule = {"match": {"path_regex": pattern}, "fault": {"error": {"status": 500}}, "ttl": "1m"}
    assert (await call(admin, "POST", "/rules", rule))[0] == 201
    almost = "/api/" + "a " * 22 + "!" if "api" in pattern else "/" + "a" * 44 + "!"
    assert await get_path(admin, almost) == 404  # the upstream's own answer: no match
    hit = "/api/" + "a " * 22 if "api" in pattern else "/" + "a" * 44
    assert await get_path(admin, hit) == 500


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("^/(\\w+)/\\1$", "a backreference (\\1) is not supported"),
        ("^/(?P<x>\\w+)/(?P=x)$", "a named backreference ((?P=…) is not supported"),
        ("^/api(?=/v2)", "lookahead ((?=…) is not supported"),
        ("^/api(?!/v2)", "negative lookahead ((?!…) is not supported"),
        ("(?<=/)admin", "lookbehind ((?<=…) is not supported"),
        ("^/a++$", "possessive quantifiers (++) are not supported"),
    ],
)
async def test_a_construct_re2_lacks_is_refused_naming_it(
    admin: Runtime, pattern: str, says: str
) -> None:
    rule = {"match": {"path_regex": pattern}, "fault": {"error": {"status": 500}}}
    status, body = await call(admin, "POST", "/rules", rule)
    assert status == 400, body
    (detail,) = body["error"]["details"]
    assert detail["field"] == "rule.match.path_regex"
    assert detail["problem"].startswith(says), detail
    assert admin.engine.adhoc_rules() == []


@pytest.mark.parametrize("pattern", ["^/api/v[0-9]+/items/(\\d+)$", "^/(users|teams)/[^/]+$"])
async def test_ordinary_regexes_are_accepted(admin: Runtime, pattern: str) -> None:
    rule = {"match": {"path_regex": pattern}, "fault": {"error": {"status": 500}}, "ttl": "1m"}
    assert (await call(admin, "POST", "/rules", rule))[0] == 201


# ---------------------------------------------------------------- memory: rules and uploads


async def test_an_upload_expanding_to_5000_rules_is_refused_naming_the_limit(
    admin: Runtime,
) -> None:
    from tests.config.test_loader import expanding

    status, body = await call(admin, "PUT", "/scenarios/many", raw=expanding(100).encode())
    assert status == 422
    assert body["error"]["details"] == [
        "<upload many>:3:42: phases[20].rules[0]: too many rules: 5000 after includes and "
        "presets, at most 1000 in a scenario"
    ]
    assert admin.uploads == {}


async def test_uploads_hold_at_most_ten_thousand_rules_in_all(admin: Runtime) -> None:
    from chaosproxy.admin.control import MAX_UPLOADED_RULES
    from tests.config.test_loader import expanding

    text = expanding(20)  # 1,000 rules each
    for i in range(MAX_UPLOADED_RULES // 1000):
        status, _ = await call(
            admin, "PUT", f"/scenarios/many{i}", raw=text.replace("many", f"many{i}").encode()
        )
        assert status == 201
    status, body = await call(
        admin, "PUT", "/scenarios/more", raw=text.replace("many", "more").encode()
    )
    assert status == 409
    assert body["error"]["details"] == (
        f"uploaded scenarios may hold {MAX_UPLOADED_RULES} rules in all; 10000 are kept and "
        "this one has 1000: delete an upload first"
    )
    # Replacing an upload counts its old rules out, and deleting one makes room.
    same = text.replace("many", "many0").encode()
    assert (await call(admin, "PUT", "/scenarios/many0", raw=same))[0] == 200
    assert (await call(admin, "DELETE", "/scenarios/many0"))[0] == 200
    assert (await call(admin, "PUT", "/scenarios/more", raw=text.replace("many", "more").encode()))[
        0
    ] == 201


async def test_ad_hoc_rules_past_the_limit_are_409_naming_it(
    admin: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin.engine._adhoc, "limit", 3)  # 1000 by default
    rule = {"match": {"path": "/api/**"}, "fault": {"error": {"status": 503}}, "ttl": "1m"}
    for _ in range(3):
        assert (await call(admin, "POST", "/rules", rule))[0] == 201
    status, body = await call(admin, "POST", "/rules", rule)
    assert status == 409
    assert body["error"]["details"] == (
        "3 ad-hoc rules are active already (the limit); delete some first"
    )
    assert len(admin.engine.adhoc_rules()) == 3
