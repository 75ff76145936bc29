"""`--toxiproxy-api`: opt-in, loopback unless --admin-insecure, one process only."""

from __future__ import annotations

import subprocess

import pytest
import yarl

from chaosproxy.common.errors import UsageError
from chaosproxy.process.runtime import Settings, check_admin_exposure
from tests.toxiproxy.peer_run import chaosproxy_command


def settings(**given: object) -> Settings:
    return Settings(upstream=yarl.URL("http://127.0.0.1:9"), **given)  # type: ignore[arg-type]


def test_off_by_default_and_loopback_is_fine() -> None:
    assert settings().toxiproxy_api is None
    check_admin_exposure(settings(toxiproxy_api=("127.0.0.1", 8474)))
    check_admin_exposure(settings(toxiproxy_api=("0.0.0.0", 8474), admin_insecure=True))


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"toxiproxy_api": ("0.0.0.0", 8474)}, "no authentication"),
        ({"toxiproxy_api": ("127.0.0.1", 8474), "workers": 2}, "one proxy process"),
    ],
)
def test_refused_before_anything_listens(given: dict[str, object], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        check_admin_exposure(settings(**given))


def test_the_cli_refuses_an_exposed_api_with_one_line_and_exit_2() -> None:
    done = subprocess.run(
        chaosproxy_command("0.0.0.0:0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--admin-insecure" in lines[0], done.stderr
