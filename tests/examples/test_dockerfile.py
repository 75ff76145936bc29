"""The Dockerfile's sidecar stage: configured by real run flags, non-root, checked by `health`."""

from __future__ import annotations

import json

from tests.examples.helpers import dockerfile_stages, image_env, port_of, run_env_names


def instruction(stage: str, keyword: str) -> list[str]:
    return [line for line in dockerfile_stages()[stage] if line.split()[0] == keyword]


def test_the_sidecar_is_the_default_target() -> None:
    assert list(dockerfile_stages())[-1] == "sidecar"


def test_every_chaosproxy_env_default_is_a_run_flag() -> None:
    names = {k for k in image_env() if k.startswith("CHAOSPROXY_")}
    assert {"CHAOSPROXY_LISTEN", "CHAOSPROXY_ADMIN"} <= names
    assert names <= run_env_names(), names - run_env_names()


def test_exposed_ports_are_the_listeners() -> None:
    env = image_env()
    [expose] = instruction("sidecar", "EXPOSE")
    ports = {int(p) for p in expose.split()[1:]}
    assert ports == {port_of(env["CHAOSPROXY_LISTEN"]), port_of(env["CHAOSPROXY_ADMIN"])}


def test_runs_as_a_numeric_non_root_user() -> None:
    [user] = instruction("sidecar", "USER")
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_entrypoint_runs_the_proxy_and_the_healthcheck_asks_it() -> None:
    [entrypoint] = instruction("sidecar", "ENTRYPOINT")
    [cmd] = instruction("sidecar", "CMD")
    assert json.loads(entrypoint.split(None, 1)[1]) == ["chaosproxy"]
    assert json.loads(cmd.split(None, 1)[1]) == ["run"]
    [healthcheck] = instruction("sidecar", "HEALTHCHECK")
    assert json.loads(healthcheck.split(" CMD ", 1)[1])[:2] == ["chaosproxy", "health"]
