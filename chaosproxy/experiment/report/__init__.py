"""Reports of an experiment run: report.html, report.md and junit.xml from a results directory,
and `compare` between two runs. Pure functions of the directory's files; no network."""

from __future__ import annotations

import os
from pathlib import Path

from chaosproxy.experiment.report.html import render_html
from chaosproxy.experiment.report.junit import render_junit
from chaosproxy.experiment.report.markdown import render_markdown
from chaosproxy.experiment.report.results_dir import load_run

__all__ = ["write_reports"]

_RENDERERS = (
    ("report.html", render_html),
    ("report.md", render_markdown),
    ("junit.xml", render_junit),
)


def write_reports(run_dir: Path) -> list[Path]:
    """(Re)write report.html, report.md and junit.xml in `run_dir`; returns their paths.

    Each file is written to a temporary name and renamed, so a reader never sees half a report.
    """
    run = load_run(Path(run_dir))
    written = []
    for name, render in _RENDERERS:
        path = run.dir / name
        tmp = path.with_name(f".{name}.tmp")
        # a lone surrogate (from a results.json written by hand) must not lose the report
        tmp.write_text(render(run), encoding="utf-8", errors="backslashreplace")
        os.replace(tmp, path)
        written.append(path)
    return written
