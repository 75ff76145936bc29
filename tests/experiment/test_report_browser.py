"""report.html in a real headless Chromium: no console errors, charts in the DOM, a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from chaosproxy.experiment.report import instants, write_reports
from tests.experiment.support_chromium import chromium, console_errors
from tests.experiment.support_dom import Dom
from tests.experiment.support_results import make_run

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run_dir = make_run(tmp_path / "run", failover=False, prometheus=True, borderline=True)
    write_reports(run_dir)
    return run_dir / "report.html"


def test_renders_without_console_errors_with_every_chart_and_band(
    report: Path, tmp_path: Path
) -> None:
    done = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_errors(done.stderr) == []
    dom = Dom(done.stdout)
    charts = {e.attrs["data-chart"]: e for e in dom.having("data-chart", "svg")}
    assert set(charts) == {
        "client-throughput",
        "client-error-rate",
        "client-latency",
        "proxy-throughput",
        "proxy-error-rate",
        "proxy-latency",
        "prometheus-5",
    }
    for chart in charts:
        series = [e for e in dom.having("data-series", "path") if e.within("data-chart") == chart]
        assert series and all(int(s.attrs["data-points"]) > 0 for s in series)
        bands = [e for e in dom.having("data-phase", "g") if e.within("data-chart") == chart]
        assert len(bands) == 4
    statuses = {e.attrs["data-status"] for e in dom.having("data-check", "tr")}
    assert statuses == {"PASS", "FAIL", "INCONCLUSIVE"}
    assert dom.having("data-confidence") and dom.having("data-false-alarm")
    assert len(dom.having("data-whisker", "g")) == 4 * 4  # 4 phases on 4 charts


@pytest.mark.parametrize(("name", "size"), [("desktop", "1280,2400"), ("phone", "390,2400")])
def test_screenshot(report: Path, tmp_path: Path, name: str, size: str) -> None:
    png = tmp_path / f"report-{name}.png"
    done = chromium(tmp_path, f"--screenshot={png}", f"--window-size={size}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_errors(done.stderr) == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOTS / png.name
    shutil.copyfile(png, kept)
    print(f"screenshot: {kept}")


def test_the_console_check_sees_a_page_error(tmp_path: Path) -> None:
    """The detector above is not vacuous: a page that throws is caught by it."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><script>throw new Error('from the page')</script>")
    done = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("from the page" in line for line in console_errors(done.stderr))


def test_prints_to_pdf(report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    done = chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_errors(done.stderr) == []
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = re.findall(rb"/Type\s*/Page[^s]", data)
    assert len(pages) >= 2  # charts, tables and sources over several pages


# ------------------------------------------------ readability, read back from Chromium

MEASURE = """<script>
addEventListener('load', () => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.plot')) {
    const view = svg.viewBox.baseVal, texts = [];
    for (const t of svg.querySelectorAll('text')) {
      const b = t.getBBox();
      texts.push({text: t.textContent, x0: b.x, x1: b.x + b.width, y0: b.y, y1: b.y + b.height});
    }
    out.push({chart: svg.dataset.chart, w: view.width, h: view.height, texts});
  }
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measured_labels(tmp_path: Path, report: Path) -> list[dict[str, Any]]:
    """Every <text> of every chart with the box Chromium laid it out in. The report forbids
    scripts (its CSP), so a copy without that one meta tag carries the measuring script."""
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report.read_text())
    probe = tmp_path / f"measure-{report.parent.name}.html"
    probe.write_text(page.replace("</body>", MEASURE + "</body>"))
    done = chromium(tmp_path, "--window-size=1280,3000", "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    (pre,) = [e for e in Dom(done.stdout).elements if e.attrs.get("id") == "measured"]
    charts: list[dict[str, Any]] = json.loads(pre.all_text())
    return charts


def crowd(run_dir: Path) -> Path:
    """Six more checks on the client error-rate chart: bounds close in value over adjacent
    windows, four times to recover from the same phase end."""
    doc = json.loads((run_dir / "results.json").read_text())
    base = next(c for c in doc["checks"] if c["name"] == "recovers after broken-release")
    during = {"after_phase": None, "within": None, "recovered_after_s": None,
              "recovered_after_interval": None}  # fmt: skip
    for name, more in [
        ("healthy in steady", during | {"during_phase": "steady", "bound": 0.02}),
        ("served in broken-release", during | {"during_phase": "broken-release", "bound": 0.02}),
        ("served in rollback", during | {"during_phase": "rollback", "bound": 0.03}),
        ("recovers fast", {"within": 2.0}),
        ("recovers eventually", {"within": 10.0, "status": "PASS"}),
        ("recovers after the rollback", {"after_phase": "rollback", "within": 5.0,
         "recovered_after_s": 0.0, "recovered_after_interval": [0.0, 0.0], "status": "PASS"}),
    ]:  # fmt: skip
        doc["checks"].append(base | {"name": name} | more)
    (run_dir / "results.json").write_text(json.dumps(doc))
    write_reports(run_dir)
    return run_dir


def halted_early(run_dir: Path) -> Path:
    """The demo's halted run: halted 1.2 s into broken-release, so rollback and recovered never
    ran; the recovery after broken-release then measured only the seconds after the halt."""
    doc = json.loads((run_dir / "results.json").read_text())
    broken = next(p for p in doc["phases"] if p["name"] == "broken-release")
    at = broken["start"] + 1.2
    broken["end"], broken["seconds"] = at, 2
    for p in doc["phases"]:
        if p["name"] in ("rollback", "recovered"):
            p.update(start=0.0, end=0.0, seconds=0)
    doc["run"]["scenario_ended"] = at
    doc["halted"] = {"check": "error rate stays low during broken-release", "at": at - 0.01,
                     "phase": "broken-release", "value": 0.8, "bound": 0.05}  # fmt: skip
    for c in doc["checks"]:
        if c["name"] == "recovers after broken-release":
            c.update(status="PASS", recovered_after_s=0.0, recovered_after_interval=[0.0, 0.0])
    served = next(c for c in doc["checks"] if c.get("during_phase") == "broken-release")
    doc["checks"].append(served | {"name": "served in rollback", "during_phase": "rollback",
                                   "status": "PASS", "halt": False})  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(doc))
    write_reports(run_dir)
    return run_dir


def test_no_chart_label_prints_over_another(tmp_path: Path) -> None:
    runs = [
        crowd(make_run(tmp_path / "crowded", failover=False, prometheus=True, borderline=True)),
        halted_early(make_run(tmp_path / "halted", failover=False)),
    ]
    for run_dir in runs:
        charts = measured_labels(tmp_path, run_dir / "report.html")
        assert len(charts) >= 6
        for chart in charts:
            texts = chart["texts"]
            assert texts, chart["chart"]
            for i, a in enumerate(texts):
                # inside the chart, not clipped by its edges
                assert a["x0"] >= -0.5 and a["x1"] <= chart["w"] + 0.5, (chart["chart"], a)
                assert a["y0"] >= -0.5 and a["y1"] <= chart["h"] + 0.5, (chart["chart"], a)
                for b in texts[i + 1 :]:
                    apart = (
                        a["x1"] <= b["x0"] + 0.5
                        or b["x1"] <= a["x0"] + 0.5
                        or a["y1"] <= b["y0"] + 0.5
                        or b["y1"] <= a["y0"] + 0.5
                    )
                    assert apart, (run_dir.name, chart["chart"], a["text"], b["text"])
        crowded = next(c for c in charts if c["chart"] == "client-error-rate")
        if run_dir.name == "crowded":  # all ten of its labels are there
            labels = [t["text"] for t in crowded["texts"] if ": " in t["text"]]
            assert len(labels) >= 10, labels


def dom_of(tmp_path: Path, report: Path) -> Dom:
    """report.html written from its directory, as Chromium has it once loaded."""
    write_reports(report.parent)
    done = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert done.returncode == 0 and console_errors(done.stderr) == [], done.stderr[-2000:]
    return Dom(done.stdout)


def test_back_to_back_fault_phases_have_a_boundary(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)  # broken-release, then rollback
    dom = dom_of(tmp_path, run_dir / "report.html")
    for svg in dom.having("data-chart", "svg"):
        chart = svg.attrs["data-chart"]
        bands = {e.attrs["data-phase"]: e for e in dom.having("data-phase", "g")
                 if e.within("data-chart") == chart}  # fmt: skip
        edges = {e.attrs["data-phase-edge"]: e for e in dom.having("data-phase-edge", "line")
                 if e.within("data-chart") == chart}  # fmt: skip
        assert {"broken-release", "rollback"} <= set(edges), chart
        (rect,) = [c for c in bands["rollback"].children if c.tag == "rect"]
        assert edges["rollback"].attrs["x1"] == rect.attrs["x"]  # where one ends, one begins


def test_the_time_axis_and_the_phases_read_in_utc(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)
    dom = dom_of(tmp_path, run_dir / "report.html")
    start = json.loads((run_dir / "results.json").read_text())["run"]["started"]
    for svg in dom.having("data-chart", "svg"):
        chart = svg.attrs["data-chart"]
        utc = [e for e in dom.having("data-utc", "text") if e.within("data-chart") == chart]
        assert [e.all_text() for e in utc][:3] == [
            instants.clock(start), instants.clock(start + 5), instants.clock(start + 10)
        ]  # fmt: skip
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d", e.attrs["data-utc"]) for e in utc)
        titles = [t.all_text() for e in dom.having("data-phase", "g")
                  if e.within("data-chart") == chart for t in e.children[0].children]  # fmt: skip
        assert (
            f"steady: {instants.clock(start + 4)} to {instants.clock(start + 10)} UTC, 6 s"
            in titles
        )


def test_events_read_as_times_and_offsets_never_raw_epochs_or_none(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)
    dom = dom_of(tmp_path, run_dir / "report.html")
    (section,) = [e for e in dom.elements if e.attrs.get("id") == "events"]
    text = section.all_text()
    assert "None" not in text and not re.search(r"\d{10}(\.\d+)?", text)
    assert "14:40:04.0 UTC (+4.0 s)" in text  # the scenario started 4 s into the run
    assert "at=14:40:04.0 UTC (+4.0 s)" in text  # an instant in the details, too
    assert "offset=6 s" in text and "duration=23 s" in text  # no 5.999999999999545
    assert "from=steady, to=broken-release" in text and "from=, " not in text


def test_the_seed_shown_is_the_one_the_scenario_ran_with(tmp_path: Path) -> None:
    """No --seed and no `seed:` in the experiment: the scenario's own seed was in force."""
    run_dir = make_run(tmp_path / "run", seed=42)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["run"]["seed"] = None
    (run_dir / "results.json").write_text(json.dumps(doc))
    write_reports(run_dir)
    dom = dom_of(tmp_path, run_dir / "report.html")
    summary = {dt.all_text(): dd.all_text() for dt, dd in _pairs(dom)}
    assert summary["seed"] == "42 (the scenario's)"
    assert "seed 42 (the scenario's)" in (run_dir / "report.md").read_text()
    junit = (run_dir / "junit.xml").read_text()
    assert '<property name="seed" value="42" />' in junit
    assert '<property name="seed_source" value="scenario" />' in junit


def _pairs(dom: Dom) -> list[tuple[Any, Any]]:
    out = []
    for div in dom.elements:
        kids = [c for c in div.children if c.tag in ("dt", "dd")]
        if div.tag == "div" and len(kids) == 2:
            out.append((kids[0], kids[1]))
    return out


def test_a_late_recovery_has_a_negative_margin(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", failover=False)  # recovered in 4.7 s, allowed 4 s
    dom = dom_of(tmp_path, run_dir / "report.html")
    row = next(e for e in dom.having("data-check", "tr")
               if e.attrs["data-check"] == "recovers after broken-release")  # fmt: skip
    (margin,) = [e for e in dom.having("data-field") if e.attrs["data-field"] == "margin"
                 and e.within("data-check") == row.attrs["data-check"]]  # fmt: skip
    assert margin.all_text().strip() == "-0.7 s ✖" and "breached" in margin.attrs["class"]
    assert "| -0.7 s |" in (run_dir / "report.md").read_text()


def test_after_a_halt_checks_on_phases_that_never_ran_are_not_green(tmp_path: Path) -> None:
    run_dir = halted_early(make_run(tmp_path / "run", failover=False))
    dom = dom_of(tmp_path, run_dir / "report.html")
    rows = {e.attrs["data-check"]: e for e in dom.having("data-check", "tr")}
    for name in ("recovers after broken-release", "served in rollback"):
        row = rows[name]
        assert row.attrs["data-status"] == "NOT REACHED", name
        (badge,) = [e for e in row.children[0].children if "status" in e.attrs.get("class", "")]
        assert "status-pass" not in badge.attrs["class"] and "✔" not in badge.all_text()
    assert rows["p95 stays under 250 ms"].attrs["data-status"] == "PASS"  # judged before it
    # Nothing of them is drawn as evidence either: no bound, no time to recover.
    drawn = {e.attrs["data-check"] for e in dom.having("data-bound")}
    assert "recovers after broken-release" not in drawn and not dom.having("data-recovery")
    skipped = [c for c in ET.parse(run_dir / "junit.xml").getroot().iter("testcase")
               if c.find("skipped") is not None]  # fmt: skip
    assert {c.get("name") for c in skipped} >= {"recovers after broken-release"}
    md = (run_dir / "report.md").read_text()
    assert "⊘ NOT REACHED (judged PASS, but the halt cut broken-release short" in md
