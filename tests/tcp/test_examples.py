"""The database failover examples (examples/compose/db-failover.yaml and
examples/kubernetes/databases/), checked against the real CLI, the scenario loader and each
other: every variable is a run flag, CHAOSPROXY_TCP parses, the app's database URLs go through
the proxies it declares, and the scenario's TCP rules name those proxies."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from chaosproxy.config.loader import load_scenario_file, load_scenario_text
from chaosproxy.config.model import Scenario
from chaosproxy.tcp.address import TcpSpec, tcp_specs
from tests.examples.helpers import EXAMPLES, run_env_names

COMPOSE = EXAMPLES / "compose" / "db-failover.yaml"
K8S = EXAMPLES / "kubernetes" / "databases" / "db-failover.yaml"


def tcp_names(scenario: Scenario) -> set[str]:
    rules = [*scenario.rules, *(r for p in scenario.phases for r in p.rules)]
    return {r.match.tcp for r in rules if r.match.tcp is not None}


def through_proxy(url: str, specs: tuple[TcpSpec, ...], host: str) -> str:
    """The name of the proxy a database URL goes through (its host and port are the proxy's)."""
    u = urlsplit(url)
    (spec,) = [s for s in specs if s.listen[1] == u.port]
    assert u.hostname == host
    return spec.name


def test_the_compose_drill() -> None:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    env = services["chaosproxy"]["environment"]
    assert set(env) <= run_env_names(), set(env) - run_env_names()
    specs = tcp_specs(env["CHAOSPROXY_TCP"])
    upstreams = {s.name: s.upstream for s in specs}
    assert upstreams == {"pg": ("postgres", 5432), "redis": ("redis", 6379)}
    app = services["app"]["environment"]
    assert through_proxy(app["DATABASE_URL"], specs, "chaosproxy") == "pg"
    assert through_proxy(app["REDIS_URL"], specs, "chaosproxy") == "redis"
    (volume,) = services["chaosproxy"]["volumes"]
    source, target, _ = volume.split(":")
    scenario = load_scenario_file(COMPOSE.parent / source)
    assert target == f"{env['CHAOSPROXY_SCENARIO_DIR']}/{scenario.name}.yaml"
    assert tcp_names(scenario) == set(upstreams)


def test_the_kubernetes_drill() -> None:
    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert set(env) <= run_env_names(), set(env) - run_env_names()
    specs = tcp_specs(env["CHAOSPROXY_TCP"])
    assert all(s.listen[0] == "127.0.0.1" for s in specs)  # only the pod's own app reaches them
    (app,) = pod["containers"]
    app_env = {e["name"]: e["value"] for e in app["env"]}
    assert through_proxy(app_env["DATABASE_URL"], specs, "127.0.0.1") == "pg"
    assert through_proxy(app_env["REDIS_URL"], specs, "127.0.0.1") == "redis"
    (name,) = config["data"]
    scenario = load_scenario_text(config["data"][name], name)
    assert name == f"{scenario.name}.yaml"
    assert tcp_names(scenario) == {s.name for s in specs}
    # The same drill as the compose example's.
    compose = load_scenario_file(COMPOSE.parent / "db-failover.scenario.yaml")
    assert (scenario.phases, scenario.rules) == (compose.phases, compose.rules)
    secret = yaml.safe_load((EXAMPLES / "kubernetes" / "admin-token-secret.yaml").read_text())
    token = next(e for e in sidecar["env"] if e["name"] == "CHAOSPROXY_ADMIN_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
