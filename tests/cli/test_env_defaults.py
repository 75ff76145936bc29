"""CHAOSPROXY_<FLAG> environment defaults, as the container image relies on them."""

from __future__ import annotations

import pytest

from chaosproxy.cli import build_parser


def test_ctl_admin_from_the_environment_lists_several_sidecars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAOSPROXY_ADMIN", "http://a:8081,http://b:8081")
    args = build_parser().parse_args(["ctl", "status"])
    assert args.admin == ["http://a:8081", "http://b:8081"]


def test_ctl_admin_on_the_command_line_replaces_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sidecar image sets CHAOSPROXY_ADMIN=0.0.0.0:8081 for `run`; `ctl --admin URL` run from
    # that image must call URL only, not the local address as well.
    monkeypatch.setenv("CHAOSPROXY_ADMIN", "0.0.0.0:8081")
    args = build_parser().parse_args(
        ["ctl", "--admin", "http://a:8081", "--admin", "http://b:8081", "status"]
    )
    assert args.admin == ["http://a:8081", "http://b:8081"]


def test_run_and_health_read_the_same_admin_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSPROXY_ADMIN", "0.0.0.0:8081")
    run = build_parser().parse_args(["run", "--upstream", "http://127.0.0.1:9000"])
    health = build_parser().parse_args(["health"])
    assert run.admin == ("0.0.0.0", 8081)
    assert health.admin == "0.0.0.0:8081"
