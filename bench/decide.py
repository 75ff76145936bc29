"""Per-request decision cost: `Engine.decide()` with 50 rules loaded, against an idle scenario
(a phase without rules) measured in the same run.

Usage: .venv/bin/python bench/decide.py
"""

from __future__ import annotations

import timeit

from multidict import CIMultiDict, CIMultiDictProxy

from chaosproxy.common.events import EventBus
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.engine.core import Engine

N = 200_000


class View:
    method = "GET"
    path = "/api/items/3"
    query_string = ""
    client_ip = "127.0.0.1"
    headers = CIMultiDictProxy(CIMultiDict({"Host": "shop", "User-Agent": "Mozilla/5.0"}))


def engine(rules: str) -> Engine:
    text = f"name: bench\nphases:\n  - name: p\n    duration: 1h\n{rules}"
    e = Engine(EventBus())
    e.start_scenario(load_scenario_text(text))
    return e


def per_call(e: Engine, view: object) -> float:
    return timeit.timeit(lambda: e.decide(view), number=N) / N * 1e6  # type: ignore[arg-type]


def main() -> None:
    fifty = "    rules:\n" + "\n".join(
        f"      - {{name: r{i}, match: {{methods: [POST], path: '/svc{i}/**', "
        f"headers: {{x-tenant: t{i}}}}}, fault: {{error: {{status: 503}}}}}}"
        for i in range(50)
    )
    same_route = "    rules:\n" + "\n".join(
        f"      - {{name: r{i}, match: {{path: '/api/**', headers: {{x-tenant: t{i}}}}}, "
        f"fault: {{error: {{status: 503}}}}}}"
        for i in range(50)
    )
    idle = per_call(engine(""), View())
    cases = {
        "50 rules on other methods and routes": per_call(engine(fifty), View()),
        "50 rules on this route, none matching": per_call(engine(same_route), View()),
    }
    print(f"idle scenario (no rules in the phase): {idle:6.2f} us per decision")
    for name, us in cases.items():
        print(f"{name:<40} {us:6.2f} us per decision ({us / idle:4.1f}x idle)")


if __name__ == "__main__":
    main()
