"""HTTP/2 pass-through benchmark: h2load through chaosproxy over h2c, against the HTTP/1.1 path
and a minimal HTTP/2 proxy, in alternating rounds of one run.

One nginx (one process) serves the same bodies over HTTP/1.1 and over h2c on two ports. Each
round measures, back to back (h2load on core 1 beside nginx, every proxy on core 0):

  direct h2        h2load h2c  -> nginx h2c                  the generator's own ceiling
  direct h1        h2load --h1 -> nginx HTTP/1.1
  yardstick h2     h2load h2c  -> h2_yardstick_proxy.py -> h2c  a minimal h2 proxy, no features
  chaosproxy h2    h2load h2c  -> chaosproxy --upstream-h2 -> h2c
  chaosproxy h2>1  h2load h2c  -> chaosproxy -> HTTP/1.1     plain HTTP/2 requests' default
  chaosproxy h1    h2load --h1 -> chaosproxy -> HTTP/1.1     the HTTP/1.1 path (same process)

HTTP/2 cells: `--conns` connections x `--streams` concurrent streams; HTTP/1.1 cells: `--conns`
keep-alive connections, one request at a time (no pipelining, as HTTP/1.1 clients run). Both
chaosproxy processes run a scenario whose rules never match (the decision is paid for). Prints
req/s, p50/p99, CPU per request of the measured process, per round and as medians, then the
ratios (medians over rounds, with their range) and each process's RSS.

    python bench/h2_passthrough.py                 # small and 64 KiB, 3 rounds, ~2 minutes
    python bench/h2_passthrough.py --bodies small --rounds 5
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from _h2load import h2load, nginx_argv, require_tools, workdir
from _procs import free_port, pinned, started
from passthrough import NO_MATCH_SCENARIO, cpu_seconds, machine, rss_mib

HERE = Path(__file__).resolve().parent
PY = sys.executable

# (target, its process, client protocol): the order of a round.
TARGETS = [
    ("direct h2", "nginx", "h2"),
    ("direct h1", "nginx", "h1"),
    ("yardstick h2", "yardstick", "h2"),
    ("chaosproxy h2", "chaosproxy-h2up", "h2"),
    ("chaosproxy h2>1", "chaosproxy", "h2"),
    ("chaosproxy h1", "chaosproxy", "h1"),
]
# (numerator, denominator, what the ratio tells)
RATIOS = [
    ("chaosproxy h2", "yardstick h2", "what chaosproxy's features cost on HTTP/2 (both h2c up)"),
    ("chaosproxy h2>1", "chaosproxy h1", "HTTP/2 clients against HTTP/1.1 ones, same upstream"),
    ("chaosproxy h2", "chaosproxy h2>1", "upstream over h2c against over HTTP/1.1"),
]


@dataclass
class Cell:
    target: str
    body: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    done: int
    cpu_us: float  # CPU of the measured process per request (direct: nginx's)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="measured time of each cell")
    ap.add_argument("--warm", type=float, default=1.0, help="warm-up before each cell (s)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--streams", type=int, default=10, help="concurrent streams per connection")
    ap.add_argument("--bodies", default="small,64k")
    ap.add_argument("--json", metavar="FILE", help="also write every cell as JSON")
    a = ap.parse_args()
    require_tools()
    bodies = a.bodies.split(",")
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"h2load -t1 on core 1 beside nginx (one process); proxies on core 0; HTTP/2 cells "
        f"c={a.conns} x m={a.streams}, HTTP/1.1 cells c={a.conns} x 1; {a.warm:g} s warm-up, "
        f"{a.seconds:g} s measured per cell; {a.rounds} alternating rounds",
        flush=True,
    )
    work = workdir("h2bench")
    scenario = work / "no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    p = {n: free_port() for n in ("h1", "h2", "ys", "cp", "cpa", "cp2", "cp2a")}

    def chaos(port: int, admin: int, upstream: int, *extra: str) -> list[str]:
        return [
            PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{upstream}",
            "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
            "--log-level", "warning", "--scenario", str(scenario), "--reload-interval", "0",
            *extra,
        ]  # fmt: skip

    yardstick = [PY, str(HERE / "h2_yardstick_proxy.py"), "--listen", f"127.0.0.1:{p['ys']}",
                 "--upstream", f"http://127.0.0.1:{p['h2']}"]  # fmt: skip
    ports = {"nginx": p["h2"], "yardstick": p["ys"], "chaosproxy-h2up": p["cp2"],
             "chaosproxy": p["cp"]}  # fmt: skip
    cells: list[Cell] = []
    with (
        started(pinned(1, nginx_argv(p["h1"], p["h2"], work / "nginx")), p["h1"]) as ng,
        started(pinned(0, yardstick), p["ys"], cwd=str(HERE)) as ys,
        started(pinned(0, chaos(p["cp2"], p["cp2a"], p["h2"], "--upstream-h2")), p["cp2"]) as c2,
        started(pinned(0, chaos(p["cp"], p["cpa"], p["h1"])), p["cp"]) as c1,
    ):
        pids = {"nginx": ng.pid, "yardstick": ys.pid, "chaosproxy-h2up": c2.pid,
                "chaosproxy": c1.pid}  # fmt: skip
        for r in range(1, a.rounds + 1):
            for body in bodies:
                for target, proc, proto in TARGETS:
                    port = p["h1"] if target == "direct h1" else ports[proc]
                    url = f"http://127.0.0.1:{port}/{body}"
                    h1 = proto == "h1"
                    if a.warm > 0:
                        h2load(url, a.conns, 1 if h1 else a.streams, a.warm, h1)
                    cpu0 = cpu_seconds(pids[proc])
                    x = h2load(url, a.conns, 1 if h1 else a.streams, a.seconds, h1)
                    cpu_us = (cpu_seconds(pids[proc]) - cpu0) / max(1, x.done) * 1e6
                    cells.append(
                        Cell(target, body, r, x.rps, x.p50_ms, x.p99_ms, x.errors, x.done, cpu_us)
                    )
                    print(
                        f"  round {r} {target:>16} {body:>5} {x.rps:9.0f} req/s"
                        f"  p50 {x.p50_ms:7.2f} ms  p99 {x.p99_ms:7.2f} ms"
                        f"  {cpu_us:6.1f} us CPU/req  errors {x.errors}",
                        flush=True,
                    )
        rss = {name: rss_mib(pid) for name, pid in pids.items()}
    report(cells, bodies, rss)
    if a.json:
        Path(a.json).write_text(
            json.dumps({"machine": info, "cells": [asdict(c) for c in cells], "rss_mib": rss})
        )
    unclean = sum(c.errors > 0 or c.done == 0 for c in cells)
    if unclean:
        print(f"\n{unclean} cells had failed requests, 4xx/5xx answers or none answered at all")
    return 1 if unclean else 0


def report(cells: list[Cell], bodies: list[str], rss: dict[str, float]) -> None:
    med = statistics.median
    print(f"\nmedians over rounds ({max(c.round for c in cells)})")
    print(f"  {'target':>16} {'body':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU/req':>9}")
    for body in bodies:
        for target, _, _ in TARGETS:
            cs = [c for c in cells if c.target == target and c.body == body]
            print(
                f"  {target:>16} {body:>5} {med(c.rps for c in cs):9.0f}"
                f" {med(c.p50_ms for c in cs):8.2f} {med(c.p99_ms for c in cs):8.2f}"
                f" {med(c.cpu_us for c in cs):7.1f}us"
            )
    print("\nratios of req/s, per round (median, min-max), and of CPU per request (median)")
    for body in bodies:
        for num, den, why in RATIOS:
            by_round: dict[int, dict[str, Cell]] = {}
            for c in cells:
                if c.body == body:
                    by_round.setdefault(c.round, {})[c.target] = c
            rps = [rr[num].rps / rr[den].rps for rr in by_round.values()]
            # (a cell of a few requests on a loaded machine may read no CPU tick at all: nan)
            cpu = [
                rr[num].cpu_us / rr[den].cpu_us if rr[den].cpu_us else math.nan
                for rr in by_round.values()
            ]
            print(
                f"  {body:>5} {num + ' / ' + den:<34} {med(rps):5.2f}x"
                f" ({min(rps):.2f}-{max(rps):.2f})  CPU/req {med(cpu):5.2f}x   {why}"
            )
    print("\nRSS after the run (MiB): " + ", ".join(f"{n} {v:.0f}" for n, v in rss.items()))


if __name__ == "__main__":
    raise SystemExit(main())
