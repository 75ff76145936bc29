"""gRPC pass-through benchmark: a grpcio client calling a grpcio server directly and through
`chaosproxy run` (h2c on its listen port, HTTP/2 upstream), measured in one run, alternating.

Prints calls/s and p50/p99 latency per (payload, concurrency) cell and the proxy/direct
ratios. The proxy runs on core 0, the upstream server on core 1 (taskset, when present); the
load (one grpc.aio client in this process) is unpinned.

    python bench/grpc_passthrough.py            # ~1 minute
    python bench/grpc_passthrough.py --quick    # the 16-byte cells only
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import grpc
import grpc.aio
from _procs import free_port, pinned, started

HERE = Path(__file__).resolve().parent
PY = sys.executable
METHOD = "/bench.Echo/Unary"
OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", 8 << 20)]


async def serve(port: int) -> None:
    async def unary(req: bytes, ctx: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        return req

    server = grpc.aio.server(options=OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def load(target: str, payload: bytes, concurrency: int, seconds: float) -> list[float]:
    """Latencies (s) of the calls `concurrency` callers complete in `seconds`."""
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as ch:
        call = ch.unary_unary(METHOD)
        await call(payload)  # connected, warm
        done: list[float] = []
        end = time.perf_counter() + seconds

        async def caller() -> None:
            while (t := time.perf_counter()) < end:
                await call(payload)
                done.append(time.perf_counter() - t)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done


def cell(lat: list[float], seconds: float) -> tuple[float, float, float]:
    qs = statistics.quantiles(lat, n=100)
    return len(lat) / seconds, qs[49] * 1000, qs[98] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        asyncio.run(serve(a.serve))
        return
    up, px, adm = free_port(), free_port(), free_port()
    cells = [(b"x" * 16, 1), (b"x" * 16, 16)]
    if not a.quick:
        cells += [(bytes(1 << 20), 4)]
    server = pinned(1, [PY, str(Path(__file__)), "--serve", str(up)])
    proxy = pinned(0, [PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{up}",
                       "--listen", f"127.0.0.1:{px}", "--admin", f"127.0.0.1:{adm}",
                       "--log-level", "warning"])  # fmt: skip
    with started(server, up), started(proxy, px):
        print(f"{'payload':>8} {'c':>3} {'direct/s':>9} {'proxy/s':>9} {'ratio':>6} "
              f"{'p50 d/p ms':>13} {'p99 d/p ms':>13}")  # fmt: skip
        for payload, c in cells:
            d = asyncio.run(load(f"127.0.0.1:{up}", payload, c, a.seconds))
            p = asyncio.run(load(f"127.0.0.1:{px}", payload, c, a.seconds))
            (dr, d50, d99), (pr, p50, p99) = cell(d, a.seconds), cell(p, a.seconds)
            size = f"{len(payload) >> 10}KiB" if len(payload) >= 1024 else f"{len(payload)}B"
            print(f"{size:>8} {c:>3} {dr:>9.0f} {pr:>9.0f} {pr / dr:>6.2f} "
                  f"{d50:>6.2f}/{p50:<6.2f} {d99:>6.2f}/{p99:<6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
