"""Rules that match nothing while traffic flows: a scenario replayed in front of a service whose
paths it does not know injects nothing, and says so only if someone reads `ctl status`.

A phase entry with rules is watched from its first request: when `REQUESTS` requests have gone
by over at least `SECONDS` seconds and not one matched any of the phase's rules (their `match`;
load conditions and probabilities aside), a warning is made, once per phase of a run. Both bounds
must be passed, so neither a burst (a rare route not hit in 200 requests at 1,000 rps) nor a
trickle warns too early. Once a request matched, or the warning was made, the phase entry is no
longer watched: what the proxy loop pays per request is then two attribute reads.

`decide_run` feeds `saw()`; the warning is queued in `pending` and the engine's ticker (woken by
`poke`) logs it and emits `rules_unmatched`, since `decide()` never emits. `warnings` keeps
every warning of the run for `/status`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaosproxy.engine.rule_match import Counter

if TYPE_CHECKING:
    from chaosproxy.engine.timeline import Position

REQUESTS = 200  # requests of a phase entry that matched no rule...
SECONDS = 10.0  # ...over at least this long, before the warning
TRACKED_PATHS = 32  # distinct paths counted while watching (the warning names the top ones)
SHOWN_PATHS = 5
SHOWN_RULES = 5
MAX_PATH = 80  # characters of a path shown


class Unmatched:
    """The watch of one run (see the module doc). Proxy loop only, but for `status()`."""

    __slots__ = (
        "counters",
        "entry",
        "paths",
        "pending",
        "poke",
        "requests",
        "since",
        "start",
        "wall",
        "warned",
        "warnings",
        "watching",
    )

    def __init__(self, counters: list[Counter], start: float, wall: float) -> None:
        self.counters = counters  # the run's rule counters: "matched since" in the status
        self.start = start  # the run's monotonic origin and its wall-clock time
        self.wall = wall
        self.entry = float("nan")  # monotonic start of the phase entry watched (nan: none yet)
        self.watching = False
        self.requests = 0
        self.since = 0.0
        self.paths: dict[str, int] = {}
        self.warned: set[int] = set()  # phase indexes already warned about
        self.warnings: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # for the ticker to log and emit
        self.poke: Callable[[], None] | None = None

    def saw(self, pos: Position, hit: bool, path: str, now: float) -> None:
        """One request decided in the phase entry at `pos`; `hit`: some rule's match held."""
        if self.entry != pos.start:
            self.entry = pos.start
            self.watching = pos.phase.index not in self.warned
            self.requests = 0
            self.since = now
            self.paths = {}
        if not self.watching:
            return
        if hit:
            self.watching = False
            self.paths = {}
            return
        self.requests += 1
        paths = self.paths
        n = paths.get(path)
        if n is not None:
            paths[path] = n + 1
        elif len(paths) < TRACKED_PATHS:
            paths[path] = 1
        if self.requests >= REQUESTS and now - self.since >= SECONDS:
            self._warn(pos, now)

    def _warn(self, pos: Position, now: float) -> None:
        phase = pos.phase
        self.watching = False
        self.warned.add(phase.index)
        shown = list(dict.fromkeys(r.shown for r in phase.rules))
        top = [
            (_shown_path(p), n)
            for p, n in sorted(self.paths.items(), key=lambda kv: -kv[1])[:SHOWN_PATHS]
        ]
        self.paths = {}
        seconds = now - self.since
        warning = {
            "kind": "rules_unmatched",
            "t": self.wall + (now - self.start),
            "phase": phase.name,
            "cycle": pos.cycle,
            "requests": self.requests,
            "seconds": round(seconds, 3),
            "rules": [r.id for r in phase.rules],
            "match": shown,
            "paths": [{"path": p, "requests": n} for p, n in top],
            "message": message(shown, self.requests, seconds, top),
            "slots": [r.slot for r in phase.rules],
            "matched_before": sum(self.counters[r.slot].matched for r in phase.rules),
        }
        self.warnings.append(warning)
        self.pending.append(warning)
        if self.poke is not None:
            self.poke()

    def status(self) -> list[dict[str, Any]]:
        """Every warning of the run, JSON-ready, with how many requests the phase's rules
        matched since (0: still nothing)."""
        out = []
        for w in list(self.warnings):
            since = sum(self.counters[s].matched for s in w["slots"]) - w["matched_before"]
            out.append(public(w) | {"matched_since": since})
        return out


def public(warning: dict[str, Any]) -> dict[str, Any]:
    """A warning without its bookkeeping (the details of its event and status entry)."""
    return {k: v for k, v in warning.items() if k not in ("slots", "matched_before")}


def message(shown: list[str], requests: int, seconds: float, top: list[tuple[str, int]]) -> str:
    """`rule /api/** matched none of the last 200 requests in 10 s; paths seen: /v1/items
    (150), /v1/users (50)`."""
    rules = ", ".join(shown[:SHOWN_RULES])
    if len(shown) > SHOWN_RULES:
        rules += f" and {len(shown) - SHOWN_RULES} more"
    noun = "rule" if len(shown) == 1 else "rules"
    seen = ", ".join(f"{p} ({n})" for p, n in top)
    return (
        f"{noun} {rules} matched none of the last {requests} requests in {seconds:.0f} s"
        f"; paths seen: {seen}"
    )


def _shown_path(path: str) -> str:
    """A request's path fit for a log line: control characters escaped (a path is what any
    client sent), at most MAX_PATH characters."""
    if not path.isprintable():
        path = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 1] + "…"
