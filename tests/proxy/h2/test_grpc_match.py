"""The `grpc:` matcher: service and method globs on a gRPC call's path, gRPC content only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.dump import match_to_data
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.config.model import GrpcMatch, MatchSpec
from chaosproxy.engine.matching import compile_match


@dataclass
class View:
    path: str
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/grpc"})
    method: str = "POST"
    query_string: str = ""
    client_ip: str = "127.0.0.1"


@pytest.mark.parametrize(
    ("service", "method", "path", "ok"),
    [
        ("pkg.Users", "Get", "/pkg.Users/Get", True),
        ("pkg.Users", None, "/pkg.Users/List", True),
        (None, "Get", "/other.Svc/Get", True),
        ("pkg.*", "Get", "/pkg.Users/Get", True),
        ("pkg.Users", "Get", "/pkg.Users/Put", False),
        ("pkg.Users", "Get", "/pkg.Users/Get/extra", False),
        ("pkg.Users", None, "/pkg.Users", False),
    ],
)
def test_service_and_method(service: str | None, method: str | None, path: str, ok: bool) -> None:
    check = compile_match(MatchSpec(grpc=GrpcMatch(service, method)))
    assert check is not None
    assert check(View(path)) is ok


def test_only_grpc_content_types() -> None:
    check = compile_match(MatchSpec(grpc=GrpcMatch("pkg.Users", None)))
    assert check is not None
    assert check(View("/pkg.Users/Get", {"Content-Type": "application/grpc+proto"}))
    assert not check(View("/pkg.Users/Get", {"Content-Type": "application/json"}))
    assert not check(View("/pkg.Users/Get", {}))


def scenario(match: str) -> str:
    return f"""
name: s
phases:
  - name: p
    duration: 1m
    rules:
      - match: {match}
        fault: {{grpc_abort: {{}}}}
"""


def test_loaded_from_yaml_and_dumped_back() -> None:
    sc = load_scenario_text(scenario("{grpc: {service: pkg.Users, method: Get}}"))
    m = sc.phases[0].rules[0].match
    assert m.grpc == GrpcMatch("pkg.Users", "Get")
    assert match_to_data(m) == {"grpc": {"service": "pkg.Users", "method": "Get"}}


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ("{grpc: {}}", "give service, method, or both"),
        ("{grpc: {service: a/b}}", "has no '/'"),
        ("{grpc: {servce: x}}", "servce"),
    ],
)
def test_bad_grpc_match_is_located(match: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario_text(scenario(match))
    text = str(err.value)
    assert message in text
    assert "grpc" in text
