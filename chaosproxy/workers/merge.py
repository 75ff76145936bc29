"""Several workers' admin answers read as one proxy's: pure functions over decoded bodies.

- Counts add up: requests, errors, injected faults, rule `matched`/`injected`, active and
  skipped faults, in-flight requests, pool slots.
- What every worker knows alike comes from worker 0: the scenario, its phase and timeline (every
  worker runs it from the same instant), the rules' definitions.
- Per-second rows are summed second by second; their quantiles come from the summed histograms.
  A row's cohort sub-rows (`cohorts: {fault, control}`) are summed the same way, cohort by cohort.
- Prometheus: counters and histograms are summed, and so are gauges, except the series that
  record something every worker sees at once (`MAX_ACROSS`): their maximum.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from chaosproxy.common import sketch
from chaosproxy.observe.stats import coarse, quantiles

# Every worker records these together (one scenario in one phase, one edit of a scenario file
# rejected, one guardrail stopping the scenario everywhere): summing would count them N times.
MAX_ACROSS = frozenset(
    {
        "chaosproxy_scenario_active",
        "chaosproxy_config_reload_errors",
        "chaosproxy_guardrail_trips",
    }
)
_ROW_SUMS = (
    "requests",
    "errors",
    "injected",
    "retry_after",
    "retried_early",
    "retried_after_waiting",
)


def _add_counts(
    into: list[dict[str, Any]], others: Iterable[list[dict[str, Any]]], key: Any
) -> None:
    """Add `matched`/`injected` of the entries of `others` to the entry of `into` with the same
    key (entries only another worker has are left out: the workers disagree, worker 0 wins)."""
    index = {key(e): e for e in into}
    for entries in others:
        for e in entries:
            mine = index.get(key(e))
            if mine is None:
                continue
            for field in ("matched", "injected"):
                if isinstance(e.get(field), int) and isinstance(mine.get(field), int):
                    mine[field] += e[field]


def rules(lists: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Ad-hoc rules (`GET /rules`, status `adhoc_rules`/`rules`): worker 0's, counts summed."""
    merged = copy.deepcopy(lists[0])
    _add_counts(merged, lists[1:], lambda r: r.get("id"))
    return merged


def status(bodies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`GET /status` of every worker as one: worker 0's timeline, everyone's counts."""
    out = copy.deepcopy(bodies[0])
    out["active"] = any(b.get("active") for b in bodies)
    sc = out.get("scenario")
    if isinstance(sc, dict) and isinstance(sc.get("rule_counts"), list):
        same = [
            b["scenario"]["rule_counts"]
            for b in bodies[1:]
            if isinstance(b.get("scenario"), dict) and b["scenario"].get("name") == sc.get("name")
        ]
        _add_counts(sc["rule_counts"], same, lambda r: (r.get("id"), r.get("phase")))
    for key in ("rules", "adhoc_rules"):
        if isinstance(out.get(key), list):
            out[key] = rules([b.get(key) or [] for b in bodies])
    guards = [b.get("guardrails") for b in bodies]
    if all(isinstance(g, dict) for g in guards):
        g0: dict[str, Any] = out["guardrails"]
        for field in ("active_faults", "skipped_faults"):
            g0[field] = sum(int(g.get(field) or 0) for g in guards if g is not None)
        trips = [
            {**t, "worker": i}
            for i, g in enumerate(guards)
            if g is not None
            for t in g.get("trips") or []
        ]
        g0["trips"] = sorted(trips, key=lambda t: (t.get("t") or 0.0, t["worker"]))
    return out


def timeseries(many: Sequence[list[dict[str, Any]]], histograms: bool) -> list[dict[str, Any]]:
    """`/stats/timeseries` series (asked with `histograms=1`) summed second by second: the
    workers' sketches add up exactly, so the quantiles and the coarse buckets come from them."""
    by_second: dict[int, list[dict[str, Any]]] = {}
    for series in many:
        for row in series:
            by_second.setdefault(int(row["t"]), []).append(row)
    return [_sum_rows(by_second[t], histograms) for t in sorted(by_second)]


def _sum_rows(rows: list[dict[str, Any]], histograms: bool) -> dict[str, Any]:
    """The workers' rows of one second as one (and their cohort sub-rows, cohort by cohort)."""
    mine = {k: v for k, v in rows[0].items() if k not in ("hist", "sketch", "cohorts", "grpc")}
    sk: dict[int, int] = {}
    cohorts: dict[str, list[dict[str, Any]]] = {}
    grpc: dict[str, int] = {}  # gRPC calls by status name
    for i, row in enumerate(rows):
        for name, n in (row.get("grpc") or {}).items():
            grpc[name] = grpc.get(name, 0) + int(n)
        if i:
            for key in _ROW_SUMS:
                mine[key] = int(mine.get(key) or 0) + int(row.get(key) or 0)
            if not mine.get("phase") and row.get("phase"):
                mine["scenario"], mine["phase"] = row.get("scenario"), row["phase"]
        sketch.add(sk, {int(k): int(c) for k, c in (row.get("sketch") or {}).items()})
        for name, sub in (row.get("cohorts") or {}).items():
            cohorts.setdefault(name, []).append(sub)
    n = int(mine.get("requests") or 0)
    mine["error_rate"] = round(int(mine.get("errors") or 0) / n, 6) if n else 0.0
    mine["p50"], mine["p95"], mine["p99"] = quantiles(sk, n)
    if histograms:
        mine["hist"] = coarse(sk)
        mine["sketch"] = {str(k): c for k, c in sorted(sk.items())}
    if grpc:
        mine["grpc"] = dict(sorted(grpc.items()))
    if cohorts:
        mine["cohorts"] = {name: _sum_rows(subs, histograms) for name, subs in cohorts.items()}
    return mine


class _Families:
    """A collector that yields families already built (the merged exposition)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def metrics(texts: Sequence[str], workers: int) -> bytes:
    """Prometheus text expositions of every worker as one, plus `chaosproxy_workers`."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name not in families:
                families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            seen = values[fam.name]
            take_max = fam.name in MAX_ACROSS
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = seen.get(key)
                if old is None:
                    seen[key] = s.value
                else:
                    seen[key] = max(old, s.value) if take_max else old + s.value
    out = []
    for name, fam in families.items():
        for (sample, labels), value in values[name].items():
            fam.add_sample(sample, dict(labels), value)
        out.append(fam)
    count = Metric("chaosproxy_workers", "Proxy worker processes serving (run --workers).", "gauge")
    count.add_sample("chaosproxy_workers", {}, float(workers))
    out.append(count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(out))
    return generate_latest(registry)
