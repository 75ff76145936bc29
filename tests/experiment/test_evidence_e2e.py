"""The evidence of real runs: the reports of a real experiment render in a real Chromium and
agree with results.json; `experiment compare` tells a run with failover from one without; a
check reading a real Prometheus reaches the same verdict as the same check on the proxy view."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.cli.demo import DemoSystem
from chaosproxy.experiment.run_state import RunOptions
from chaosproxy.experiment.runner import run_experiment
from chaosproxy.experiment.spec import load_experiment_text
from tests.experiment.prom_fixture import start_prometheus  # noqa: F401 (fixture)
from tests.experiment.support_chromium import chromium, console_errors
from tests.experiment.support_dom import Dom
from tests.experiment.test_run_e2e import gateway, system  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

# Phases long enough for what each check claims: a `rate(...[5s])` query lags the first 5 s of a
# phase, which the verdict leaves out, and a Prometheus check needs 5 points after that; showing
# an error rate back under 1 % takes about 300 requests (8 s at this load).
SCENARIO = """\
name: outage
phases:
  - {name: steady, duration: 10s}
  - name: outage
    duration: 10s
    rules:
      - match: {path: "/api/**"}
        fault: {error: {status: 500}}
  - {name: after, duration: 8s}
"""

RATIO = (
    '(sum(rate(chaosproxy_requests_total{code=~"5.."}[5s])) or vector(0))'
    " / sum(rate(chaosproxy_requests_total[5s]))"
)

EXPERIMENT = f"""\
name: evidence
scenario: outage.yaml
admin: ADMIN
target: TARGET
load:
  users: 5
  spawn_rate: 5
  wait: 100ms
  settle: 1s
  requests:
    - {{path: /api/items}}
checks:
  - name: clients stay served
    during_phase: outage
    metric: error_rate
    below: 0.05
  - name: recovers
    after_phase: outage
    metric: error_rate
    below: 0.01
    within: 5s
    for: 2s
  - name: faults land (proxy)
    during_phase: outage
    metric: error_rate
    source: proxy
    above: 0.5
  - name: faults land (prometheus)
    during_phase: outage
    source: prometheus
    prometheus: {{url: PROM, query: '{RATIO}'}}
    above: 0.5
  - name: healthy before (proxy)
    during_phase: steady
    metric: error_rate
    source: proxy
    below: 0.05
  - name: healthy before (prometheus)
    during_phase: steady
    source: prometheus
    prometheus: {{url: PROM, query: '{RATIO}'}}
    below: 0.05
"""


async def _run(tmp: Path, name: str, admin: str, target: str, prom: str) -> dict[str, Any]:
    (tmp / "outage.yaml").write_text(SCENARIO)
    text = EXPERIMENT.replace("ADMIN", admin).replace("TARGET", target).replace("PROM", prom)
    exp = load_experiment_text(text, str(tmp / "experiment.yaml"))
    outcome = await run_experiment(exp, RunOptions(out=tmp / name, tty=False))
    assert outcome.results is not None
    return outcome.results


def by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in results["checks"]}


async def test_real_runs_render_compare_and_agree_with_prometheus(
    system: DemoSystem,  # noqa: F811
    tmp_path: Path,
    start_proxy: Any,
    start_prometheus: Any,  # noqa: F811
) -> None:
    rt = await start_proxy(system.primary)
    prom = await start_prometheus([rt.admin_url.removeprefix("http://")])
    with_failover = await gateway(system, rt.proxy_port, failover=True)
    without = await gateway(system, rt.proxy_port, failover=False)

    good = await _run(tmp_path, "good", rt.admin_url, with_failover, prom)
    bad = await _run(tmp_path, "bad", rt.admin_url, without, prom)

    # Prometheus and the proxy's own view judge alike.
    for results in (good, bad):
        checks = by_name(results)
        for what in ("faults land", "healthy before"):
            assert checks[f"{what} (prometheus)"]["status"] == checks[f"{what} (proxy)"]["status"]
            assert checks[f"{what} (prometheus)"]["status"] == "PASS", checks
    assert by_name(good)["clients stay served"]["status"] == "PASS"
    assert by_name(bad)["clients stay served"]["status"] == "FAIL"

    # report.html of a real run: no console errors, every chart holds its series, bands exist.
    report = tmp_path / "bad" / "report.html"
    done = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert done.returncode == 0 and console_errors(done.stderr) == []
    dom = Dom(done.stdout)
    charts = {e.attrs["data-chart"] for e in dom.having("data-chart", "svg")}
    assert {"client-throughput", "client-error-rate", "proxy-error-rate"} <= charts
    for chart in charts:
        series = [e for e in dom.having("data-series", "path") if e.within("data-chart") == chart]
        assert series and all(int(s.attrs["data-points"]) > 0 for s in series), chart
        bands = [e for e in dom.having("data-phase", "g") if e.within("data-chart") == chart]
        assert {b.attrs["data-phase"] for b in bands} >= {"steady", "outage", "after"}
        # the wall clock under the time axis, and an edge where each phase begins
        utc = [e for e in dom.having("data-utc", "text") if e.within("data-chart") == chart]
        assert utc and all(re.fullmatch(r"\d\d:\d\d:\d\d", e.all_text()) for e in utc)
        edges = {e.attrs["data-phase-edge"] for e in dom.having("data-phase-edge")
                 if e.within("data-chart") == chart}  # fmt: skip
        assert {"steady", "outage", "after"} <= edges, chart
    # The engine's events as people read them: UTC and offsets, no raw epochs, no None.
    (events,) = [e for e in dom.elements if e.attrs.get("id") == "events"]
    assert "UTC (+" in events.all_text() and "None" not in events.all_text()
    assert not re.search(r"\d{10}\.\d", events.all_text())
    png = tmp_path / "bad.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2400", report.as_uri())
    assert shot.returncode == 0 and png.stat().st_size > 20_000
    kept = Path(__file__).resolve().parents[2] / "reports" / "screenshots" / "real-run.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, kept)
    print(f"screenshot: {kept}")

    # report.md and junit.xml say what results.json says.
    md = (tmp_path / "bad" / "report.md").read_text()
    suite = ET.parse(tmp_path / "bad" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    for c in bad["checks"]:
        assert c["name"] in md
        failed = cases[c["name"]].find("failure") is not None
        assert failed == (c["status"] == "FAIL")
    assert int(suite.get("failures", "0")) == sum(c["status"] == "FAIL" for c in bad["checks"])

    # compare: the run without failover broke a check that passed with it -> exit 1.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        "experiment",
        "compare",
        str(tmp_path / "good"),
        str(tmp_path / "bad"),
        "--markdown",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1, err.decode()
    assert "clients stay served" in out.decode() and "FAIL" in out.decode()
    json.loads((tmp_path / "good" / "results.json").read_text())
