"""A factory of realistic synthetic results directories (the runner's output contract).

A run: warmup, then a scenario of four phases (steady baseline, broken-release injecting 500s
on most requests, rollback with fading faults, recovered), then cooldown. Per-second rows are
generated first; phase aggregates and check outcomes are computed from those rows, so a
directory is consistent the way a real run's is. `failover=True` models clients that retry on
another replica (errors absorbed, all checks PASS); `failover=False` lets clients see the
errors (two checks FAIL).

Every judged number carries its interval as the judge writes it (`interval`, `confidence`,
`needs_more_requests`, `recovered_after_interval`, the phases' `*_interval`s) and the document
its false-alarm estimate; `intervals=False` writes a document from before intervals existed,
which reports must still render.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosproxy.experiment.inference import needed_for_proportion, quantile_ranks, wilson
from chaosproxy.experiment.numbers import fmt, fmt_interval
from chaosproxy.experiment.results import CSV_COLUMNS
from chaosproxy.observe.stats import BOUNDS

T0 = 1764600000.0
CONFIDENCE = 0.95
# Keys results.json gained with intervals; an older document has none of them.
INTERVAL_KEYS = ("interval", "confidence", "needs_more_requests", "recovered_after_interval")
PHASE_INTERVAL_KEYS = ("error_rate_interval", "p50_interval", "p95_interval", "p99_interval")
COLUMNS = list(CSV_COLUMNS)
SCENARIO_TEXT = """name: post-deploy-breakage
phases:
  - name: steady
    duration: {steady}s
  - name: broken-release
    duration: {broken}s
    rules:
      - match: {{path: "/api/**"}}
        fault: {{error: {{status: 500}}}}
  - name: rollback
    duration: {rollback}s
    rules:
      - match: {{path: "/api/**"}}
        probability: {{from: 0.3, to: 0.0}}
        fault: {{error: {{status: 503}}}}
  - name: recovered
    duration: {recovered}s
"""


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: int
    fault_share: tuple[float, float]  # share of requests faulted at phase start, at phase end
    baseline: bool = False


def make_run(
    root: Path,
    *,
    failover: bool = True,
    scale: int = 1,
    name: str = "checkout-survives-bad-deploy",
    run_id: str = "9f2c1a7b",
    prometheus: bool = False,
    prometheus_data: bool = True,
    halted: bool = False,
    interrupted: bool = False,
    seed: int = 7,
    intervals: bool = True,
    false_alarm: float | None = 0.01,
    borderline: bool = False,
) -> Path:
    """Write a results directory under `root` (created) and return it.

    `scale` multiplies every phase length: scale=20 gives a 10-minute run (600 rows).
    `false_alarm` is the estimated rate of false FAILs (None: written as null, not estimated);
    above 5 % it is flagged. `borderline` appends a check whose interval straddles its bound:
    INCONCLUSIVE, with the requests that would decide it. `intervals=False` drops every key
    the judge gained with intervals (an older run)."""
    rng = random.Random(seed)
    warmup, cooldown = 4 * scale, 3 * scale
    phases = [
        Phase("steady", 6 * scale, (0.0, 0.0), baseline=True),
        Phase("broken-release", 8 * scale, (0.8, 0.8)),
        Phase("rollback", 6 * scale, (0.3, 0.0)),
        Phase("recovered", 3 * scale, (0.0, 0.0)),
    ]
    total = warmup + sum(p.seconds for p in phases) + cooldown
    spans: list[dict[str, Any]] = []
    t = T0 + warmup
    for p in phases:
        spans.append({"phase": p, "start": t, "end": t + p.seconds})
        t += p.seconds
    scenario_started, scenario_ended = T0 + warmup, t
    rows: list[dict[str, Any]] = []
    for i in range(total):
        sec = int(T0) + i
        span = next((s for s in spans if s["start"] <= sec < s["end"]), None)
        label = span["phase"].name if span else ("warmup" if sec < scenario_started else "cooldown")
        share = 0.0
        if span:
            p = span["phase"]
            frac = (sec - span["start"]) / max(p.seconds - 1, 1)
            share = p.fault_share[0] + (p.fault_share[1] - p.fault_share[0]) * frac
        users = min(50, 10 * (i + 1))
        client_requests = round(users * 3.3 * rng.uniform(0.95, 1.05))
        injected = round(client_requests * share)
        if failover:
            # The client retries a failed call on another path: the proxy sees the retries.
            retries = injected
            client_failures = round(injected * 0.04)
        else:
            retries = 0
            client_failures = injected + (1 if rng.random() < 0.1 else 0)
        proxy_requests = client_requests + retries
        slow = 1.0 + (3.0 if failover and injected else 0.0)
        proxy_p50 = 0.002 if share < 0.5 else 0.0006
        row = {
            "t": sec,
            "elapsed": i,
            "phase": label,
            "users": users,
            "client_requests": client_requests,
            "client_failures": client_failures,
            "client_error_rate": round(client_failures / client_requests, 6),
            "client_rps": client_requests,
            "client_p50": round(0.004 * slow * rng.uniform(0.9, 1.1), 6),
            "client_p95": round(0.009 * slow * rng.uniform(0.9, 1.2), 6),
            "client_p99": round(0.02 * slow * rng.uniform(0.9, 1.4), 6),
            "proxy_requests": proxy_requests,
            "proxy_errors": injected,
            "proxy_error_rate": round(injected / proxy_requests, 6),
            "proxy_injected": injected,
            "proxy_p50": proxy_p50,
            "proxy_p95": 0.004,
            "proxy_p99": 0.008,
            "proxy_retry_after": 0,
            "proxy_retried_early": 0,
            "proxy_retried_after_waiting": 0,
        }
        if i == 1:  # a second without requests: percentiles have no data
            row.update(
                client_requests=0,
                client_failures=0,
                client_error_rate=0.0,
                client_rps=0,
                client_p50=None,
                client_p95=None,
                client_p99=None,
                proxy_requests=0,
                proxy_errors=0,
                proxy_error_rate=0.0,
                proxy_p50=None,
                proxy_p95=None,
                proxy_p99=None,
            )
        rows.append(row)

    phase_docs = [_phase_doc(s, rows) for s in spans]
    checks = _checks(rows, spans, phase_docs, scale, failover)
    if prometheus:
        checks.append(
            {
                "name": "prometheus error ratio stays low in steady",
                "status": "PASS" if prometheus_data else "INCONCLUSIVE",
                "metric": "value",  # a Prometheus check judges what its query returns
                "source": "prometheus",
                "query": '(sum(rate(chaosproxy_requests_total{code=~"5..|0"}[5s])) or vector(0))'
                " / sum(rate(chaosproxy_requests_total[5s]))",
                "during_phase": "steady",
                "after_phase": None,
                "compare_to": None,
                "comparison": "below",
                "value": 0.0 if prometheus_data else None,
                "bound": 0.01,
                "margin": 0.01 if prometheus_data else None,
                "unit": "value",
                "recovered_after_s": None,
                "within": None,
                "for": None,
                "interval": [0.0, 0.0004] if prometheus_data else [None, None],
                "confidence": CONFIDENCE,
                "needs_more_requests": None,
                "recovered_after_interval": None,
                "false_alarm": None,
                "samples": phases[0].seconds if prometheus_data else 0,
                "halt": False,
                "message": "value in steady 0 [0, 0.0004]; below 0.01"
                if prometheus_data
                else "no data from Prometheus for this window",
            }
        )
        n = len(checks) - 1
        for row in rows:
            row[f"prom_{n}"] = (
                row["proxy_error_rate"] if prometheus_data and row["elapsed"] >= 6 else None
            )
    if borderline:
        checks.append(_borderline(phase_docs[2]))
    statuses = {c["status"] for c in checks}
    verdict = "FAIL" if "FAIL" in statuses else "INCONCLUSIVE" if statuses - {"PASS"} else "PASS"
    reasons = [f"check {c['name']!r} failed" for c in checks if c["status"] == "FAIL"]
    halted_doc = None
    if halted:
        broken = spans[1]
        halted_doc = {
            "check": checks[0]["name"],
            "at": broken["start"] + 2.4,
            "phase": "broken-release",
            "value": checks[0]["value"],
            "bound": checks[0]["bound"],
        }
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0].keys())
    with (out / "timeseries.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if row[c] is None else row[c] for c in columns])
    (out / "journal.jsonl").write_text(
        "".join(
            json.dumps({"t": r["t"], "fault": "error", "status": 500}) + "\n"
            for r in rows
            if r["proxy_injected"]
        )
    )
    (out / "locust.json").write_text("[]\n")
    scenario_text = SCENARIO_TEXT.format(
        steady=phases[0].seconds,
        broken=phases[1].seconds,
        rollback=phases[2].seconds,
        recovered=phases[3].seconds,
    )
    results = {
        "schema_version": 1,
        "verdict": verdict,
        "reasons": reasons,
        "interrupted": interrupted,
        "halted": halted_doc,
        "experiment": {
            "name": name,
            "file": "/srv/experiments/checkout.yaml",
            "text": f"name: {name}\nscenario: post-deploy-breakage\nload: {{users: 50}}\n",
            "scenario": "post-deploy-breakage",
            "scenario_text": scenario_text,
            "target": "http://127.0.0.1:8000",
            "proxy": "http://127.0.0.1:3100",
            "admin": ["http://127.0.0.1:3101"],
            "load": {"users": 50, "spawn_rate": 10, "shape": "steady", "locustfile": "default"},
        },
        "run": {
            "id": run_id,
            "started": T0,
            "ended": T0 + total,
            "scenario_started": scenario_started,
            "scenario_ended": scenario_ended,
            "seed": seed,
            "workers": 0,
            "command": f"chaosproxy experiment run checkout.yaml --seed {seed}",
            "versions": {
                "chaosproxy": "0.1.0",
                "locust": "2.47.0",
                "python": "3.11.7",
                "platform": "Linux-6.1-x86_64",
            },
        },
        "latency_buckets": list(BOUNDS),
        "phases": phase_docs,
        "checks": checks,
        "annotations": [
            {
                "time": s["start"],
                "end": s["end"],
                "title": f"phase {s['phase'].name}",
                "tags": ["chaosproxy", "phase", s["phase"].name],
            }
            for s in spans
        ],
        "events": _events(spans, seed, scenario_started, scenario_ended),
        "files": {
            "timeseries": "timeseries.csv",
            "journal": "journal.jsonl",
            "locust": ["locust.json", "locust_stats.csv"],
        },
    }
    if intervals:
        results["confidence"] = CONFIDENCE
        results["false_alarm"] = _false_alarm(false_alarm, checks)
    else:
        _drop_intervals(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return out


def _events(
    spans: list[dict[str, Any]], seed: int, started: float, ended: float
) -> list[dict[str, Any]]:
    """The engine's events as the proxy reports them: epoch times, None for "no previous
    phase", float offsets."""
    scenario = "post-deploy-breakage"
    out: list[dict[str, Any]] = [
        {"kind": "scenario_scheduled", "t": started - 1.8, "phase": "", "details": {"at": started}},
        {
            "kind": "scenario_started",
            "t": started,
            "phase": spans[0]["phase"].name,
            "details": {"seed": seed, "repeat": 1, "duration": ended - started},
        },
    ]
    previous = None
    for s in spans:
        name = s["phase"].name
        out.append(
            {
                "kind": "phase_changed",
                "t": s["start"],
                "phase": name,
                "details": {
                    "from": previous,
                    "to": name,
                    "cycle": 0,
                    "offset": s["start"] - started - 4.5e-13,
                },
            }
        )
        previous = name
    out.append({"kind": "scenario_ended", "t": ended, "phase": previous, "details": {}})
    return [{"seq": k + 1, "scenario": scenario} | e for k, e in enumerate(out)]


def _false_alarm(rate: float | None, checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The estimate over 200 resamples of the baseline; checks on the baseline itself have no
    rate of their own (they judge the very seconds resampled)."""
    if rate is None:
        return None
    rounds = 200
    hits = round(rate * rounds)
    lo, hi = wilson(hits, rounds, CONFIDENCE)
    judged = [c["name"] for c in checks if c.get("during_phase") != "steady"]
    shares = [0.6, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0]
    return {
        "rate": round(hits / rounds, 4),
        "interval": [round(lo, 4), round(hi, 4)],
        "rounds": rounds,
        "alpha": round(1 - CONFIDENCE, 4),
        "baseline": "steady",
        "checks": {
            name: round(round(hits * share) / rounds, 4)
            for name, share in zip(judged, shares, strict=False)
        },
        "warning": hits / rounds > 1 - CONFIDENCE,
    }


def _drop_intervals(results: dict[str, Any]) -> None:
    for c in results["checks"]:
        for k in (*INTERVAL_KEYS, "false_alarm"):
            c.pop(k, None)
    for p in results["phases"]:
        for view in (p["client"], p["proxy"]):
            for k in PHASE_INTERVAL_KEYS:
                view.pop(k, None)


def _in(rows: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [r for r in rows if start <= r["t"] < end]


def _pct(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = sorted(r[key] for r in rows if r[key] is not None)
    return vals[int(0.5 * (len(vals) - 1))] if vals else None


def _hist(n: int, p50: float | None) -> list[int]:
    hist = [0] * (len(BOUNDS) + 1)
    if p50 is not None:
        hist[min(i for i, b in enumerate(BOUNDS) if b >= p50)] = n
    return hist


def _rate_interval(x: int, n: int) -> list[float] | None:
    if not n:
        return None
    lo, hi = wilson(x, n, CONFIDENCE)
    return [round(lo, 6), round(hi, 6)]


def _quantile_interval(
    rows: list[dict[str, Any]], key: str, n: int, q: float
) -> list[float | None] | None:
    """Around the phase's quantile: the spread of its seconds' values, narrowed by the number of
    requests; the upper side open when too few requests bound it (as the judge's are)."""
    vals = sorted(r[key] for r in rows if r[key] is not None)
    if not vals or not n:
        return None
    mid = vals[int(0.5 * (len(vals) - 1))]
    lo, hi = vals[int(0.25 * (len(vals) - 1))], vals[int(0.75 * (len(vals) - 1))]
    shrink = min(1.0, 30 / n**0.5)
    top = round(mid + (hi - mid) * shrink, 6)
    return [
        round(mid - (mid - lo) * shrink, 6),
        top if quantile_ranks(n, q, CONFIDENCE)[1] else None,
    ]


def _phase_doc(span: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    p: Phase = span["phase"]
    sel = _in(rows, span["start"], span["end"])
    secs = len(sel) or 1
    creq = sum(r["client_requests"] for r in sel)
    cfail = sum(r["client_failures"] for r in sel)
    preq = sum(r["proxy_requests"] for r in sel)
    perr = sum(r["proxy_errors"] for r in sel)
    inj = sum(r["proxy_injected"] for r in sel)
    absorbed = max(inj - cfail, 0)
    return {
        "name": p.name,
        "start": span["start"],
        "end": span["end"],
        "has_rules": p.fault_share != (0.0, 0.0),
        "baseline": p.baseline,
        "client": {
            "requests": creq,
            "failures": cfail,
            "error_rate": round(cfail / creq, 6) if creq else None,
            "error_rate_interval": _rate_interval(cfail, creq),
            "throughput": round(creq / secs, 1),
            "p50": _pct(sel, "client_p50"),
            "p95": _pct(sel, "client_p95"),
            "p99": _pct(sel, "client_p99"),
            "p50_interval": _quantile_interval(sel, "client_p50", creq, 0.50),
            "p95_interval": _quantile_interval(sel, "client_p95", creq, 0.95),
            "p99_interval": _quantile_interval(sel, "client_p99", creq, 0.99),
            "histogram": _hist(creq, _pct(sel, "client_p50")),
        },
        "proxy": {
            "requests": preq,
            "errors": perr,
            "error_rate": round(perr / preq, 6) if preq else None,
            "error_rate_interval": _rate_interval(perr, preq),
            "injected": inj,
            "throughput": round(preq / secs, 1),
            "p50": _pct(sel, "proxy_p50"),
            "p95": _pct(sel, "proxy_p95"),
            "p99": _pct(sel, "proxy_p99"),
            "p50_interval": _quantile_interval(sel, "proxy_p50", preq, 0.50),
            "p95_interval": _quantile_interval(sel, "proxy_p95", preq, 0.95),
            "p99_interval": _quantile_interval(sel, "proxy_p99", preq, 0.99),
            "retry_after": 0,
            "retried_early": 0,
            "retried_after_waiting": 0,
            "histogram": _hist(preq, _pct(sel, "proxy_p50")),
        },
        "resilience": {
            "injected": inj,
            "client_failures": cfail,
            "absorbed": absorbed,
            "absorbed_share": round(absorbed / inj, 6) if inj else None,
        },
        "client_behaviour": {
            "retry_amplification": round(preq / creq, 3) if creq else None,
            "early_retry_share": None,
        },
    }


def _checks(
    rows: list[dict[str, Any]],
    spans: list[dict[str, Any]],
    phases: list[dict[str, Any]],
    scale: int,
    failover: bool,
) -> list[dict[str, Any]]:
    steady, broken = phases[0], phases[1]
    # 1. error rate during the fault, as clients saw it.
    er = broken["client"]["error_rate"]
    c_during = _outcome(
        "error rate stays low during broken-release",
        "error_rate",
        "below",
        er,
        0.05,
        "ratio",
        during_phase="broken-release",
        samples=broken["client"]["requests"],
        interval=broken["client"]["error_rate_interval"],
    )
    # 2. recovery: the first second after broken-release from which the client error rate stays
    # below the bound for `for` consecutive seconds; the change point lies inside the second
    # before it (tenths of a second), with an interval of a few tenths.
    end = spans[1]["end"]
    after = _in(rows, end, spans[-1]["end"])
    bound, hold, within = 0.01, 3, 4.0 * scale
    recovered = None
    for k in range(len(after) - hold + 1):
        if all(r["client_error_rate"] < bound for r in after[k : k + hold]):
            recovered = max(float(after[k]["t"] - end) - 0.3, 0.0)
            settled = after[k : k + hold]
            break
    else:
        settled = after
    failures = sum(r["client_failures"] for r in settled)
    requests = sum(r["client_requests"] for r in settled)
    value = failures / max(requests, 1)
    ok = recovered is not None and recovered <= within
    c_recover = _outcome(
        "recovers after broken-release",
        "error_rate",
        "below",
        round(value, 6),
        bound,
        "ratio",
        after_phase="broken-release",
        samples=requests,
        interval=_rate_interval(failures, requests),
    )
    c_recover.update(
        status="PASS" if ok else "FAIL",
        recovered_after_s=None if recovered is None else round(recovered, 1),
        recovered_after_interval=None
        if recovered is None
        else [round(max(recovered - 0.3, 0.0), 1), round(recovered + 0.4, 1)],
        within=within,
        **{"for": float(hold)},
        message=(
            f"recovered {recovered:.1f}s after broken-release ended: the 95% interval "
            f"[{max(recovered - 0.3, 0.0):.1f}s, {recovered + 0.4:.1f}s] "
            f"{'ends by' if ok else 'starts after'} {within:g}s"
            if recovered is not None
            else f"never recovered after broken-release (bound {within:g}s)"
        ),
    )
    # 3. latency over the whole scenario.
    p95 = max(p["client"]["p95"] for p in phases)
    c_p95 = _outcome(
        "p95 stays under 250 ms",
        "latency_p95",
        "below",
        p95,
        0.25,
        "seconds",
        interval=[round(p95 * 0.92, 6), round(p95 * 1.1, 6)],
    )
    # 4. throughput during the fault relative to the steady baseline (a bootstrap interval).
    ratio = round(broken["client"]["throughput"] / steady["client"]["throughput"], 3)
    c_thr = _outcome(
        "throughput holds during broken-release",
        "throughput",
        "above",
        ratio,
        0.8,
        "x",
        during_phase="broken-release",
        compare_to="steady",
        interval=[round(ratio * 0.93, 3), round(ratio * 1.06, 3)],
    )
    # 5. retries do not storm.
    amp = broken["client_behaviour"]["retry_amplification"]
    c_amp = _outcome(
        "retries stay bounded",
        "retry_amplification",
        "below",
        amp,
        2.0,
        "x",
        during_phase="broken-release",
        interval=[round(amp - 0.03, 3), round(amp + 0.04, 3)],
    )
    return [c_during, c_recover, c_p95, c_thr, c_amp]


def _borderline(rollback: dict[str, Any]) -> dict[str, Any]:
    """An error-rate check on rollback whose bound sits inside the interval: INCONCLUSIVE."""
    client = rollback["client"]
    x, n = client["failures"], client["requests"]
    value = x / n
    lo, hi = wilson(x, n, CONFIDENCE)
    bound = round(value + (hi - value) / 2, 4)
    total = needed_for_proportion(x, n, bound, CONFIDENCE)
    more = None if total is None else max(total - n, 0)
    c = _outcome(
        "rollback error rate stays low",
        "error_rate",
        "below",
        round(value, 6),
        bound,
        "ratio",
        during_phase="rollback",
        samples=n,
        interval=[round(lo, 6), round(hi, 6)],
    )
    c["status"] = "INCONCLUSIVE"
    c["needs_more_requests"] = more
    c["message"] += (
        f": the 95% interval straddles the bound; needs about {more} more requests to decide"
    )
    return c


def _outcome(
    name: str,
    metric: str,
    comparison: str,
    value: float,
    bound: float,
    unit: str,
    *,
    during_phase: str | None = None,
    after_phase: str | None = None,
    compare_to: str | None = None,
    samples: int = 0,
    interval: list[float] | list[float | None] | None = None,
) -> dict[str, Any]:
    """A check as the judge writes it; its message in the judge's words (and number format)."""
    margin = bound - value if comparison == "below" else value - bound
    lo, hi = interval if interval is not None else (None, None)
    where = f" in {during_phase}" if during_phase else ""
    return {
        "name": name,
        "status": "PASS" if margin >= 0 else "FAIL",
        "metric": metric,
        "source": "client",
        "query": None,
        "during_phase": during_phase,
        "after_phase": after_phase,
        "compare_to": compare_to,
        "comparison": comparison,
        "value": value,
        "bound": bound,
        "margin": round(margin, 6),
        "unit": unit,
        "recovered_after_s": None,
        "within": None,
        "for": None,
        "interval": [lo, hi],
        "confidence": CONFIDENCE,
        "needs_more_requests": None,
        "recovered_after_interval": None,
        "false_alarm": None,
        "samples": samples,
        "halt": False,
        "message": f"{metric}{where} {fmt(value, unit)} {fmt_interval(lo, hi, unit)}; "
        f"{comparison} {fmt(bound, unit)}",
    }
