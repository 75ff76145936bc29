"""`chaosproxy demo`: two real experiments on the demo system, the same checks PASS with
failover and FAIL without it; `--explore` starts the system and stops by itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chaosproxy.cli.demo import gateway_failover


@pytest.mark.slow
def test_demo_passes_with_failover_and_fails_without(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out, proc.stderr)
    assert re.findall(r"^verdict: (\w+)", out, re.M) == ["PASS", "FAIL"]
    runs = {p.name.rsplit("-", 2)[0]: p for p in tmp_path.iterdir()}
    good = json.loads((runs["demo-failover"] / "results.json").read_text())
    bad = json.loads((runs["demo-no-failover"] / "results.json").read_text())
    assert [c["status"] for c in good["checks"]] == ["PASS", "PASS", "PASS"]
    assert (
        bad["checks"][0]["status"] == "FAIL" and bad["halted"]["check"] == bad["checks"][0]["name"]
    )
    assert "with failover:    PASS" in out and "without failover: FAIL" in out


def test_explore_starts_the_system_and_stops_by_itself() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "demo", "--explore", "--duration", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gateway (failover)" in proc.stdout and "Ctrl-C stops it." in proc.stdout


def test_demo_experiment_failover_is_as_asked_else_as_the_bundled_name_says() -> None:
    assert gateway_failover("demo-no-failover", None) is False
    assert gateway_failover("demo-failover", None) is True
    assert gateway_failover("post-deploy-breakage", None) is True
    assert gateway_failover("demo-no-failover", True) is True
    assert gateway_failover("demo-failover", False) is False
