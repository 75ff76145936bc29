"""report.md: the verdict, the checks and one line per phase, for a pull-request comment.

Plain Markdown, no HTML: text from the results directory is escaped so it can neither break
the table nor inject markup.
"""

from __future__ import annotations

import re
from typing import Any

from chaosproxy.experiment.report import fmt
from chaosproxy.experiment.report.load import Run, mapping, number

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!~])")


def md(text: Any) -> str:
    """Escape Markdown and HTML specials; newlines become spaces (one table cell, one line)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(run: Run) -> str:
    r, exp = run.run, run.experiment
    lines = [f"### {fmt.status_label(run.verdict)}: {md(run.name)}", ""]
    facts = [f"run `{md(r.get('id', ''))}`"]
    if exp.get("scenario"):
        facts.append(f"scenario {md(exp['scenario'])}")
    if r.get("seed") is not None:
        facts.append(f"seed {md(r['seed'])}")
    facts.append(fmt.duration(run.end - run.start))
    facts.append(fmt.utc(r.get("started")))
    lines += [" · ".join(facts), ""]
    if run.results.get("interrupted"):
        lines += ["**Interrupted:** the run stopped before the scenario ended.", ""]
    halted = run.results.get("halted")
    if isinstance(halted, dict):
        lines += [
            f"**Halted** at {fmt.elapsed(halted.get('at'), run.start)} by check "
            f"'{md(halted.get('check', ''))}'"
            + (f" in phase {md(halted['phase'])}" if halted.get("phase") else "")
            + ".",
            "",
        ]
    reasons = run.results.get("reasons") or []
    lines += [f"- {md(x)}" for x in reasons] + ([""] if reasons else [])
    checks = run.checks
    if checks:
        lines += [
            "| status | check | window | value | bound | margin | recovered after |",
            "|---|---|---|--:|--:|--:|---|",
        ]
        for c in checks:
            unit = c.get("unit")
            lines.append(
                "| "
                + " | ".join(
                    [
                        fmt.status_label(str(c.get("status", "INCONCLUSIVE"))),
                        md(c.get("name", "")),
                        md(f"{c.get('metric', '')} ({c.get('source', '')}), {fmt.window(c)}"),
                        md(fmt.value(c.get("value"), unit)),
                        md(fmt.bound(c)),
                        md(fmt.value(c.get("margin"), unit)),
                        md(fmt.recovered(c) or fmt.NO_DATA),
                    ]
                )
                + " |"
            )
        lines.append("")
    else:
        lines += ["No checks declared.", ""]
    if run.phases:
        lines += ["**Phases**", ""]
        lines += [f"- {phase_line(p)}" for p in run.phases]
        lines.append("")
    lines.append("Full report: report.html in the results directory.")
    return "\n".join(lines) + "\n"


def phase_line(p: dict[str, Any]) -> str:
    client = mapping(p.get("client"))
    res = mapping(p.get("resilience"))
    start, end = number(p.get("start")), number(p.get("end"))
    length = fmt.duration(end - start) if start is not None and end is not None else fmt.NO_DATA
    tags = [t for t, on in (("faults", p.get("has_rules")), ("baseline", p.get("baseline"))) if on]
    head = f"**{md(p.get('name', ''))}** ({length}{''.join(', ' + t for t in tags)})"
    parts = [
        f"clients: {_n(client.get('requests'))} requests, "
        f"{fmt.value(client.get('error_rate'), 'ratio')} errors, "
        f"p95 {fmt.value(client.get('p95'), 'seconds')}"
    ]
    if number(res.get("injected")):
        parts.append(
            f"{_n(res.get('injected'))} faults injected, {_n(res.get('absorbed'))} absorbed "
            f"({fmt.value(res.get('absorbed_share'), 'ratio')})"
        )
    return head + ": " + "; ".join(parts)


def _n(v: Any) -> str:
    f = number(v)
    return fmt.NO_DATA if f is None else f"{f:,.0f}"
