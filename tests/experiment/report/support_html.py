"""The results directories the report.html tests read: which series each chart draws, an edit
of results.json, and the page as a DOM."""

from __future__ import annotations

import json
from pathlib import Path

from chaosproxy.experiment.report import write_reports
from tests.experiment.support_dom import Dom

CHARTS = {
    "client-throughput": {"client_rps"},
    "client-error-rate": {"client_error_rate"},
    "client-latency": {"client_p50", "client_p95", "client_p99"},
    "proxy-throughput": {"proxy_requests", "proxy_injected"},
    "proxy-error-rate": {"proxy_error_rate"},
    "proxy-latency": {"proxy_p50", "proxy_p95", "proxy_p99"},
}


def edit_results(run_dir: Path, **changes: object) -> None:
    path = run_dir / "results.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def report_dom(run_dir: Path) -> Dom:
    write_reports(run_dir)
    return Dom((run_dir / "report.html").read_text())
