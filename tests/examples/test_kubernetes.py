"""examples/kubernetes: chaosproxy as a native sidecar, checked against the real CLI and API."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chaosproxy.config.loader import load_scenario_text
from tests.examples.helpers import (
    EXAMPLES,
    admin_get_paths,
    env_list,
    image_env,
    port_of,
    run_env_names,
)

K8S = EXAMPLES / "kubernetes"


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def sidecar() -> dict[str, Any]:
    init: list[dict[str, Any]] = pod_spec().get("initContainers", [])
    found = [c for c in init if c["name"] == "chaosproxy"]
    assert len(found) == 1, "chaosproxy must be an init container"
    return found[0]


def named_port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"{container['name']} has no port named {name!r}: {ports}"
    return int(ports[name])


def test_every_document_has_a_kind_and_a_name() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "Secret"}
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]


def test_chaosproxy_is_a_native_sidecar_in_front_of_the_app() -> None:
    proxy = sidecar()
    assert proxy["restartPolicy"] == "Always"  # what makes an init container a sidecar
    apps = pod_spec()["containers"]
    assert [c["name"] for c in apps] == ["app"]
    args = apps[0]["args"]
    app_port = port_of(args[args.index("--listen") + 1])
    upstream = env_list(proxy)["CHAOSPROXY_UPSTREAM"]["value"]
    assert upstream == f"http://127.0.0.1:{app_port}"


def test_every_sidecar_env_var_is_a_run_flag() -> None:
    names = set(env_list(sidecar()))
    assert names  # the test must see something
    assert names <= run_env_names(), names - run_env_names()


def test_container_ports_are_the_ones_the_image_listens_on() -> None:
    env = image_env()
    proxy = sidecar()
    assert named_port(proxy, "proxy") == port_of(env["CHAOSPROXY_LISTEN"])
    assert named_port(proxy, "admin") == port_of(env["CHAOSPROXY_ADMIN"])
    assert not {"CHAOSPROXY_LISTEN", "CHAOSPROXY_ADMIN"} & set(env_list(proxy))


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")],
)
def test_probes_call_admin_routes_on_the_admin_port(probe: str, path: str) -> None:
    proxy = sidecar()
    get = proxy[probe]["httpGet"]
    assert get["path"] == path
    assert get["path"] in admin_get_paths()
    assert get["port"] == "admin"


def test_the_admin_token_comes_from_the_secret() -> None:
    ref = env_list(sidecar())["CHAOSPROXY_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = one("Secret", ref["name"])
    assert ref["key"] in secret.get("stringData", {}) | secret.get("data", {})


def test_the_scenario_dir_is_the_configmap_volume() -> None:
    proxy = sidecar()
    scenario_dir = env_list(proxy)["CHAOSPROXY_SCENARIO_DIR"]["value"]
    mounts = {m["mountPath"]: m for m in proxy["volumeMounts"]}
    assert mounts[scenario_dir].get("readOnly") is True
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    config_map = volumes[mounts[scenario_dir]["name"]]["configMap"]["name"]
    assert one("ConfigMap", config_map)["data"]


def test_every_configmap_scenario_loads_under_its_file_name() -> None:
    data = one("ConfigMap", "chaosproxy-scenarios")["data"]
    for filename, text in data.items():
        scenario = load_scenario_text(text, source=filename)  # raises ConfigError if invalid
        assert filename == f"{scenario.name}.yaml"  # `ctl start NAME` resolves NAME.yaml


def test_the_service_sends_clients_through_the_proxy() -> None:
    service = one("Service", "shop")
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["proxy"]


def test_a_headless_service_lists_every_replicas_admin_port() -> None:
    service = one("Service", "shop-chaosproxy-admin")
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert spec["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in spec["ports"]] == ["admin"]


def test_prometheus_scrapes_the_admin_metrics() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == named_port(sidecar(), "admin")
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in admin_get_paths()


def test_kubernetes_waits_longer_than_the_proxys_grace_before_killing_it() -> None:
    from chaosproxy.cli.common import duration

    grace = duration(env_list(sidecar())["CHAOSPROXY_GRACE"]["value"])
    assert pod_spec()["terminationGracePeriodSeconds"] > grace


def test_the_sidecar_runs_as_the_images_non_root_user() -> None:
    security = sidecar()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
