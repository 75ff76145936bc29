"""Memory held by idle HTTP/2 client connections against idle HTTP/1.1 keep-alive ones, in the
same run: what a fleet of gRPC channels or HTTP/2 clients between requests costs the proxy.

For each protocol a fresh `chaosproxy run` (core 0; nginx upstream over HTTP/1.1 on core 1) gets
`--conns` client connections that each do one request and then stay open and silent: HTTP/1.1
keep-alive, or h2c with prior knowledge (preface, SETTINGS both ways and acknowledged, one
stream done). It prints the proxy's RSS before and while holding them, the KiB per connection,
and whether a request on a held connection is still answered. It also measures, in this
process with tracemalloc, what the `h2` library's own state of one server-side connection
weighs after the same exchange: the floor any proxy built on h2 pays.

    .venv/bin/python bench/h2_idle_connections.py
    .venv/bin/python bench/h2_idle_connections.py --conns 10000

The bench raises its own open-file limit to the hard limit (children inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import resource
import sys
import tracemalloc

from _h2load import nginx_argv, require_tools, workdir
from _procs import free_port, pinned, started
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import Event, ResponseReceived, StreamEnded
from idle_connections import hold
from passthrough import NO_MATCH_SCENARIO, rss_mib

PY = sys.executable
HEADERS = [(":method", "GET"), (":scheme", "http"), (":authority", "bench"), (":path", "/small")]


class H2Client(asyncio.Protocol):
    """One h2c connection: preface and SETTINGS, then a GET when asked; `answer` resolves to
    the status of the stream in flight once it ended."""

    def __init__(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=True))
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.get()

    def get(self) -> asyncio.Future[int]:
        self.answer = asyncio.get_running_loop().create_future()
        self.h2.send_headers(self.h2.get_next_available_stream_id(), HEADERS, end_stream=True)
        self.flush()
        return self.answer

    def flush(self) -> None:
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for ev in self.h2.receive_data(data):
            self.on(ev)
        self.flush()  # SETTINGS acknowledged, windows reopened

    def on(self, ev: Event) -> None:
        if isinstance(ev, ResponseReceived):
            self.status = int(dict(ev.headers or [])[b":status"])
        elif isinstance(ev, StreamEnded) and self.answer is not None and not self.answer.done():
            self.answer.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(0)


async def _one_h2(port: int) -> H2Client:
    loop = asyncio.get_running_loop()
    _, c = await loop.create_connection(H2Client, "127.0.0.1", port)
    assert c.answer is not None
    await c.answer
    return c


async def hold_h2(port: int, conns: int, pid: int) -> dict[str, float]:
    """As idle_connections.hold, over h2c: open `conns` (64 at a time), measure, use one."""
    (await _one_h2(port)).transport.close()  # type: ignore[union-attr]  # h2 code paths warm
    base = rss_mib(pid)
    held: list[H2Client] = []
    for start in range(0, conns, 64):
        held += await asyncio.gather(*(_one_h2(port) for _ in range(min(64, conns - start))))
    await asyncio.sleep(1.0)  # let the proxy settle (a measurement pause, not synchronisation)
    holding = rss_mib(pid)
    status = await held[len(held) // 2].get()
    for c in held:
        if c.transport is not None:
            c.transport.close()
    return {
        "base": base,
        "holding": holding,
        "per_conn_kib": (holding - base) * 1024 / max(1, len(held)),
        "ok": float(status == 200),
        "held": float(len(held)),
    }


def h2_state_kib(n: int = 200) -> float:
    """KiB the h2 library allocates for one server-side connection after the preface, SETTINGS
    both ways and one request answered (tracemalloc, in this process, no sockets)."""

    def pair() -> H2Connection:
        client = H2Connection(H2Configuration(client_side=True))
        server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        client.initiate_connection()
        server.initiate_connection()
        client.send_headers(1, HEADERS, end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(1, [(":status", "200")], end_stream=False)
        server.send_data(1, b"hello, world\n", end_stream=True)
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())  # the client's SETTINGS ack
        server.data_to_send()
        return server

    pair()  # imports and caches
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [pair() for _ in range(n)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / n / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--conns", type=int, default=5000)
    a = ap.parse_args()
    require_tools()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    conns = min(a.conns, max(64, (soft - 200) // 2))
    if conns < a.conns:
        print(f"open-file limit {soft}: holding {conns} connections, not {a.conns}")
    work = workdir("h2idle")
    scenario = work / "no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    h1, h2 = free_port(), free_port()

    def chaos(port: int, admin: int) -> list[str]:
        return [
            PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{h1}",
            "--log-level", "warning", "--listen", f"127.0.0.1:{port}",
            "--admin", f"127.0.0.1:{admin}", "--scenario", str(scenario),
            "--reload-interval", "0", "--max-connections", str(conns + 100),
        ]  # fmt: skip

    results: dict[str, dict[str, float]] = {}
    with started(pinned(1, nginx_argv(h1, h2, work / "nginx")), h1):
        for name, how in (("HTTP/1.1 keep-alive", hold), ("h2c", hold_h2)):
            port, admin = free_port(), free_port()
            with started(pinned(0, chaos(port, admin)), port) as proc:
                results[name] = asyncio.run(how(port, conns, proc.pid))
    state = h2_state_kib()
    print(f"{conns} idle client connections to chaosproxy (one request each, then silent)")
    print(f"  {'client':<20} {'RSS before':>10} {'holding':>9} {'KiB/conn':>9}  request after")
    for name, r in results.items():
        print(
            f"  {name:<20} {r['base']:8.1f} MiB {r['holding']:6.1f} MiB {r['per_conn_kib']:9.1f}"
            f"  {'200' if r['ok'] else 'FAILED'}"
        )
    h1k, h2k = (results[n]["per_conn_kib"] for n in ("HTTP/1.1 keep-alive", "h2c"))
    print(f"h2c / HTTP/1.1 per idle connection: {h2k / h1k:.2f}x")
    print(f"the h2 library's state of one such server-side connection: {state:.1f} KiB")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
