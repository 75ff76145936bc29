"""report.md: the verdict, the checks and one line per phase, for a pull-request comment.

Plain Markdown, no HTML: text from the results directory is escaped so it can neither break
the table nor inject markup.
"""

from __future__ import annotations

import re
from typing import Any

from chaosproxy.experiment import numbers
from chaosproxy.experiment.report import (
    check_text,
    false_alarm_text,
    fmt,
    instants,
    not_reached,
    run_seed,
)
from chaosproxy.experiment.report.results_dir import ResultsDir, mapping, number

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!~])")


def md(text: Any) -> str:
    """Escape Markdown and HTML specials; newlines become spaces (one table cell, one line)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(run: ResultsDir) -> str:
    r, exp = run.run, run.experiment
    lines = [f"### {fmt.status_label(run.verdict)}: {md(run.name)}", ""]
    facts = [f"run `{md(r.get('id', ''))}`"]
    if exp.get("scenario"):
        facts.append(f"scenario {md(exp['scenario'])}")
    seed = run_seed.seed(run.results)
    if seed != numbers.NO_DATA:
        facts.append(f"seed {md(seed)}")
    facts.append(fmt.duration(run.end - run.start))
    facts.append(instants.utc(r.get("started")))
    lines += [" · ".join(facts), ""]
    if run.results.get("interrupted"):
        lines += ["**Interrupted:** the run stopped before the scenario ended.", ""]
    halted = run.results.get("halted")
    if isinstance(halted, dict):
        lines += [
            f"**Halted** at {md(instants.when(halted.get('at'), run.start))} by check "
            f"'{md(halted.get('check', ''))}'"
            + (f" in phase {md(halted['phase'])}" if halted.get("phase") else "")
            + ".",
            "",
        ]
    reasons = run.results.get("reasons") or []
    lines += [f"- {md(x)}" for x in reasons] + ([""] if reasons else [])
    false_alarm = false_alarm_text.false_alarm_line(run.results)
    if false_alarm is not None:
        text, kind = false_alarm
        lead = "**⚠ False alarms:**" if kind == "warning" else "**False alarms:**"
        lines += [f"{lead} {md(text)}.", ""]
    confidence = check_text.run_confidence(run.results, run.checks)
    if confidence is not None:
        lines += [md(fmt.sentence(fmt.confidence_note(confidence))), ""]
    if run.checks:
        lines += [*_checks_table(run), ""]
    else:
        lines += ["No checks declared.", ""]
    if run.phases:
        lines += ["**Phases**", ""]
        lines += [f"- {phase_line(p)}" for p in run.phases]
        lines.append("")
    lines.append("Full report: report.html in the results directory.")
    return "\n".join(lines) + "\n"


def _checks_table(run: ResultsDir) -> list[str]:
    """One row per check: its value with the interval, and its false-alarm rate when the run
    has them."""
    rates = false_alarm_text.has_false_alarm_rates(run.results, run.checks)
    head = ["status", "check", "window", "value", "bound", "margin", "recovered after"]
    align = ["---", "---", "---", "--:", "--:", "--:", "---"]
    if rates:
        head.append("false alarms")
        align.append("--:")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for c in run.checks:
        status = fmt.status_label(not_reached.status_of(run.results, c))
        if check_text.needs(c) and not not_reached.unreached(run.results, c):
            status += f": {check_text.needs(c)}"
        unreached = not_reached.unreached_note(run.results, c)
        if unreached:
            status += f" ({unreached})"
        cells = [
            md(status),
            md(c.get("name", "")),
            md(f"{c.get('metric', '')} ({c.get('source', '')}), {check_text.window(c)}"),
            md(check_text.check_estimate(c)),
            md(check_text.bound(c)),
            md(check_text.margin(c)[0]),
            md(check_text.recovered(c) or numbers.NO_DATA),
        ]
        if rates:
            rate = false_alarm_text.false_alarm_of(run.results, c)
            cells.append(fmt.value(rate, "ratio") if rate is not None else numbers.NO_DATA)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def phase_line(p: dict[str, Any]) -> str:
    client = mapping(p.get("client"))
    res = mapping(p.get("resilience"))
    length = not_reached.phase_length(p)
    tags = [t for t, on in (("faults", p.get("has_rules")), ("baseline", p.get("baseline"))) if on]
    head = f"**{md(p.get('name', ''))}** ({length}{''.join(', ' + t for t in tags)})"
    parts = [
        f"clients: {_n(client.get('requests'))} requests, "
        f"{_phase_value(client, 'error_rate', 'ratio')} errors, "
        f"p95 {_phase_value(client, 'p95', 'seconds')}"
    ]
    if res.get("note"):  # "absorbed" would mean nothing here: what was measured instead
        parts.append(f"{_n(res.get('injected'))} faults injected; {md(res['note'])}")
    elif number(res.get("injected")):
        parts.append(
            f"{_n(res.get('injected'))} faults injected, {_n(res.get('absorbed'))} absorbed "
            f"({fmt.value(res.get('absorbed_share'), 'ratio')})"
        )
    grpc = fmt.grpc_statuses(p)
    if grpc:  # gRPC calls: the status names, where HTTP requests have their error rate
        parts.append(f"gRPC {md(grpc)}")
    return head + ": " + "; ".join(parts)


def _phase_value(view: dict[str, Any], key: str, unit: str) -> str:
    """A phase summary's value with its interval (escaped: brackets are Markdown)."""
    return md(fmt.estimate(view.get(key), fmt.pair(view.get(f"{key}_interval")), unit))


def _n(v: Any) -> str:
    f = number(v)
    return numbers.NO_DATA if f is None else f"{f:,.0f}"
