"""Per-request cost of a cohort rule against a plain rule in the same run: what the proxy pays
per request for `Engine.decide()` and the cohort label its `RequestDone` carries, and for the
per-second stats of a labelled request.

The cohort rule matches the same requests as the plain one (`/api/**`) and adds
`cohort: {share, by: header X-Chaos-User}`. Users cycle through a pool: a small pool keeps every
user's membership in the gate's memo (the steady state of a load test), a pool larger than the
memo hashes on every request (the worst case).

Usage: .venv/bin/python bench/cohort.py
"""

from __future__ import annotations

import itertools
import timeit
from collections.abc import Callable

from multidict import CIMultiDict, CIMultiDictProxy

from chaosproxy.common.events import EventBus, RequestDone
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.engine.core import Engine
from chaosproxy.engine.matching import MEMO_SIZE
from chaosproxy.observe.stats import Stats

N = 200_000


class View:
    __slots__ = ("headers",)
    method = "GET"
    path = "/api/items/3"
    query_string = ""
    client_ip = "127.0.0.1"

    def __init__(self, user: str) -> None:
        self.headers = CIMultiDictProxy(
            CIMultiDict({"Host": "shop", "User-Agent": "Mozilla/5.0", "X-Chaos-User": user})
        )


def engine(match: str) -> Engine:
    text = (
        "name: bench\nseed: 1\nphases:\n  - name: p\n    duration: 1h\n    rules:\n"
        f"      - {{match: {match}, fault: {{error: {{status: 503}}}}}}\n"
    )
    e = Engine(EventBus())
    e.start_scenario(load_scenario_text(text))
    return e


def per_request(e: Engine, users: int) -> float:
    views = itertools.cycle([View(f"user-{i:06d}") for i in range(users)])

    def one() -> None:
        view = next(views)
        e.decide(view)
        e.label(view)

    return best(one)


def best(fn: Callable[[], None]) -> float:
    """Microseconds per call, the best of three runs (the machine is shared)."""
    return min(timeit.timeit(fn, number=N) for _ in range(3)) / N * 1e6


def stats_cost(cohort: str) -> float:
    s = Stats()
    done = RequestDone(1000.0, "GET", 200, 0.01, 0.01, None, False, "u", None, "run", cohort)
    return best(lambda: s.on_request(done))


def main() -> None:
    plain = per_request(engine("{path: '/api/**'}"), 1000)
    cases = {
        "cohort 100%, 1,000 users (memo)": per_request(
            engine("{path: '/api/**', cohort: {share: 1, by: header X-Chaos-User}}"), 1000
        ),
        "cohort 25%, 1,000 users (memo)": per_request(
            engine("{path: '/api/**', cohort: {share: 0.25, by: header X-Chaos-User}}"), 1000
        ),
        f"cohort 100%, {2 * MEMO_SIZE:,} users (hash)": per_request(
            engine("{path: '/api/**', cohort: {share: 1, by: header X-Chaos-User}}"),
            2 * MEMO_SIZE,
        ),
    }
    print(f"plain rule, every request faulted: {plain:6.2f} us per request (decide + label)")
    for name, us in cases.items():
        print(f"{name:<34} {us:6.2f} us per request ({us / plain:4.2f}x plain)")
    unlabelled, labelled = stats_cost(""), stats_cost("fault")
    print(
        f"per-second stats of one request: {unlabelled:5.2f} us unlabelled, {labelled:5.2f} us "
        f"labelled ({labelled / unlabelled:4.2f}x)"
    )


if __name__ == "__main__":
    main()
