"""Verdicts: pure functions over per-second series. No I/O, no clock: collection happens elsewhere.

A run is a list of `Second`s (`series.py`: one per Unix second, labelled with the phase in force
as it began) holding what the clients saw (Locust), what the proxy saw, and any Prometheus
values. Each check becomes a `CheckResult` with its value, the interval around it and a
three-valued status decided from that interval (`estimate.py`, `inference.py`): PASS when the
interval lies inside the bound at the experiment's confidence, FAIL when it lies outside,
INCONCLUSIVE when it straddles (with the requests that would decide it) or rests on too little.

Time to recover, for `after_phase: P, within: W, for: F`: from the end of P, the most likely
moment the failing process became a healthy one (a change point over the finest bins the data
has: tenths of a second for the client view), with its interval, judged over W + F seconds.
PASS when the interval ends by W and the metric since is shown inside the bound; FAIL when it
starts after W, or nothing after P is back in bound; INCONCLUSIVE when it straddles W, the
metric since is not yet shown inside the bound, or the run ended too soon to tell.

`judge` adds the run-level rules: a run that did not go as planned, the baseline gate, "no
traffic reached the proxy", "the scenario injected nothing", halts and interruptions.
The parts live beside it: `outcome.py` (results, formatting), `phase_check.py` (`during_phase`),
`recovery.py` (`after_phase`), `control.py` (the control group, blast radius), `halts.py`
(`halt: true` while running), `false_alarm.py` (would it cry wolf); this module re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaosproxy.experiment import inference
from chaosproxy.experiment.control import ClientRecord
from chaosproxy.experiment.estimate import (
    amplification,
    proportion,
    quantile_estimate,
    reference_rate,
)
from chaosproxy.experiment.model import DEFAULT_CONFIDENCE, BaselineSpec, CheckSpec
from chaosproxy.experiment.outcome import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CheckResult,
    Verdict,
    baseline_phase,
    num,
)
from chaosproxy.experiment.phase_check import during
from chaosproxy.experiment.recovery import recovery
from chaosproxy.experiment.series import PhaseWindow, Second, View, merged

_num = num
_DEFAULT_BASELINE = BaselineSpec()


# ---------------------------------------------------------------- the run


def _view_summary(v: View, secs: int, confidence: float) -> dict[str, Any]:
    er, er_lo, er_hi = proportion(v.failures, v.requests, confidence)
    out: dict[str, Any] = {
        "requests": v.requests,
        "error_rate": _num(er),
        "error_rate_interval": [_num(er_lo), _num(er_hi)] if v.requests else None,
        "throughput": _num(v.requests / secs),
    }
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        val, lo, hi = quantile_estimate(v, q, confidence) if v.requests else (None,) * 3
        out[name] = val
        out[f"{name}_interval"] = [lo, hi] if val is not None else None
    out["histogram"] = v.histogram()
    return out


def phase_summary(
    rows: Sequence[Second],
    phase: PhaseWindow,
    reference: float | None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    window = [s for s in rows if s.phase == phase.name]
    secs = len(window) or 1
    c = merged(window, "client")
    p = merged(window, "proxy")
    absorbed = max(0, p.injected - c.failures)
    amp = amplification(window, reference) if window and reference and p.requests else None
    judged = p.retried_early + p.retried_waited
    client = _view_summary(c, secs, confidence)
    client["failures"] = c.failures
    if c.grpc:  # gRPC calls by the status their clients read
        client["grpc"] = dict(sorted(c.grpc.items()))
    proxy = _view_summary(p, secs, confidence)
    if p.grpc:
        proxy["grpc"] = dict(sorted(p.grpc.items()))
    proxy.update(
        {
            "errors": p.failures,
            "injected": p.injected,
            "tcp_faults": p.tcp_faults,
            "retry_after": p.retry_after,
            "retried_early": p.retried_early,
            "retried_after_waiting": p.retried_waited,
        }
    )
    resilience: dict[str, Any] = {
        "injected": p.injected,
        "client_failures": c.failures,
        "absorbed": absorbed,
        "absorbed_share": _num(absorbed / p.injected) if p.injected else None,
    }
    if p.tcp_faults:  # faults on TCP connections: no request each, so not in `absorbed`
        resilience["tcp_faults"] = p.tcp_faults
    # "Absorbed" reads injected faults against client failures, which assumes the system calls
    # the dependency about as often per client request as in the baseline (one call each, when
    # there is no baseline). Far fewer calls (under half: a circuit breaker, a cache, routing
    # around an unhealthy dependency) and the two counts are about different requests: say what
    # was measured, and leave `absorbed` out. (A proxy that saw nothing all run is another
    # finding, the verdict's "no traffic reached the proxy".)
    per_request = reference if reference else 1.0
    fewer = c.requests and p.requests < 0.5 * per_request * c.requests
    if fewer and any(s.proxy.requests for s in rows):
        base = f" (the baseline: {reference:.2f} per client request)" if reference else ""
        resilience.update(
            {
                "absorbed": None,
                "absorbed_share": None,
                "proxy_requests": p.requests,
                "client_requests": c.requests,
                "note": f"the system stopped calling the dependency: {p.requests:,} proxy "
                f"requests for {c.requests:,} client requests{base}; absorbed is not computed "
                "(it assumes the clients' requests reach the dependency)",
            }
        )
    return {
        "name": phase.name,
        "start": phase.start,
        "end": phase.end,
        "has_rules": phase.has_rules,
        "seconds": len(window),
        "client": client,
        "proxy": proxy,
        "resilience": resilience,
        "client_behaviour": {
            "retry_amplification": _num(amp),
            "early_retry_share": _num(p.retried_early / judged) if judged else None,
        },
    }


def judge_check(
    spec: CheckSpec,
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    reference: float | None,
    confidence: float = DEFAULT_CONFIDENCE,
    lag: float = 0.0,
    clients: Sequence[ClientRecord] | None = None,
) -> CheckResult:
    """One check on its own, before the run-level rules."""
    if spec.during_phase is not None:
        return during(spec, rows, spec.during_phase, reference, confidence, lag, clients)
    ran = {s.phase for s in rows}
    by_name = {p.name: p for p in phases}
    if spec.after_phase not in ran or spec.after_phase not in by_name:
        return CheckResult(
            spec,
            INCONCLUSIVE,
            None,
            0,
            f"phase {spec.after_phase} never ran",
            confidence=confidence,
        )
    faulted = frozenset(p.name for p in phases if p.has_rules and p.name != spec.after_phase)
    return recovery(spec, rows, by_name[spec.after_phase], reference, confidence, faulted)


def judge(
    checks: Sequence[CheckSpec],
    rows: Sequence[Second],
    phases: Sequence[PhaseWindow],
    baseline: BaselineSpec = _DEFAULT_BASELINE,
    *,
    halted: str | None = None,
    halted_at: float | None = None,
    interrupted: bool = False,
    problems: Sequence[str] = (),
    confidence: float = DEFAULT_CONFIDENCE,
    lags: dict[str, float] | None = None,
    clients: Sequence[ClientRecord] | None = None,
) -> Verdict:
    """Every check, then the run-level rules, into one verdict."""
    base = baseline_phase(phases, baseline)
    base_rows = [s for s in rows if s.phase == base] if base else []
    reference = reference_rate(base_rows)
    ran = {s.phase for s in rows}
    reasons: list[str] = []

    # Phases whose rules never acted prove nothing about the checks that name them.
    idle: dict[str, str] = {}
    for p in phases:
        if not p.has_rules or p.name not in ran:
            continue
        v = merged([s for s in rows if s.phase == p.name], "proxy")
        if v.tcp_faults:  # faults acted on TCP connections (a database's, a cache's)
            continue
        if v.requests == 0:
            idle[p.name] = f"no traffic reached the proxy during {p.name}"
        elif v.injected == 0:
            idle[p.name] = f"phase {p.name} has rules but the scenario injected nothing"
    reasons.extend(idle.values())

    results: list[CheckResult] = []
    for spec in checks:
        judged = rows
        if spec.name == halted and halted_at is not None:
            judged = [s for s in rows if s.t < int(halted_at)]  # up to the halt, not after it
        lag = (lags or {}).get(spec.name, 0)
        r = judge_check(spec, judged, phases, reference, confidence, lag, clients)
        if spec.name == halted:
            r.halted = True
            r.status = FAIL  # decided while running by the anytime-valid test
            r.message = f"halted the run: {r.message}"
        elif spec.phase in idle and (
            r.status == PASS or (r.status == FAIL and spec.source != "client")
        ):
            # nothing was tested there; but clients failing is evidence whatever the proxy saw
            r.status = INCONCLUSIVE
            r.message = f"{idle[spec.phase]}; {r.message}"
        results.append(r)

    gate = False
    if base is not None and base in ran:
        named = [r for r in results if r.spec.during_phase == base and r.status == FAIL]
        bv = merged(base_rows, "client")
        er_lo, _ = inference.wilson(bv.failures, bv.requests, confidence)
        if named:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already breaks "
                + ", ".join(repr(r.spec.name) for r in named)
                + ": the system was unhealthy before any fault",
            )
        elif bv.requests and er_lo > baseline.error_rate_above:
            gate = True
            reasons.insert(
                0,
                f"the baseline phase {base} already had a client error rate of "
                f"{bv.failures / bv.requests:.1%} (at least {er_lo:.1%} at {confidence:.0%} "
                f"confidence, above {baseline.error_rate_above:.0%}): the system was unhealthy "
                "before any fault",
            )
        elif not bv.requests and any(r.spec.source == "client" for r in results):
            gate = True
            reasons.insert(0, f"no client requests completed in the baseline phase {base}")
    with_rules = [p for p in phases if p.has_rules and p.name in ran]
    # A chaos run whose faults never fired proves nothing, unless clients failed anyway.
    nothing_fired = bool(with_rules) and all(p.name in idle for p in with_rules)
    if halted:
        reasons.insert(0, f"halted: check {halted!r} breached while running; injection stopped")
    if interrupted:
        reasons.insert(0, "interrupted before the scenario finished")
    if problems:  # the run did not go as planned: what it measured cannot PASS
        gate = True
        reasons[0:0] = [f"the run did not go as planned: {p}" for p in problems]

    statuses = {r.status for r in results}
    client_failed = any(r.status == FAIL and r.spec.source == "client" for r in results)
    if gate or (nothing_fired and not client_failed):
        status = INCONCLUSIVE
    elif FAIL in statuses:
        status = FAIL
    elif interrupted or INCONCLUSIVE in statuses or idle:
        status = INCONCLUSIVE
    else:
        status = PASS
    if status != PASS:
        reasons.extend(
            f"check {r.spec.name!r} is {r.status}: {r.message}"
            for r in results
            if r.status != PASS and not r.halted
        )
    summaries = [phase_summary(rows, p, reference, confidence) for p in phases]
    return Verdict(status, reasons, results, summaries, base, confidence)
