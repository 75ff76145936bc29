"""A Toxiproxy client's own test suite passes against chaosproxy, as it does against Toxiproxy.

The suite is toxiproxy-python's (vendored unchanged in peer/, README there says from where; the
client itself is the `toxiproxy-python` package of the `dev` extra). It expects its server at
127.0.0.1:8474 and opens fixed ports, so each run happens in a network namespace of its own
(`unshare --net`, as root or with user namespaces): nothing else on the machine can hold those
ports, and the suite cannot disturb anything else running. Both servers go through the very
same suite; the counts are compared with JUnit's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "peer_run.py"
EXPECTED_TESTS = 25  # toxiproxy-python at the vendored commit: 2 + 23 tests


def _namespace_or_skip() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("`unshare` (util-linux) is missing: the suite needs a network namespace")
    probe = subprocess.run(
        ["unshare", "--net", "--map-root-user", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no network namespace here ({probe.stderr.strip()[:200]})")
    try:
        import toxiproxy  # noqa: F401 - the client the suite drives
    except ImportError:
        pytest.skip("toxiproxy-python is not installed (pip install -e '.[dev]')")
    return ["unshare", "--net", "--map-root-user"]


def run_suite(kind: str, binary: str, out: Path) -> dict[str, list[str]]:
    """Run the suite against `kind`; the test ids by outcome (passed, failed, skipped)."""
    junit = out / f"{kind}.xml"
    done = subprocess.run(
        [*_namespace_or_skip(), sys.executable, str(RUNNER), kind, binary, str(junit)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not junit.exists():
        server_log = junit.with_suffix(".server.log")
        log = server_log.read_text(errors="replace")[-3000:] if server_log.exists() else ""
        pytest.fail(f"the suite did not run:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{log}")
    outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"].append(name)
        elif case.find("skipped") is not None:
            outcomes["skipped"].append(name)
        else:
            outcomes["passed"].append(name)
    print(f"{kind}: " + ", ".join(f"{len(v)} {k}" for k, v in outcomes.items()))
    assert outcomes["failed"] == [], f"{kind}:\n{done.stdout[-6000:]}"
    return outcomes


def test_the_peer_suite_passes_against_the_real_toxiproxy(
    toxiproxy_binary: Path, tmp_path: Path
) -> None:
    """What 'pass' looks like: every test of the suite, against Toxiproxy 2.12.0 itself."""
    outcomes = run_suite("toxiproxy", str(toxiproxy_binary), tmp_path)
    assert len(outcomes["passed"]) == EXPECTED_TESTS


def test_the_peer_suite_passes_against_chaosproxy(tmp_path: Path) -> None:
    outcomes = run_suite("chaosproxy", "-", tmp_path)
    assert outcomes["skipped"] == []
    assert len(outcomes["passed"]) == EXPECTED_TESTS
