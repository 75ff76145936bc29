"""Collection: turn what Locust wrote and what the proxy answered into per-second `Second`s.

Client view: the plugin's JSON lines (counts per second each request started). Proxy view:
`/stats/timeseries` rows (also keyed by start second). Phases: the proxy's own `/events`
(scenario started, phase changed, finished or stopped), never the runner's guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosproxy.config.model import Scenario
from chaosproxy.experiment.control import ClientRecord
from chaosproxy.experiment.outcome import COOLDOWN, WARMUP
from chaosproxy.experiment.series import PhaseWindow, Second, View, grpc_counts


@dataclass
class ClientData:
    """Tails the plugin's output file; sums the lines of each second (workers report late)."""

    path: Path
    seconds: dict[int, View] = field(default_factory=dict)
    users: int = 0
    workers: int | None = None
    last_report: float = 0.0
    users_at: dict[int, int] = field(default_factory=dict)  # second -> users Locust ran
    # second -> cohort -> view, when the plugin labels its users (`control.py`)
    cohorts: dict[int, dict[str, View]] = field(default_factory=dict)
    _offset: int = 0
    _partial: bytes = b""

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            if not raw.strip():
                continue
            try:
                self._record(json.loads(raw))
            except (ValueError, TypeError, AttributeError, KeyError, OverflowError, RecursionError):
                continue  # written from outside: a bad record is skipped, never fatal

    def _record(self, rec: Any) -> None:
        """One line: a second's counts, or the user count. Parsed whole before anything is
        kept, so a malformed record changes nothing."""
        if not isinstance(rec, dict):
            raise ValueError("not an object")
        if "t" in rec:
            t = int(rec["t"])
            view = _plugin_view(rec)
            split = {str(k): _plugin_view(v) for k, v in (rec.get("c") or {}).items()}
            self.seconds.setdefault(t, View()).add(view)
            into = self.cohorts.setdefault(t, {}) if split else {}
            for name, v in split.items():
                into.setdefault(name, View()).add(v)
        elif "users" in rec:
            users = int(rec["users"])
            now = float(rec.get("now", 0.0))
            workers = rec.get("workers")
            if workers is not None:
                workers = int(workers)
            self.users = users
            self.users_at[int(now)] = users
            self.workers = workers
            self.last_report = now


def _plugin_view(rec: Any) -> View:
    """A plugin record's counts (`n`, `f`, `h`, `s`, `d`) as a view."""
    if not isinstance(rec, dict):
        raise ValueError("not an object")
    return View(
        _count(rec.get("n", 0)),
        _count(rec.get("f", 0)),
        hist=_counts(rec.get("h")),
        sketch=_counts(rec.get("s")),
        tenths=_tenths(rec.get("d")),
        grpc=grpc_counts(rec.get("g")),
    )


def _count(x: Any) -> int:
    n = int(x)
    if n < 0 or n != x:
        raise ValueError(f"not a count: {x!r}")
    return n


def _counts(m: Any) -> dict[int, int]:
    """`{key: count}` (keys as JSON strings); missing or null is empty."""
    if m is None:
        return {}
    return {int(k): _count(c) for k, c in m.items()}


def _tenths(m: Any) -> dict[int, list[int]]:
    """`{tenth 0..9: [requests, failures]}`; missing or null is empty."""
    if m is None:
        return {}
    out: dict[int, list[int]] = {}
    for k, v in m.items():
        d = int(k)
        if not 0 <= d <= 9 or not isinstance(v, list) or len(v) != 2:
            raise ValueError(f"not a tenth: {k!r}: {v!r}")
        out[d] = [_count(v[0]), _count(v[1])]
    return out


def proxy_views(rows: Iterable[dict[str, Any]]) -> dict[int, View]:
    """`/stats/timeseries` rows (with histograms: the coarse buckets and, from proxies of this
    version, the 1 % sketch) as views by second. A malformed row is skipped, never a crash."""
    out: dict[int, View] = {}
    for r in rows:
        if not r.get("requests") and not r.get("tcp_faults"):
            continue
        try:
            out[int(r["t"])] = _row_view(r)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def add_tcp_faults(views: dict[int, View], rows: Iterable[dict[str, Any]]) -> None:
    """The all-traffic rows' `tcp_faults` (faults applied to TCP connections, which carry no
    run id) into a run's own views, by second. A malformed row is skipped."""
    for r in rows:
        try:
            t, n = int(r["t"]), int(r.get("tcp_faults", 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if n > 0:
            views.setdefault(t, View()).tcp_faults = n


def proxy_cohort_views(rows: Iterable[dict[str, Any]]) -> dict[int, dict[str, View]]:
    """The rows' `cohorts` sub-rows (`{"fault": row, "control": row}`, present when the
    scenario has a control group) as views by second and cohort. Malformed: skipped."""
    out: dict[int, dict[str, View]] = {}
    for r in rows:
        split = r.get("cohorts") if isinstance(r, dict) else None
        if not isinstance(split, dict) or not split:
            continue
        try:
            views = {str(name): _row_view(sub) for name, sub in split.items()}
            out[int(r["t"])] = views
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def _row_view(r: dict[str, Any]) -> View:
    return View(
        requests=int(r["requests"]),
        failures=int(r["errors"]),
        injected=int(r["injected"]),
        tcp_faults=int(r.get("tcp_faults", 0)),
        hist=_counts(r.get("hist")),
        retry_after=int(r.get("retry_after", 0)),
        retried_early=int(r.get("retried_early", 0)),
        retried_waited=int(r.get("retried_after_waiting", 0)),
        sketch=_counts(r.get("sketch")),
        grpc=grpc_counts(r.get("grpc")),
    )


def merge_cohorts(many: Sequence[dict[int, dict[str, View]]]) -> dict[int, dict[str, View]]:
    """Several sidecars' cohort views summed by second and cohort."""
    if len(many) == 1:
        return many[0]
    out: dict[int, dict[str, View]] = {}
    for by_second in many:
        for t, split in by_second.items():
            into = out.setdefault(t, {})
            for name, v in split.items():
                into.setdefault(name, View()).add(v)
    return out


def merge_views(many: Sequence[dict[int, View]]) -> dict[int, View]:
    """Several sidecars' views summed by second."""
    if len(many) == 1:
        return many[0]
    out: dict[int, View] = {}
    for views in many:
        for t, v in views.items():
            out.setdefault(t, View()).add(v)
    return out


def phase_windows(
    events: Sequence[dict[str, Any]], scenario: Scenario, end: float
) -> list[PhaseWindow]:
    """The phases as the proxy ran them: each from its phase_changed time to the next change,
    the last one to the scenario's finish (or stop, or `end` when neither came)."""
    rules = {p.name: bool(p.rules) for p in scenario.phases}
    wide = bool(scenario.rules)
    windows: list[PhaseWindow] = []
    current: tuple[str, float] | None = None
    for ev in sorted(events, key=lambda e: (e["t"], e["seq"])):
        kind = ev["kind"]
        if kind == "phase_changed":
            if current is not None:
                windows.append(_window(current, ev["t"], rules, wide))
            current = (ev["phase"], ev["t"])
        elif kind in ("scenario_finished", "scenario_stopped") and current is not None:
            windows.append(_window(current, ev["t"], rules, wide))
            current = None
    if current is not None:
        windows.append(_window(current, end, rules, wide))
    return windows


def _window(
    current: tuple[str, float], end: float, rules: dict[str, bool], wide: bool
) -> PhaseWindow:
    name, start = current
    return PhaseWindow(name, start, end, rules.get(name, False) or wide)


def label(t: int, windows: Sequence[PhaseWindow]) -> str:
    """The phase in force as second `t` began; warm-up before the first, cool-down after."""
    for w in windows:
        if w.start <= t + 1e-6 < w.end:
            return w.name
    if not windows or t < windows[0].start:
        return WARMUP
    return COOLDOWN


def build_rows(
    first: int,
    last: int,
    client: dict[int, View],
    proxy: dict[int, View],
    windows: Sequence[PhaseWindow],
    prom: dict[str, dict[int, float]] | None = None,
    users: dict[int, int] | None = None,
    client_cohorts: dict[int, dict[str, View]] | None = None,
    proxy_cohorts: dict[int, dict[str, View]] | None = None,
) -> list[Second]:
    """One `Second` per whole second of [first, last]. With cohort views (a control group),
    every second gets both cohorts in each view that has a split at all, so a second without
    requests of one cohort reads zero, not "no split"."""
    rows = []
    names = _names(client_cohorts), _names(proxy_cohorts)
    for t in range(first, last + 1):
        s = Second(t, label(t, windows), client.get(t, View()), proxy.get(t, View()))
        s.client_cohorts = _split((client_cohorts or {}).get(t, {}), names[0])
        s.proxy_cohorts = _split((proxy_cohorts or {}).get(t, {}), names[1])
        for name, values in (prom or {}).items():
            if t in values and math.isfinite(values[t]):
                s.prom[name] = values[t]
        if users is not None:
            s.users = users.get(t)
        rows.append(s)
    return rows


def _names(by_second: dict[int, dict[str, View]] | None) -> tuple[str, ...]:
    found: set[str] = set()
    for split in (by_second or {}).values():
        found.update(split)
    return tuple(sorted(found))


def _split(split: dict[str, View], names: tuple[str, ...]) -> dict[str, View]:
    return {n: split.get(n, View()) for n in names}


MAX_HURT = 10_000  # seconds kept per client read back (the proxy keeps 100)


def client_records(body: Any) -> list[ClientRecord]:
    """`GET /stats/clients` (or a saved clients.json): `{"clients": [{cohort, first, last,
    hurt}]}` as records; a malformed entry is skipped, never a crash."""
    items = body.get("clients") if isinstance(body, dict) else None
    out: list[ClientRecord] = []
    for c in items if isinstance(items, list) else []:
        try:
            hurt = c.get("hurt") or []
            out.append(
                ClientRecord(
                    str(c.get("cohort") or ""),
                    _count(c["first"]),
                    _count(c["last"]),
                    tuple(_count(h) for h in hurt[:MAX_HURT]),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def clients_to_json(clients: Sequence[ClientRecord]) -> dict[str, Any]:
    return {
        "clients": [
            {"cohort": c.cohort, "first": c.first, "last": c.last, "hurt": list(c.hurt)}
            for c in clients
        ]
    }
