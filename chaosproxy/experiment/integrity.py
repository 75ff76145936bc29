"""Did the run go as planned? Pure functions from what a run recorded to "problem" sentences.

A verdict is only as good as the load it judged: a run whose load died, whose scenario was cut
short or whose users never came is INCONCLUSIVE, never PASS (`verdict.judge(problems=...)`).
The runner notices the first kind while it runs; the rest are read off the data after the load.

While it runs (`runner.py` builds the sentences with the functions here):
- **Load died**: a Locust process (master or worker) exited before the planned end, or with a
  non-zero code at any time. The master's exit ends the run at once (nothing is left to
  measure); a worker's leaves the run going with fewer users.
- **Proxy lost**: a proxy the runner started exited (the run ends), or a proxy's admin API did
  not answer two polls in a row (about two seconds), or it answered as another instance (it
  restarted: its scenario is gone). After the load: a proxy whose series cannot be fetched.

After the load:
- **Cut short** (`cut_short`): a proxy reported `scenario_stopped` before the run itself stopped
  it (the end of the load, an interruption) and not for a halt check (stops at or after the halt,
  less one second of clock skew, are the halt's); or the scenario never started there. The
  sentence names the phase, how far it got, and the guardrail or replacement that stopped it.
- **Users never reached** (`users_short`): Locust's reported user count stayed below the plan
  for a whole phase: the most users it reported in the phase is below the most the plan needed
  by the time of one of those reports. "Needed at t" is what Locust could have reached following
  `plan.py`'s stages at their spawn rates from the warm-up users, at its lowest over the
  `SLACK` seconds before t (the ramp's own time is allowed, and the lag of the shape, which
  re-reads the plan once a second, of the status line, written once a second, and of a master's
  count of its workers' users). A phase with no status line at all is left to the other rules.
- **Gap** (`gaps`): a run of seconds inside the scenario (load planned, not yet stopped) in which
  no client request started and none recorded was still in flight (a request started in second
  s and in latency bucket b is taken to run until s + 1 + the bucket's upper bound, so a slow
  fault is not a gap, and the first empty second after any request is taken as covered). It
  is a problem when it is at least `MIN_GAP` seconds long and long enough that, at the rate the
  run showed, seeing nothing was very unlikely: with `rate` the run's client requests per
  user-second (all requests recorded up to the end of the window, over the users Locust
  reported each second, warm-up included) and `users` the fewest planned users in the gap, its
  length n must satisfy `rate * users * n >= EMPTY_ODDS` (Poisson: P(no request in n s) =
  e^-7 < 0.1 %). At 10 req/s that is 3 s; at 0.5 req/s, 14 s. A gap that runs to the end of the
  window only counts when Locust also stopped writing its status lines there (else it is
  requests still in flight when the load stopped, which were never recorded).

"The window" ends at the planned end of the load (moved earlier by a halt), when the load
stopped, or, after a Locust process died, at its last status line. A halt is part of the plan:
its stop of the scenario and the earlier end of the load are no problem, and the halted check
is judged on the data up to the halt. An interrupted run (SIGINT) is recorded as `interrupted`
by the runner, not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chaosproxy.observe.stats import BOUNDS

SLACK = 3  # seconds Locust's user count may lag the plan
MIN_GAP = 3  # seconds: never call a shorter run of empty seconds a gap
EMPTY_ODDS = 7.0  # expected requests a gap must have missed: P(none by chance) = e^-7
SKEW = 1.0  # seconds of clock difference allowed between a proxy and the runner


class Window(Protocol):
    """A phase as the proxy ran it (`verdict.PhaseWindow`)."""

    @property
    def name(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


class Counts(Protocol):
    """One second of the client view (`View`): requests started, latency buckets."""

    @property
    def requests(self) -> int: ...
    @property
    def hist(self) -> Mapping[int, int]: ...


@dataclass(frozen=True)
class Plan:
    """What the run meant to do: the scenario from `at`, the load `plan.py` planned."""

    at: float  # the scenario's start (wall clock)
    phases: tuple[tuple[str, float], ...]  # (name, duration) in order
    warm: tuple[int, float]  # warm-up (users, spawn rate)
    stages: tuple[tuple[float, float, float], ...] = ()  # (at, users, spawn rate), sorted

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.phases)

    def phase_at(self, t: float) -> str | None:
        """The phase planned at wall-clock `t`; None before the start or after the last."""
        offset = t - self.at
        if offset < 0:
            return None
        start = 0.0
        for name, d in self.phases:
            if offset < start + d:
                return name
            start += d
        return None

    def after(self, phase: str | None) -> list[str]:
        """The phases planned after `phase` (none after an unknown one)."""
        names = [n for n, _ in self.phases]
        return names[names.index(phase) + 1 :] if phase in names else []

    def target(self, t: float) -> tuple[float, float]:
        """(users, spawn rate) the shape asks for at `t`."""
        users, rate = float(self.warm[0]), self.warm[1]
        for at, n, r in self.stages:
            if at > t:
                break
            users, rate = n, r
        return users, rate

    def reachable(self, first: int, last: int) -> dict[int, float]:
        """Second -> users Locust could run by then, following the plan at its spawn rates
        from the warm-up users (which the runner saw running before the scenario started)."""
        out: dict[int, float] = {}
        users = float(self.warm[0])
        for t in range(min(first, int(self.at)), last + 1):
            if t >= first:
                out[t] = users
            goal, rate = self.target(t)
            step = max(rate, 0.0)
            users = min(goal, users + step) if goal >= users else max(goal, users - step)
        return out


def when(plan: Plan | None, t: float) -> str:
    """'12s into the scenario, during phase outage' (or before it, or after its last phase)."""
    if plan is None or t < plan.at:
        return "before the scenario started"
    phase = plan.phase_at(t)
    where = f"during phase {phase}" if phase else "after its last phase"
    return f"{t - plan.at:.0f}s into the scenario, {where}"


def load_exited(name: str, code: int | None, plan: Plan | None, t: float) -> str:
    """A Locust process (`locust`, `locust-master`, `locust-worker-N`) exited early."""
    who = {"locust": "Locust", "locust-master": "the Locust master"}.get(name)
    if who is None:
        who = "Locust worker " + name.removeprefix("locust-worker-")
        rest = "the rest of the scenario ran with fewer users than planned"
    elif plan is None or t < plan.at:
        rest = "the scenario had no load"
    elif (phase := plan.phase_at(t)) is not None:
        rest = f"the rest of the scenario ({', '.join([phase, *plan.after(phase)])}) had no load"
    else:
        rest = "the cool-down had no load"
    return f"{who} exited (code {code}) {when(plan, t)}; {rest}"


def proxy_exited(url: str, code: int | None, plan: Plan | None, t: float) -> str:
    return f"the proxy the run started ({url}) exited (code {code}) {when(plan, t)}"


def proxy_unreachable(url: str, plan: Plan | None, t: float, reason: str) -> str:
    return f"the proxy at {url} stopped answering {when(plan, t)} ({reason})"


def proxy_restarted(url: str, plan: Plan | None, t: float, before: str, now: str) -> str:
    return (
        f"the proxy at {url} restarted {when(plan, t)} (instance {before}, now {now}); "
        "the scenario no longer ran there"
    )


def no_series(url: str, error: object) -> str:
    return f"the proxy at {url} gave no per-second series after the run: {error}"


def cut_short(
    url: str,
    scenario: str,
    events: Sequence[Mapping[str, Any]],
    plan: Plan,
    stopped_by_run: float,
    halted_at: float | None = None,
) -> list[str]:
    """The scenario ended early on this proxy for a reason other than the run's own stop
    (at `stopped_by_run`, runner clock) or a halt (at `halted_at`); or it never started."""
    evs = sorted(
        (e for e in events if e.get("scenario") in (scenario, "", None)),
        key=lambda e: (e["t"], e["seq"]),
    )
    excused = stopped_by_run - SKEW
    if halted_at is not None:
        excused = min(excused, halted_at - SKEW)
    if not any(e["kind"] == "scenario_started" for e in evs):
        if stopped_by_run > plan.at + SKEW:
            return [f"the scenario never started on {url}"]
        return []
    durations = dict(plan.phases)
    starts: dict[str, float] = {}
    out = []
    for ev in evs:
        kind = ev["kind"]
        if kind == "phase_changed":
            starts[ev["phase"]] = float(ev["t"])
        elif kind == "scenario_stopped" and float(ev["t"]) < excused:
            phase, t = ev.get("phase") or "", float(ev["t"])
            ran = t - starts.get(phase, plan.at)
            planned = durations.get(phase)
            of = f" (of {planned:g}s planned)" if planned is not None else ""
            text = f"phase {phase} was cut short at {ran:.0f}s{of} on {url}: {_why(ev, evs)}"
            later = plan.after(phase)
            if later:
                text += f"; {', '.join(later)} never ran"
            out.append(text)
    return out


def _why(stop: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> str:
    details = stop.get("details") or {}
    if details.get("reason") == "replaced":
        return "another scenario replaced it"
    for ev in events:
        if ev["kind"] == "guardrail_tripped" and abs(float(ev["t"]) - float(stop["t"])) <= SKEW:
            d = ev.get("details") or {}
            return f"guardrail {d.get('guardrail', '?')} tripped ({d.get('reason', '')})"
    return "stopped from outside the run (chaosproxy ctl stop, the admin API)"


def users_short(
    plan: Plan, windows: Sequence[Window], users_at: Mapping[int, int], until: float
) -> list[str]:
    """Phases in which Locust's user count never reached what the plan allowed."""
    if not windows:
        return []
    first = math.ceil(min(w.start for w in windows))
    last = int(until) - 1
    if last < first:
        return []
    can = plan.reachable(first - SLACK, last)
    out = []
    for w in windows:
        lo, hi = math.ceil(w.start), min(math.ceil(w.end), last + 1)
        reports = [(t, users_at[t]) for t in range(lo, hi) if t in users_at]
        if not reports:
            continue
        need = max(min(can[s] for s in range(t - SLACK, t + 1)) for t, _ in reports)
        most = max(u for _, u in reports)
        if most < math.floor(need):
            planned = max(plan.target(t)[0] for t in range(lo, hi))
            out.append(
                f"Locust's users stayed below the plan for all of phase {w.name}: "
                f"at most {most} of the planned {planned:g}"
            )
    return out


def gaps(
    plan: Plan,
    windows: Sequence[Window],
    client: Mapping[int, Counts],
    users_at: Mapping[int, int],
    until: float,
) -> list[str]:
    """Runs of seconds with no client request where the run's own rate says there should
    have been some (the module docstring has the rule)."""
    first, last = math.ceil(plan.at), int(until) - 1
    if last < first:
        return []
    lived = [t for t in users_at if t <= last and users_at[t] > 0]
    user_seconds = sum(users_at[t] for t in lived)
    sent = sum(v.requests for t, v in client.items() if t <= last)
    if not user_seconds or not sent:
        return []  # nothing to expect a rate from: the other rules speak
    rate = sent / user_seconds
    reach = -math.inf  # every recorded request started before t ends by then
    for s in sorted(t for t in client if t < first):
        reach = max(reach, _ends(s, client[s]))
    out: list[str] = []
    run: list[int] = []
    for t in range(first, last + 2):  # one past the end closes the last run
        v = client.get(t)
        empty = t <= last and (v is None or not v.requests) and reach <= t
        planned = plan.target(t)[0] if t <= last else 0.0
        if empty and planned > 0:
            run.append(t)
        else:
            if run:
                out.extend(_gap(plan, windows, run, rate, t > last, users_at))
            run = []
        if v is not None and v.requests:
            reach = max(reach, _ends(t, v))
    return out


def _ends(s: int, v: Counts) -> float:
    """When the slowest request started in second `s` ended, at the latest."""
    top = max((b for b, c in v.hist.items() if c), default=0)
    return s + 1 + (BOUNDS[top] if top < len(BOUNDS) else math.inf)


def _gap(
    plan: Plan,
    windows: Sequence[Window],
    run: list[int],
    rate: float,
    trailing: bool,
    users_at: Mapping[int, int],
) -> list[str]:
    users = min(plan.target(t)[0] for t in run)
    expected = rate * users * len(run)
    if len(run) < MIN_GAP or expected < EMPTY_ODDS:
        return []
    if trailing and any(users_at.get(t, 0) > 0 for t in run):
        return []  # Locust still ran users: requests in flight as the load stopped
    phase = next((w.name for w in windows if w.start <= run[0] < w.end), None)
    where = f" (phase {phase})" if phase else ""
    return [
        f"no client request for {len(run)}s from {run[0] - plan.at:.0f}s into the scenario"
        f"{where}, where about {expected:.0f} were expected"
    ]
