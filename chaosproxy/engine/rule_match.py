"""One rule against one request: the filter (`match`, `when`) and the draw (count pattern,
probability, weighted outcome), shared by ad-hoc and scenario rules.

Seeds: the dice for the k-th request that matches rule r are a hash of (seed, scenario, scope,
r, cycle, k), where scope is the phase name (or `*` for a scenario-wide rule, whose count runs
across phases). No shared random stream: traffic on one route cannot shift another's dice.
"""

from __future__ import annotations

import hashlib
import random

from chaosproxy.engine.compile import CompiledOutcome, CompiledRule
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.engine.matching import RequestView

_MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash step."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def _unit(x: int) -> float:
    return (x >> 11) * (1.0 / (1 << 53))


def seed_key(*parts: object) -> int:
    """A stable 64-bit key from the seed tuple (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class Counter:
    """Mutable per-rule state beside the immutable compiled rule."""

    __slots__ = ("base", "injected", "k", "matched", "window")

    def __init__(self) -> None:
        self.matched = 0  # totals since the scenario started (for status)
        self.injected = 0
        self.k = 0  # matches in the current count window (phase entry, or whole run if wide)
        self.base = 0  # seed key of the current window
        self.window: tuple[int, int] | None = None  # (cycle, phase index) `k` counts in


def admits(rule: CompiledRule, view: RequestView, load: LoadSignals) -> bool:
    """The rule's `match` and `when` hold for this request under the current load."""
    return (rule.match is None or rule.match(view)) and when_holds(rule, load)


def when_holds(rule: CompiledRule, load: LoadSignals) -> bool:
    """The rule's `when` (load conditions) holds now: `admits` without the `match`."""
    if rule.inflight_above is not None and load.inflight <= rule.inflight_above:
        return False
    return rule.rps_above is None or load.rps(rule.rps_window) > rule.rps_above


def fires(rule: CompiledRule, k: int) -> bool:
    """Count-based patterns over the k-th matching request (1-based)."""
    if rule.first is not None and k > rule.first:
        return False
    if rule.every is not None and k % rule.every:
        return False
    return not (rule.after is not None and k <= rule.after)


def draw(
    rule: CompiledRule, c: Counter, p: float, rng: random.Random | None
) -> tuple[CompiledOutcome | None, int]:
    """A matching request: count it, apply first/every/after and the probability `p`, pick a
    weighted outcome. Dice come from the counter's seed key, or from `rng` when the run is
    unseeded. Returns the outcome (None: no fault) and the seed state."""
    c.matched += 1
    c.k += 1
    if not fires(rule, c.k):
        return None, 0
    if rng is None:
        x = mix((c.base + c.k * GOLDEN) & _MASK)
        u = _unit(x)
    else:
        x = 0
        u = rng.random()
    if p < 1.0 and u >= p:
        return None, x
    outcomes = rule.outcomes
    chosen = outcomes[0]
    if len(outcomes) > 1:
        if rng is None:
            x = mix(x ^ GOLDEN)
            v = _unit(x)
        else:
            v = rng.random()
        for o in outcomes:
            if v < o.cum:
                chosen = o
                break
    c.injected += 1
    return chosen, x
