"""report.html: one self-contained page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import jinja2

from chaosproxy.experiment import numbers
from chaosproxy.experiment.report import (
    check_text,
    false_alarm_text,
    fmt,
    instants,
    not_reached,
    run_seed,
)
from chaosproxy.experiment.report.chart_kinds import build_charts
from chaosproxy.experiment.report.results_dir import ResultsDir, mapping, number, safe_relative

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("chaosproxy.experiment.report", "templates"),
    autoescape=True,  # every string in a results directory is hostile
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["status_label"] = fmt.status_label
_env.filters["sentence"] = fmt.sentence
# A number and its unit stay on one line ('2.98 %' never breaks before the '%').
_UNIT = re.compile(r"(?<=\d) (?=%|µs\b|ms\b|s\b|min\b|req/s)")
_env.filters["keep_units"] = lambda text: _UNIT.sub("\u00a0", str(text))


def render_html(run: ResultsDir) -> str:
    return _env.get_template("report.html.j2").render(**context(run))


def context(run: ResultsDir) -> dict[str, Any]:
    exp, r = run.experiment, run.run
    start = run.start
    halted = run.results.get("halted")
    if isinstance(halted, dict):
        halted = {
            "check": str(halted.get("check", "")),
            "phase": str(halted.get("phase") or ""),
            "at": instants.when(halted.get("at"), start),
            "value": halted.get("value"),
            "bound": halted.get("bound"),
        }
        check = next((c for c in run.checks if c.get("name") == halted["check"]), {})
        unit = check.get("unit")
        halted["value"] = fmt.value(halted["value"], unit)
        halted["bound"] = fmt.value(halted["bound"], unit)
    else:
        halted = None
    load = mapping(exp.get("load"))
    confidence = check_text.run_confidence(run.results, run.checks)
    return {
        "title": run.name,
        "verdict": run.verdict,
        "confidence": fmt.confidence_note(confidence) if confidence is not None else "",
        "false_alarm": false_alarm_text.false_alarm_line(run.results),
        "per_check_false_alarms": false_alarm_text.has_false_alarm_rates(run.results, run.checks),
        "reasons": [str(x) for x in run.results.get("reasons") or []],
        "interrupted": bool(run.results.get("interrupted")),
        "halted": halted,
        "summary": [
            ("run", str(r.get("id", ""))),
            ("scenario", str(exp.get("scenario", ""))),
            ("started", instants.utc(r.get("started"))),
            ("duration", fmt.duration(run.end - start)),
            ("seed", run_seed.seed(run.results)),
            ("target", str(exp.get("target", ""))),
            _proxy_cell(exp),
            (
                "load",
                ", ".join(f"{k} {v}" for k, v in load.items()) if load else numbers.NO_DATA,
            ),
        ],
        "charts": build_charts(run),
        "checks": [_check_row(run.results, c, confidence) for c in run.checks],
        "phases": [_phase_row(p) for p in run.phases],
        "events": [_event_row(e, start) for e in run.results.get("events") or []],
        "files": _files(run),
        "scenario_text": str(exp.get("scenario_text") or ""),
        "experiment_text": str(exp.get("text") or ""),
        "experiment_file": str(exp.get("file") or ""),
        "command": str(r.get("command") or ""),
        "versions": sorted((str(k), str(v)) for k, v in (r.get("versions") or {}).items()),
    }


def _check_row(
    results: dict[str, Any], c: dict[str, Any], confidence: float | None
) -> dict[str, Any]:
    unit = c.get("unit")
    margin, breached = check_text.margin(c)
    iv = fmt.pair(c.get("interval"))
    own = number(c.get("confidence"))
    other_level = own is not None and confidence is not None and abs(own - confidence) > 1e-9
    rate = false_alarm_text.false_alarm_of(results, c)
    return {
        "name": str(c.get("name", "")),
        "status": not_reached.status_of(results, c),
        "unreached": not_reached.unreached_note(results, c),
        "needs": "" if not_reached.unreached(results, c) else check_text.needs(c),
        "what": f"{c.get('metric', '')} ({c.get('source', '')})",
        "query": str(c.get("query") or ""),
        "window": check_text.window(c),
        "value": fmt.value(c.get("value"), unit),
        "interval": fmt.interval(iv, unit) if number(c.get("value")) is not None else "",
        "level": f"at {fmt.percent(own)}" if other_level else "",
        "bound": check_text.bound(c),
        "margin": margin,
        "breached": breached,
        "recovered": _recovered(c),
        "recovered_interval": _recovered_interval(c),
        "allowed": check_text.allowed(c),
        "false_alarm": fmt.value(rate, "ratio") if rate is not None else numbers.NO_DATA,
        "samples": c.get("samples", numbers.NO_DATA),
        "halt": bool(c.get("halt")),
        "message": str(c.get("message") or ""),
    }


def _recovered(c: dict[str, Any]) -> str:
    """The time to recover alone ('4.3 s'; 'never', a dash, '' as
    `check_text.recovered_estimate`)."""
    got = number(c.get("recovered_after_s"))
    if got is None or not c.get("after_phase"):
        return check_text.recovered_estimate(c)
    return fmt.duration(got)


def _recovered_interval(c: dict[str, Any]) -> str:
    if not c.get("after_phase") or number(c.get("recovered_after_s")) is None:
        return ""
    return fmt.interval(fmt.pair(c.get("recovered_after_interval")), None, fmt.duration)


def _with_interval(view: dict[str, Any], key: str, unit: str) -> dict[str, str]:
    """A phase summary's value and its interval, apart (the table stacks them)."""
    v = view.get(key)
    iv = fmt.pair(view.get(f"{key}_interval")) if number(v) is not None else None
    return {"value": fmt.value(v, unit), "interval": fmt.interval(iv, unit)}


def _phase_row(p: dict[str, Any]) -> dict[str, Any]:
    client = mapping(p.get("client"))
    proxy = mapping(p.get("proxy"))
    res = mapping(p.get("resilience"))
    beh = mapping(p.get("client_behaviour"))
    return {
        "name": str(p.get("name", "")),
        "duration": not_reached.phase_length(p),
        "faults": bool(p.get("has_rules")),
        "baseline": bool(p.get("baseline")),
        "client": {
            "requests": _count(client.get("requests")),
            "failures": _count(client.get("failures")),
            "error_rate": _with_interval(client, "error_rate", "ratio"),
            "throughput": fmt.value(client.get("throughput"), "req/s"),
            "p50": _with_interval(client, "p50", "seconds"),
            "p95": _with_interval(client, "p95", "seconds"),
            "p99": _with_interval(client, "p99", "seconds"),
        },
        "proxy": {
            "requests": _count(proxy.get("requests")),
            "errors": _count(proxy.get("errors")),
            "error_rate": _with_interval(proxy, "error_rate", "ratio"),
            "throughput": fmt.value(proxy.get("throughput"), "req/s"),
            "p50": _with_interval(proxy, "p50", "seconds"),
            "p95": _with_interval(proxy, "p95", "seconds"),
            "p99": _with_interval(proxy, "p99", "seconds"),
            "retry_after": _count(proxy.get("retry_after")),
            "retried_early": _count(proxy.get("retried_early")),
            "retried_after_waiting": _count(proxy.get("retried_after_waiting")),
        },
        "injected": _count(res.get("injected")),
        "absorbed": _count(res.get("absorbed")),
        "client_failures": _count(res.get("client_failures")),
        "absorbed_share": fmt.value(res.get("absorbed_share"), "ratio"),
        "resilience_note": str(res.get("note") or ""),
        "grpc": fmt.grpc_statuses(p),
        "retry_amplification": fmt.value(beh.get("retry_amplification"), "x"),
        "early_retry_share": fmt.value(beh.get("early_retry_share"), "ratio"),
    }


def _event_row(e: Any, start: float) -> dict[str, str]:
    e = e if isinstance(e, dict) else {}
    details = e.get("details")
    return {
        "at": instants.when(e.get("t"), start),
        "kind": str(e.get("kind", "")),
        "phase": str(e.get("phase") or ""),
        "details": instants.details(details, start),
    }


def _count(v: Any) -> str:
    f = number(v)
    return numbers.NO_DATA if f is None else f"{f:,.0f}"


def _files(run: ResultsDir) -> list[dict[str, str]]:
    """Relative links to the run's other files, only those present in the directory."""
    names = ["results.json", "report.md", "junit.xml"]
    files = mapping(run.results.get("files"))
    for v in files.values():
        names.extend(str(x) for x in (v if isinstance(v, list) else [v]))
    out, seen = [], set()
    for name in names:
        safe = safe_relative(name, "")
        if not safe or safe in seen:
            continue
        seen.add(safe)
        # report.md and junit.xml are written next to this page, maybe after it.
        if (run.dir / safe).is_file() or safe in ("report.md", "junit.xml"):
            out.append({"name": safe, "href": quote(safe)})
    return out


def _proxy_cell(exp: dict[str, Any]) -> tuple[str, str]:
    """The proxy the run started, or the sidecars it drove through their admin APIs."""
    if exp.get("proxy"):
        return ("proxy", str(exp["proxy"]))
    admins = [str(a) for a in exp.get("admin") or []]
    if admins:
        return ("sidecars (admin)", ", ".join(admins))
    return ("proxy", numbers.NO_DATA)
