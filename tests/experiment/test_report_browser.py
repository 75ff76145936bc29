"""report.html in a real headless Chromium: no console errors, charts in the DOM, a screenshot."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from chaosproxy.experiment.report import write_reports
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
