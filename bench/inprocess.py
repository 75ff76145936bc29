"""The proxy's own CPU per request, without wrk or nginx: client, proxy and upstream in one
process and one loop, on real loopback sockets.

A minimal upstream answers every request with nginx's small answer (eight headers); 16 client
connections each send their next request as soon as the answer came. The same traffic runs
straight to the upstream and through a `Runtime` (the no-match scenario of passthrough.py, or
with `--latency` a 50 ms delay on every request), alternating; the proxy's share is the
difference of process CPU per request. Steadier than a wrk run on a shared machine (the proxy
is alone with its two peers, whose own cost is measured and taken off) and quick to repeat, so
it suits comparing two trees (`--source DIR`); the absolute numbers are not wrk's.

    .venv/bin/python bench/inprocess.py
    .venv/bin/python bench/inprocess.py --latency       # a delayed request's cost, overshoot
    .venv/bin/python bench/inprocess.py --source /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from passthrough import NO_MATCH_SCENARIO

LATENCY_SCENARIO = """
name: bench-latency
rules:
  - name: slow
    match: {path: "/api/**"}
    fault: {latency: {delay: 50ms}}
phases:
  - name: steady
    duration: 1h
"""

ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 18:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Last-Modified: Mon, 07 Dec 2026 17:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "abc-5"\r\nAccept-Ranges: bytes\r\n\r\nhello'
)
REQUEST = b"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"


class Upstream(asyncio.Protocol):
    """Answers each request it reads (no body: the head's blank line ends it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER * data.count(b"\r\n\r\n"))


class Client(asyncio.Protocol):
    """Sends the next request when the answer's body arrived, until `left` runs out."""

    def __init__(
        self, left: list[int], done: asyncio.Future[None], took: list[float] | None = None
    ) -> None:
        self.left, self.done, self.took = left, done, took
        self.buf = b""
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        self.sent = time.monotonic()
        self.transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (i := self.buf.find(b"hello")) >= 0:
            self.buf = self.buf[i + 5 :]
            if self.took is not None:
                self.took.append(time.monotonic() - self.sent)
            self.left[0] -= 1
            if self.left[0] <= 0:
                if not self.done.done():
                    self.done.set_result(None)
                return
            self.send()


async def drive(port: int, requests: int, conns: int, took: list[float] | None = None) -> None:
    """`requests` over `conns` connections, each sending its next when an answer came;
    `took`: each request's time from its write to its answer's last byte."""
    loop = asyncio.get_running_loop()
    left = [requests]
    done: asyncio.Future[None] = loop.create_future()
    transports = []
    for _ in range(conns):
        t, _ = await loop.create_connection(lambda: Client(left, done, took), "127.0.0.1", port)
        transports.append(t)
    await done
    for t in transports:
        t.close()


async def measure(a: argparse.Namespace) -> None:
    import yarl

    from chaosproxy.process.runtime import Runtime
    from chaosproxy.process.settings import Settings

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    scenario = Path(tempfile.mkdtemp()) / "scenario.yaml"
    scenario.write_text(LATENCY_SCENARIO if a.latency else NO_MATCH_SCENARIO)
    settings = Settings(
        upstream=yarl.URL(f"http://127.0.0.1:{up_port}"),
        listen_host="127.0.0.1",
        listen_port=0,
        admin_host="127.0.0.1",
        admin_port=0,
        scenario=str(scenario),
        reload_interval=0,
    )
    rt = Runtime(settings)
    await rt.start()
    print(f"chaosproxy from {Path(sys.modules['chaosproxy'].__file__ or '').parent.parent}")
    try:
        n = a.requests // 20 if a.latency else a.requests
        for port in (up_port, rt.proxy_port):  # warm-up: connections, pool, caches
            await drive(port, max(200, n // 10), a.conns)
        cpu: dict[str, list[float]] = {"direct": [], "proxy": []}
        took: list[float] = []
        for _ in range(a.rounds):
            for name, port in (("direct", up_port), ("proxy", rt.proxy_port)):
                c0 = time.process_time()
                await drive(port, n, a.conns, took if name == "proxy" else None)
                cpu[name].append((time.process_time() - c0) / n * 1e6)
        direct, proxy = min(cpu["direct"]), min(cpu["proxy"])
        kind = "a 50 ms latency fault on every request" if a.latency else "no rule matches"
        print(f"{n} requests x {a.rounds} rounds, {a.conns} connections, {kind}")
        print(f"  direct     {direct:7.1f} us CPU/req  (client and upstream alone)")
        print(f"  via proxy  {proxy:7.1f} us CPU/req")
        print(f"  the proxy's share: {proxy - direct:.1f} us a request (best of {a.rounds})")
        if a.latency:  # what the delay's clients saw beyond the 50 ms asked
            q = statistics.quantiles(took, n=100)
            print(
                f"  overshoot of the 50 ms delay over {len(took)} requests: "
                f"p50 +{(q[49] - 0.05) * 1000:.2f} ms, p99 +{(q[98] - 0.05) * 1000:.2f} ms"
            )
    finally:
        await rt.stop()
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--requests", type=int, default=20000, help="per round (a twentieth with --latency)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--latency", action="store_true", help="every request delayed 50 ms")
    ap.add_argument("--source", help="directory holding the chaosproxy package to measure")
    a = ap.parse_args()
    if a.source:
        sys.path.insert(0, a.source)
    import uvloop

    uvloop.run(measure(a))


if __name__ == "__main__":
    main()
