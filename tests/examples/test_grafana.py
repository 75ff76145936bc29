"""examples/grafana/chaosproxy.json: loadable JSON whose every metric a real proxy exposes."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

from tests.conftest import StartProxy
from tests.examples.helpers import EXAMPLES

DASHBOARD = EXAMPLES / "grafana" / "chaosproxy.json"
METRIC = re.compile(r"\bchaosproxy_[a-z0-9_]+")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def exprs(node: Any) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets, variables, annotations."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        if isinstance(node.get("query"), dict):
            found += exprs(node["query"])
        if isinstance(node.get("query"), str) and "label_values" in node["query"]:
            found.append(node["query"])
        for key, value in node.items():
            if key not in ("expr", "query"):
                found += exprs(value)
        return found
    if isinstance(node, list):
        return [e for item in node for e in exprs(item)]
    return []


def exposed_names(text: str) -> set[str]:
    """Sample names and declared families (# TYPE) of a Prometheus text exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_the_dashboard_is_grafana_json_with_unique_panels() -> None:
    d = dashboard()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int)
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys()
        assert p["targets"], p["title"]
        for target in p["targets"]:
            assert METRIC.search(target["expr"]), (p["title"], target["expr"])
    variables = {v["name"] for v in d["templating"]["list"]}
    for p in panels:
        assert p["datasource"]["uid"].strip("${}") in variables


async def test_every_metric_on_the_dashboard_is_in_a_real_proxys_exposition(
    start_proxy: StartProxy, demo_upstream: str
) -> None:
    rt = await start_proxy(demo_upstream)
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(f"{rt.proxy_url}/api/items") as r:
                assert r.status == 200
        async with s.post(f"{rt.admin_url}/scenarios/post-deploy-breakage/start") as r:
            assert r.status == 201
        rule = {"fault": {"error": {"status": 500}}, "ttl": "1m"}
        async with s.post(f"{rt.admin_url}/rules", json=rule) as r:
            assert r.status == 201
        async with s.get(f"{rt.proxy_url}/api/items") as r:
            assert r.status == 500
        async with s.get(f"{rt.admin_url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    exposed = exposed_names(text)
    # What this test made happen is there as samples, not just declared.
    assert re.search(r'^chaosproxy_requests_total\{.*code="500".*\} 1\.0$', text, re.M)
    assert re.search(r'^chaosproxy_faults_injected_total\{.*fault="error".*\} 1\.0$', text, re.M)
    assert re.search(
        r'^chaosproxy_scenario_active\{.*scenario="post-deploy-breakage".*\} 1', text, re.M
    )
    used = {m for e in exprs(dashboard()) for m in METRIC.findall(e)}
    assert len(used) >= 10
    assert used <= exposed, sorted(used - exposed)
