"""Per-stream latency fault accuracy over HTTP/2, beside the same over HTTP/1.1, in one run.

A real `chaosproxy run` (core 0) in front of nginx over HTTP/1.1 (core 1, beside the load). A
50 ms `latency` rule is added through the admin API. h2load (core 1) is the client for both
protocols and logs every request's time, so both columns are measured the same way:

  h2c:      `--h2-conns` connections (default 4), many streams each: the fault delays each
            stream on its own while the connection carries the others
  HTTP/1.1: as many keep-alive connections as the HTTP/2 cell has streams in flight, one
            request at a time (bench/faults.py's shape)

For each in-flight level (`--inflight`, default 32 and 128) it measures both protocols without
the fault and with it, and prints p50/p99 and the overshoot over 50 ms, also net of the
no-fault time of the same cell.

Beside them, gRPC unary calls (16 bytes; needs grpcio, the `grpc` extra): a grpc.aio client
(core 1, `--grpc-inflight` calls in flight on one channel, default 32) against a grpcio server
(core 1, bench/grpc_passthrough.py's), directly, through a second `chaosproxy run` (core 0)
without the fault, and with the same 50 ms rule: the overshoot of each call over 50 ms, net of
the proxy's no-fault time and of the direct time. Prints numbers, asserts none.

    .venv/bin/python bench/h2_faults.py
    .venv/bin/python bench/h2_faults.py --inflight 128 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _h2load import Load, h2load, nginx_argv, require_tools, workdir
from _procs import admin, free_port, pinned, started, wait_listening

PY = sys.executable
HERE = Path(__file__).resolve().parent
DELAY_MS = 50.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured time of each cell")
    ap.add_argument("--warm", type=float, default=1.0, help="warm-up before each cell (s)")
    ap.add_argument("--inflight", default="32,128", help="requests in flight, per level")
    ap.add_argument("--h2-conns", type=int, default=4, help="HTTP/2 connections")
    ap.add_argument("--grpc-inflight", type=int, default=32, help="gRPC calls in flight")
    ap.add_argument("--grpc-load", nargs=3, help=argparse.SUPPRESS)  # target, calls, seconds
    a = ap.parse_args()
    if a.grpc_load:
        return grpc_load(*a.grpc_load, warm=a.warm)
    require_tools()
    work = workdir("h2faults")
    h1, h2, px, ad = free_port(), free_port(), free_port(), free_port()
    proxy = [
        PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{h1}",
        "--listen", f"127.0.0.1:{px}", "--admin", f"127.0.0.1:{ad}", "--log-level", "error",
    ]  # fmt: skip
    url, base = f"http://127.0.0.1:{px}/small", f"http://127.0.0.1:{ad}"
    levels = [int(x) for x in a.inflight.split(",")]
    rows: list[tuple[int, str, str, Load, Load]] = []  # (in flight, protocol, shape, base, fault)
    unclean = 0
    with started(pinned(1, nginx_argv(h1, h2, work / "nginx")), h1), started(pinned(0, proxy)):
        wait_listening(px)
        wait_listening(ad)

        def cell(conns: int, streams: int, h1_client: bool) -> Load:
            if a.warm > 0:
                h2load(url, conns, streams, a.warm, h1_client)
            return h2load(url, conns, streams, a.seconds, h1_client)

        for n in levels:
            streams = max(1, n // a.h2_conns)
            shapes = [
                ("h2c", f"c={a.h2_conns} x m={streams}", a.h2_conns, streams, False),
                ("HTTP/1.1", f"c={n}", n, 1, True),
            ]
            plain = {name: cell(c, m, h) for name, _, c, m, h in shapes}
            admin(base, "POST", "/rules", {"fault": {"latency": {"delay": f"{DELAY_MS:g}ms"}}})
            try:
                slow = {name: cell(c, m, h) for name, _, c, m, h in shapes}
            finally:
                admin(base, "DELETE", "/rules")
            for name, shape, *_ in shapes:
                rows.append((n, name, shape, plain[name], slow[name]))
                unclean += (not plain[name].clean) + (not slow[name].clean)
    print(f"{DELAY_MS:g} ms latency rule; h2load on core 1, chaosproxy on core 0; "
          f"{a.seconds:g} s per cell; overshoot = measured - {DELAY_MS:g} ms "
          "(net: minus the no-fault time of the same cell)")  # fmt: skip
    print(f"  {'in flight':>9} {'client':<9} {'shape':<12} {'no fault p50/p99':>18}"
          f" {'fault p50/p99':>16} {'overshoot p50/p99':>18}"
          f" {'net p50/p99':>14}  req/s")  # fmt: skip
    for n, name, shape, b, f in rows:
        o50, o99 = f.p50_ms - DELAY_MS, f.p99_ms - DELAY_MS
        print(
            f"  {n:>9} {name:<9} {shape:<12} {b.p50_ms:8.2f}/{b.p99_ms:<8.2f}"
            f" {f.p50_ms:7.2f}/{f.p99_ms:<7.2f} {o50:+8.2f}/{o99:<+8.2f}"
            f" {o50 - b.p50_ms:+6.2f}/{o99 - b.p99_ms:<+6.2f}  {f.rps:.0f}"
        )
    unclean += grpc_cells(a.grpc_inflight, a.seconds, a.warm)
    if unclean:
        print(f"{unclean} cells had failed requests, 4xx/5xx answers or none answered at all")
    return 1 if unclean else 0


def grpc_cells(inflight: int, seconds: float, warm: float) -> int:
    """The gRPC cells, printed; how many failed."""
    try:
        import grpc  # noqa: F401  (the client and server below need it)
    except ImportError:
        print("gRPC cells skipped: grpcio is not installed (pip install 'chaosproxy[grpc]')")
        return 0
    up, px, ad = free_port(), free_port(), free_port()
    server = pinned(1, [PY, str(HERE / "grpc_passthrough.py"), "--serve", str(up)])
    proxy = [
        PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{up}",
        "--listen", f"127.0.0.1:{px}", "--admin", f"127.0.0.1:{ad}", "--log-level", "error",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{ad}"

    def cell(port: int) -> list[float] | None:
        argv = [PY, str(HERE / "h2_faults.py"), "--warm", str(warm), "--grpc-load",
                f"127.0.0.1:{port}", str(inflight), str(seconds)]  # fmt: skip
        run = subprocess.run(pinned(1, argv), capture_output=True, text=True, check=False)
        if run.returncode != 0:
            print(f"  a gRPC cell failed: {run.stderr.strip().splitlines()[-1:]}")
            return None
        lat: list[float] = json.loads(run.stdout)
        return lat

    with started(server, up), started(pinned(0, proxy), px):
        wait_listening(ad)
        direct, plain = cell(up), cell(px)
        admin(base, "POST", "/rules", {"fault": {"latency": {"delay": f"{DELAY_MS:g}ms"}}})
        try:
            slow = cell(px)
        finally:
            admin(base, "DELETE", "/rules")
    if direct is None or plain is None or slow is None:
        return 1
    d, b, f = (_pcts(x) for x in (direct, plain, slow))
    o50, o99 = f[0] - DELAY_MS, f[1] - DELAY_MS
    print(f"gRPC unary calls, 16 B: grpc.aio client and grpcio server on core 1, chaosproxy on "
          f"core 0; {inflight} calls in flight on one channel, {seconds:g} s per cell")  # fmt: skip
    print(f"  {'cell':<22} {'p50/p99 ms':>16} {'calls/s':>8}")
    for name, q, lat in (("direct", d, direct), ("proxy, no fault", b, plain),
                         (f"proxy, {DELAY_MS:g} ms latency", f, slow)):  # fmt: skip
        print(f"  {name:<22} {q[0]:7.2f}/{q[1]:<8.2f} {len(lat) / seconds:8.0f}")
    print(f"  overshoot p50/p99 {o50:+.2f}/{o99:+.2f} ms; net of the proxy's no-fault time "
          f"{o50 - b[0]:+.2f}/{o99 - b[1]:+.2f}; net of the direct time "
          f"{o50 - d[0]:+.2f}/{o99 - d[1]:+.2f}")  # fmt: skip
    return 0


def _pcts(lat: list[float]) -> tuple[float, float]:
    """p50 and p99 in ms of latencies in seconds."""
    qs = statistics.quantiles(lat, n=100)
    return qs[49] * 1000, qs[98] * 1000


def grpc_load(target: str, calls: str, seconds: str, warm: float) -> int:
    """`--grpc-load`: the calls' latencies (s) as JSON on stdout; exit 1 when one failed."""
    from grpc_passthrough import load

    payload = b"x" * 16
    if warm > 0:
        asyncio.run(load(target, payload, int(calls), warm))
    print(json.dumps(asyncio.run(load(target, payload, int(calls), float(seconds)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
