"""Ad-hoc rules over the admin API: same schema as a scenario rule, optional ttl."""

from __future__ import annotations

import aiohttp

from chaosproxy.process.runtime import Runtime
from tests.admin.conftest import call

RULE = {"name": "teapot", "match": {"path": "/api/items"}, "fault": {"error": {"status": 418}}}


async def get_status(rt: Runtime, path: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + path) as r:
        await r.read()
        return r.status


async def test_added_rule_faults_matching_requests_only(admin: Runtime) -> None:
    status, rule = await call(admin, "POST", "/rules", RULE)
    assert status == 201 and rule["faults"] == ["error"]
    assert await get_status(admin, "/api/items") == 418
    assert await get_status(admin, "/api/items/1") == 200


async def test_first_n_fails_the_first_requests_then_lets_them_pass(admin: Runtime) -> None:
    """The retry-testing pattern: only the first N matching requests fail."""
    status, _ = await call(admin, "POST", "/rules", {**RULE, "first": 2})
    assert status == 201
    seen = [await get_status(admin, "/api/items") for _ in range(4)]
    assert seen == [418, 418, 200, 200]


async def test_every_nth_request_fails(admin: Runtime) -> None:
    await call(admin, "POST", "/rules", {**RULE, "every": 3})
    seen = [await get_status(admin, "/api/items") for _ in range(6)]
    assert seen == [200, 200, 418, 200, 200, 418]


async def test_weighted_outcomes_mix_failures(admin: Runtime) -> None:
    rule = {
        "match": {"path": "/api/items"},
        "outcomes": [
            {"weight": 1, "fault": {"error": {"status": 500}}},
            {"weight": 1, "fault": {"error": {"status": 503}}},
        ],
    }
    status, added = await call(admin, "POST", "/rules", rule)
    assert status == 201 and added["faults"] == ["error", "error"]
    seen = {await get_status(admin, "/api/items") for _ in range(40)}
    assert seen == {500, 503}


async def test_listed_rule_shows_what_was_posted_and_its_counts(admin: Runtime) -> None:
    await call(admin, "POST", "/rules", {**RULE, "first": 1})
    await get_status(admin, "/api/items")
    await get_status(admin, "/api/items")
    _, body = await call(admin, "GET", "/rules")
    [listed] = body["rules"]
    assert listed["rule"] == {**RULE, "first": 1}
    assert (listed["matched"], listed["injected"]) == (2, 1)


async def test_rule_without_ttl_gets_the_default_finite_ttl(admin: Runtime) -> None:
    _, rule = await call(admin, "POST", "/rules", RULE)
    assert 1790 < rule["ttl_remaining"] <= 1800


async def test_rule_ttl_is_honoured(admin: Runtime) -> None:
    _, rule = await call(admin, "POST", "/rules", {**RULE, "ttl": "90s"})
    assert 85 < rule["ttl_remaining"] <= 90


async def test_rules_are_listed(admin: Runtime) -> None:
    _, rule = await call(admin, "POST", "/rules", RULE)
    status, body = await call(admin, "GET", "/rules")
    assert status == 200 and [r["id"] for r in body["rules"]] == [rule["id"]]


async def test_deleted_rule_stops_injecting(admin: Runtime) -> None:
    _, rule = await call(admin, "POST", "/rules", RULE)
    assert (await call(admin, "DELETE", f"/rules/{rule['id']}"))[0] == 200
    assert await get_status(admin, "/api/items") == 200


async def test_deleting_an_unknown_rule_is_404(admin: Runtime) -> None:
    status, body = await call(admin, "DELETE", "/rules/r999")
    assert status == 404 and "r999" in body["error"]["details"]


async def test_delete_all_rules(admin: Runtime) -> None:
    await call(admin, "POST", "/rules", RULE)
    await call(admin, "POST", "/rules", RULE)
    assert await call(admin, "DELETE", "/rules") == (200, {"deleted": 2})
    assert await get_status(admin, "/api/items") == 200


async def test_invalid_fault_parameter_is_400_naming_the_field(admin: Runtime) -> None:
    bad = {"fault": {"error": {"status": 99}}}
    status, body = await call(admin, "POST", "/rules", bad)
    assert status == 400
    assert body["error"]["details"][0]["field"] == "rule.fault.error.status"


async def test_unknown_rule_key_is_400_naming_it(admin: Runtime) -> None:
    status, body = await call(admin, "POST", "/rules", {**RULE, "probabilty": 0.5})
    assert status == 400
    assert body["error"]["details"][0]["field"] == "rule.probabilty"


async def test_bad_ttl_is_400(admin: Runtime) -> None:
    status, body = await call(admin, "POST", "/rules", {**RULE, "ttl": "soon"})
    assert status == 400 and body["error"]["details"][0]["field"] == "ttl"


async def test_ttl_that_is_not_a_finite_number_is_400(admin: Runtime) -> None:
    status, body = await call(admin, "POST", "/rules", raw=b'{"fault": {"error": {}}, "ttl": NaN}')
    assert status == 400 and body["error"]["details"][0]["field"] == "ttl"


async def test_body_that_is_not_json_is_400(admin: Runtime) -> None:
    status, body = await call(admin, "POST", "/rules", raw=b"{nope")
    assert status == 400 and body["error"]["details"][0]["field"] == "body"


async def test_reset_clears_rules(admin: Runtime) -> None:
    await call(admin, "POST", "/rules", RULE)
    assert (await call(admin, "POST", "/reset"))[0] == 200
    assert await get_status(admin, "/api/items") == 200
