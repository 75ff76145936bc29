"""examples/compose: app + chaosproxy + Prometheus + Locust, checked against the real CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.examples.helpers import (
    EXAMPLES,
    admin_get_paths,
    dockerfile_stages,
    image_env,
    port_of,
    run_env_names,
)

COMPOSE = EXAMPLES / "compose"


def services() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    result: dict[str, dict[str, Any]] = doc["services"]
    return result


def mounted(service: dict[str, Any], target: str) -> Path:
    """The host file (relative to the compose file) mounted at `target`."""
    for volume in service.get("volumes", []):
        source, dest, *_ = str(volume).split(":")
        if dest == target:
            return (COMPOSE / source).resolve()
    raise AssertionError(f"nothing mounted at {target}")


def test_the_four_services() -> None:
    assert set(services()) == {"app", "chaosproxy", "prometheus", "locust"}


def test_every_chaosproxy_env_var_is_a_run_flag() -> None:
    env = services()["chaosproxy"]["environment"]
    assert set(env) <= run_env_names(), set(env) - run_env_names()


def test_chaosproxy_proxies_the_app_service() -> None:
    svc = services()
    command = svc["app"]["command"]
    assert command[0] == "demo-service"
    app_port = port_of(command[command.index("--listen") + 1])
    assert svc["chaosproxy"]["environment"]["CHAOSPROXY_UPSTREAM"] == f"http://app:{app_port}"
    assert "app" in svc["chaosproxy"]["depends_on"]


def test_the_admin_listener_demands_a_token() -> None:
    # The image binds the admin API on 0.0.0.0: without a token chaosproxy would refuse to start.
    env = services()["chaosproxy"]["environment"]
    assert re.fullmatch(r"\$\{CHAOSPROXY_ADMIN_TOKEN:\?.+\}", env["CHAOSPROXY_ADMIN_TOKEN"])
    assert "CHAOSPROXY_ADMIN_INSECURE" not in env


def test_proxy_and_admin_ports_are_published_on_loopback() -> None:
    env = image_env()
    published = {p.rsplit(":", 1)[1]: p for p in services()["chaosproxy"]["ports"]}
    for key in ("CHAOSPROXY_LISTEN", "CHAOSPROXY_ADMIN"):
        port = str(port_of(env[key]))
        assert published[port].startswith("127.0.0.1:")


def test_the_scenario_dir_is_mounted() -> None:
    svc = services()["chaosproxy"]
    directory = mounted(svc, svc["environment"]["CHAOSPROXY_SCENARIO_DIR"])
    assert sorted(directory.glob("*.yaml"))


def test_prometheus_scrapes_chaosproxys_admin_metrics() -> None:
    prometheus = services()["prometheus"]
    config = yaml.safe_load(mounted(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "chaosproxy"]
    assert job["metrics_path"] in admin_get_paths()
    [target] = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert target == f"chaosproxy:{port_of(image_env()['CHAOSPROXY_ADMIN'])}"


def test_locust_loads_the_proxy_not_the_app() -> None:
    locust = services()["locust"]
    command = locust["command"]
    host = command[command.index("--host") + 1]
    assert host == f"http://chaosproxy:{port_of(image_env()['CHAOSPROXY_LISTEN'])}"
    locustfile = command[command.index("-f") + 1]
    assert mounted(locust, locustfile).is_file()


def test_build_targets_exist_and_only_the_runner_has_locust() -> None:
    stages = dockerfile_stages()
    for name, svc in services().items():
        if "build" in svc:
            assert svc["build"]["target"] in stages, name
    assert services()["locust"]["build"]["target"] == "runner"
    assert "loadtest" in " ".join(stages["runner"])
    assert services()["chaosproxy"]["build"]["target"] == "sidecar"
    assert "loadtest" not in " ".join(stages["sidecar"])
