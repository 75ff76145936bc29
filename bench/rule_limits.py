"""What the rule limits bound: the per-request decision against the rule count, and a
proxy's memory and request latency after the uploads that used to take it from 61 to 886 MiB.

Prints ratios (and the numbers behind them); asserts nothing about time.

1. `Engine.decide()` in process: 1000 rules against 10, once with every rule on a route of its
   own (indexed by first path segment: the ratio should stay near 1) and once with rules that
   name no route (walked one by one: linear, which the 1000-rule limit bounds).
2. A real `chaosproxy run` (and the demo service as its upstream): RSS after the attack (64
   uploads of 4.5 KB YAML that expand to 5,000 rules each: all refused now), after filling the
   uploads to their limit (10,000 rules in all), and the median latency of proxied requests
   while a 1000-rule scenario runs, against none.

Usage: .venv/bin/python bench/rule_limits.py
"""

from __future__ import annotations

import re
import statistics
import sys
import time
import timeit
import urllib.error
import urllib.request
from pathlib import Path

from _procs import free_port, started
from multidict import CIMultiDict, CIMultiDictProxy

from chaosproxy.common.events import EventBus
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.engine.core import Engine

N = 20_000


class View:
    method = "GET"
    path = "/svc5/items/3"
    query_string = ""
    client_ip = "127.0.0.1"
    headers = CIMultiDictProxy(CIMultiDict({"Host": "shop", "User-Agent": "Mozilla/5.0"}))


def scenario_text(n: int, routed: bool, name: str = "bench") -> str:
    """`n` rules none of which matches View: each on a route of its own (`/svcI/**`, the
    request's `/svc5` one limited to POST), or each on a header value."""
    if routed:
        rules = [
            f"      - {{name: r{i}, match: {{path: '/svc{i}/**', methods: [POST]}}, "
            "fault: {error: {status: 503}}}"
            for i in range(n)
        ]
    else:
        rules = [
            f"      - {{name: r{i}, match: {{headers: {{x-tenant: t{i}}}}}, "
            "fault: {error: {status: 503}}}"
            for i in range(n)
        ]
    head = f"name: {name}\nphases:\n  - name: p\n    duration: 1h\n    rules:\n"
    return head + "\n".join(rules) + "\n"


def per_decision(text: str) -> float:
    e = Engine(EventBus())
    e.start_scenario(load_scenario_text(text))
    view = View()
    return timeit.timeit(lambda: e.decide(view), number=N) / N * 1e6  # type: ignore[arg-type]


def decisions() -> None:
    print("1. Engine.decide() per request (in process)")
    for routed, what in ((True, "rules on routes of their own"), (False, "rules on no route")):
        small, big = (
            per_decision(scenario_text(10, routed)),
            per_decision(scenario_text(1000, routed)),
        )
        print(
            f"   {what:<30} 10 rules {small:7.2f} us, 1000 rules {big:7.2f} us: "
            f"ratio {big / small:6.1f}"
        )


def call(base: str, method: str, path: str, data: bytes | None = None) -> int:
    req = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else float("nan")


def expanding(name: str, phases: int, per_phase: int = 50) -> bytes:
    """Aliases make `phases` times `per_phase` rules from a few kilobytes of YAML."""
    rules = ", ".join(["&r {fault: {error: {status: 503}}}", *["*r"] * (per_phase - 1)])
    lines = [f"name: {name}", "phases:", f"  - {{name: p0, duration: 1h, rules: &rs [{rules}]}}"]
    lines += [f"  - {{name: p{i}, duration: 1h, rules: *rs}}" for i in range(1, phases)]
    return ("\n".join(lines) + "\n").encode()


def latency_ms(url: str, n: int = 400) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def proxy() -> None:
    print("2. a real `chaosproxy run`")
    up_port, port, admin_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{admin_port}"
    service = [
        sys.executable,
        "-m",
        "chaosproxy",
        "demo-service",
        "--listen",
        f"127.0.0.1:{up_port}",
    ]
    run = [
        sys.executable, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{up_port}",
        "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin_port}",
    ]  # fmt: skip
    with started(service, up_port), started(run, admin_port) as proc:
        url = f"http://127.0.0.1:{port}/api/items/1"
        latency_ms(url, 200)  # warm up
        start = rss_mib(proc.pid)
        idle = latency_ms(url)
        refused = [
            call(base, "PUT", f"/scenarios/a{i}", expanding(f"a{i}", 100)) for i in range(64)
        ]
        after_attack = rss_mib(proc.pid)
        kept = [call(base, "PUT", f"/scenarios/k{i}", expanding(f"k{i}", 20)) for i in range(11)]
        full = rss_mib(proc.pid)
        text = scenario_text(1000, routed=False, name="big").encode()
        assert call(base, "PUT", "/scenarios/big", text) == 409  # the uploads are full
        call(base, "DELETE", "/scenarios/k0")
        assert call(base, "PUT", "/scenarios/big", text) == 201
        assert call(base, "POST", "/scenarios/big/start") == 201
        busy = latency_ms(url)
        print(f"   RSS at start                                    {start:7.1f} MiB")
        print(
            f"   after 64 uploads of 5,000 rules each ({sorted(set(refused))} answers)  "
            f"{after_attack:7.1f} MiB (ratio {after_attack / start:.2f})"
        )
        print(
            f"   uploads full: 10 x 1000 rules, the 11th {kept[-1]}       "
            f"{full:7.1f} MiB (ratio {full / start:.2f})"
        )
        print(
            f"   median proxied request: no scenario {idle:.2f} ms, 1000 rules on no route "
            f"{busy:.2f} ms (ratio {busy / idle:.2f})"
        )


def main() -> None:
    decisions()
    proxy()


if __name__ == "__main__":
    main()
