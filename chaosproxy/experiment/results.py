"""What a run leaves behind: results.json (schema in docs/experiments.md), timeseries.csv, and the
checks table printed at the end."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaosproxy.experiment.annotations import phase_annotations
from chaosproxy.experiment.model import Experiment, describe_experiment
from chaosproxy.experiment.outcome import PASS, Verdict, unit_of
from chaosproxy.experiment.series import Second
from chaosproxy.observe.stats import BOUNDS

SCHEMA_VERSION = 1
CSV_COLUMNS = (
    "t",
    "elapsed",
    "phase",
    "users",
    "client_requests",
    "client_failures",
    "client_error_rate",
    "client_rps",
    "client_p50",
    "client_p95",
    "client_p99",
    "proxy_requests",
    "proxy_errors",
    "proxy_error_rate",
    "proxy_injected",
    "proxy_p50",
    "proxy_p95",
    "proxy_p99",
    "proxy_retry_after",
    "proxy_retried_early",
    "proxy_retried_after_waiting",
)


def results_document(
    exp: Experiment,
    scenario_text: str,
    verdict: Verdict,
    run: dict[str, Any],
    events: Sequence[dict[str, Any]],
    *,
    interrupted: bool,
    halted: dict[str, Any] | None,
    proxy_url: str | None,
    admins: Sequence[str],
    files: dict[str, Any],
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
    prometheus_lag: dict[str, float] | None = None,
) -> dict[str, Any]:
    experiment = describe_experiment(exp)
    experiment.update(
        {
            "text": exp.text,
            "scenario_text": scenario_text,
            "target": run.get("target"),
            "proxy": proxy_url,
            "admin": list(admins),
        }
    )
    annotations = phase_annotations(
        (p for p in verdict.phases if p["seconds"]), exp.scenario, run.get("id")
    )
    phases = [p | {"baseline": p["name"] == verdict.baseline} for p in verdict.phases]
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict.status,
        "reasons": verdict.reasons,
        "interrupted": interrupted,
        "problems": list(problems),  # the run did not go as planned (integrity.py)
        "halted": halted,
        "experiment": experiment,
        "run": run,
        "baseline_phase": verdict.baseline,
        "notes": list(notes),
        "latency_buckets": list(BOUNDS),
        "confidence": verdict.confidence,
        "false_alarm": verdict.false_alarm,
        "prometheus_lag": dict(prometheus_lag or {}),
        "phases": phases,
        "checks": [c.to_json() for c in verdict.checks],
        "annotations": annotations,
        "events": list(events),
        "files": files,
    }


def rejudged_document(doc: dict[str, Any], exp: Experiment, verdict: Verdict) -> dict[str, Any]:
    """A saved run's results document with a new verdict (`experiment judge`)."""
    out = dict(doc)
    experiment = dict(out.get("experiment") or {})
    experiment["text"] = exp.text
    experiment["file"] = exp.source
    out.update(
        {
            "verdict": verdict.status,
            "reasons": verdict.reasons,
            "experiment": experiment,
            "baseline_phase": verdict.baseline,
            "confidence": verdict.confidence,
            "false_alarm": verdict.false_alarm,
            "phases": [p | {"baseline": p["name"] == verdict.baseline} for p in verdict.phases],
            "checks": [c.to_json() for c in verdict.checks],
            "rejudged": True,
        }
    )
    return out


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate read from outside: JSON escapes it, UTF-8 can't
        data = (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _cell(x: float | int | None, digits: int = 6) -> str:
    if x is None:
        return ""
    if isinstance(x, int):
        return str(x)
    return f"{round(x, digits):g}"


def write_timeseries(
    path: Path, rows: Sequence[Second], started: float, prom_checks: Sequence[tuple[int, str]]
) -> None:
    """One row per second; `prom_<n>` columns for checks reading Prometheus (n = check index);
    with a control group, each view's counts per cohort last (`cohort_columns`)."""
    split = cohort_columns(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*CSV_COLUMNS, *(f"prom_{i}" for i, _ in prom_checks), *split])
        for s in rows:
            c, p = s.client, s.proxy
            w.writerow(
                [
                    s.t,
                    _cell(s.t - started, 3),
                    s.phase,
                    _cell(s.users),
                    c.requests,
                    c.failures,
                    _cell(c.error_rate),
                    c.requests,
                    _cell(c.quantile(0.50)),
                    _cell(c.quantile(0.95)),
                    _cell(c.quantile(0.99)),
                    p.requests,
                    p.failures,
                    _cell(p.error_rate),
                    p.injected,
                    _cell(p.quantile(0.50)),
                    _cell(p.quantile(0.95)),
                    _cell(p.quantile(0.99)),
                    p.retry_after,
                    p.retried_early,
                    p.retried_waited,
                    *(_cell(s.prom.get(name)) for _, name in prom_checks),
                    *_cohort_cells(s, split),
                ]
            )


COHORT_FIELDS = ("requests", "failures", "error_rate", "p50", "p95", "p99")


def cohort_columns(rows: Sequence[Second]) -> list[str]:
    """`client_error_rate_fault`, `proxy_p95_control`, ... for each view that has a cohort split
    in any of these seconds (proxy: also `proxy_injected_<cohort>`)."""
    out: list[str] = []
    for view in ("client", "proxy"):
        names = sorted(
            {n for s in rows for n in (s.client_cohorts if view == "client" else s.proxy_cohorts)}
        )
        extra = ("injected",) if view == "proxy" else ()
        out += [f"{view}_{k}_{n}" for n in names for k in (*COHORT_FIELDS, *extra)]
    return out


def _cohort_cells(s: Second, columns: Sequence[str]) -> list[str]:
    cells = []
    for col in columns:
        view, rest = col.split("_", 1)
        key, name = rest.rsplit("_", 1)
        v = s.cohort(view, name)
        if v is None:
            cells.append("")
        elif key in ("p50", "p95", "p99"):
            cells.append(_cell(v.quantile(int(key[1:]) / 100)))
        elif key == "error_rate":
            cells.append(_cell(v.error_rate))
        else:
            cells.append(str(getattr(v, key)))
    return cells


def checks_table(verdict: Verdict, halted: dict[str, Any] | None = None) -> str:
    """The final table: one line per check (value and interval, as the reports write them),
    then the verdict and why, the confidence of the intervals and the false-alarm estimate.
    After a halt, a PASS on a window the halt left empty reads NOT REACHED (as in the
    reports): it is no evidence."""
    from chaosproxy.experiment import numbers

    # imported here: report.results_dir imports this module
    from chaosproxy.experiment.report import check_text, false_alarm_text, fmt, not_reached

    run = {"halted": halted, "phases": verdict.phases}
    unreached: list[str] = []

    fa = verdict.false_alarm if isinstance(verdict.false_alarm, dict) else None
    rates = fa.get("checks") if fa is not None and isinstance(fa.get("checks"), dict) else {}
    header = ["check", "status", "value", "bound", "recovered after"]
    rows = [header + (["false alarms"] if rates else [])]
    for r in verdict.checks:
        s = r.spec
        unit = unit_of(s)
        doc = {
            "status": r.status,
            "comparison": s.comparison,
            "bound": s.bound,
            "unit": unit,
            "after_phase": s.after_phase,
            "within": s.within,
            "recovered_after_s": r.recovered_after_s,
            "recovered_after_interval": [r.recovered_lo, r.recovered_hi]
            if (r.recovered_lo, r.recovered_hi) != (None, None)
            else None,
            "needs_more_requests": r.needs,
            "during_phase": s.during_phase,
            "compare_to": s.compare_to,
        }
        status = r.status + (" (halted)" if r.halted else "")
        why = not_reached.unreached_note(run, doc)
        if why:  # no more requests would decide it either: its window never came
            status = not_reached.UNREACHED
            unreached.append(f"  - {s.name!r} {why}")
        elif check_text.needs(doc):
            status += f", {check_text.needs(doc)}"
        iv = (r.lo, r.hi) if r.value is not None and (r.lo, r.hi) != (None, None) else None
        row = [
            s.name,
            status,
            fmt.estimate(r.value, iv, unit),
            check_text.bound(doc),
            check_text.recovered(doc),
        ]
        if rates:
            rate = rates.get(s.name)
            row.append(fmt.value(rate, "ratio") if rate is not None else numbers.NO_DATA)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    grpc = [(p.get("name"), fmt.grpc_statuses(p)) for p in verdict.phases]
    if any(text for _, text in grpc):  # gRPC calls: how they ended, by status name
        lines.extend(f"gRPC calls in {name}: {text}" for name, text in grpc if text)
        lines.append("")
    lines.append(f"verdict: {verdict.status}")
    if verdict.status != PASS:
        lines.extend(f"  - {reason}" for reason in verdict.reasons)
    if unreached:
        lines.append(f"{not_reached.UNREACHED}: no evidence either way")
        lines.extend(unreached)
    lines.append(fmt.confidence_note(verdict.confidence))
    line = false_alarm_text.false_alarm_line({"false_alarm": fa}) if fa is not None else None
    if line is not None:
        text, kind = line
        lines.append(("WARNING, false alarms: " if kind == "warning" else "false alarms: ") + text)
    return terminal_safe("\n".join(lines))


def terminal_safe(text: str) -> str:
    """Control and format characters (escape codes, bidi overrides) and lone surrogates shown
    as escapes, so nothing read from outside drives the terminal; newlines and tabs stay."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
