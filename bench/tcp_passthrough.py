"""TCP pass-through benchmark: a direct connection vs chaosproxy's TCP proxy (`run --tcp`) vs
socat (and the peer Toxiproxy when its binary is at hand), measured in one run.

Prints, per target: bulk throughput (one connection, the server streams), small-message round
trips per second (64-byte ping-pong, one connection) with p50/p99, and the ratios against the
direct connection and socat; then the overshoot of a 50 ms latency fault (downstream) over
50 ms, p50/p99, for chaosproxy and Toxiproxy; then the memory per idle TCP connection (RSS
growth over 1000 idle connections held open through the proxy).

The upstream is this script in `--serve` mode (asyncio + uvloop). Pinning (`taskset`): the
proxies on core 0, the upstream and the client on core 1.

    python bench/tcp_passthrough.py            # ~1-2 minutes
    python bench/tcp_passthrough.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _procs import admin, free_port, pinned, started, wait_listening

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
PEER = Path("/work/shared/peers/toxiproxy-server-2.12.0.xz")
IDLE = 1000  # idle connections for the memory measurement


# ---------------------------------------------------------------- the upstream (--serve)


async def serve(port: int) -> None:
    """First byte says what a connection wants: S<8-byte n> stream n bytes, E echo, H hold."""
    block = memoryview(b"\x00" * (1 << 20))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            kind = await reader.readexactly(1)
            if kind == b"S":
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
                while n > 0:
                    writer.write(block[: min(n, len(block))])
                    n -= min(n, len(block))
                    await writer.drain()
            elif kind == b"E":
                while data := await reader.read(65536):
                    writer.write(data)
            elif kind == b"H":
                writer.write(b"k")
                await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- the client side


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def bulk(port: int, total: int) -> float:
    """MB/s of one connection reading `total` bytes the server streams."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with connect(port) as s:
        start = time.perf_counter()
        s.sendall(b"S" + struct.pack("!Q", total))
        got = 0
        while got < total:
            n = s.recv_into(view)
            if not n:
                raise SystemExit(f"port {port}: stream ended at {got} of {total} bytes")
            got += n
        return total / (time.perf_counter() - start) / 1e6


def pingpong(port: int, count: int, size: int = 64) -> list[float]:
    """Round-trip times (seconds) of `count` sequential `size`-byte messages."""
    msg = b"p" * size
    out = []
    with connect(port) as s:
        s.sendall(b"E")
        for _ in range(count):
            start = time.perf_counter()
            s.sendall(msg)
            got = 0
            while got < size:
                chunk = s.recv(size - got)
                if not chunk:
                    raise SystemExit(f"port {port}: echo ended")
                got += len(chunk)
            out.append(time.perf_counter() - start)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hold(port: int, n: int) -> list[socket.socket]:
    """`n` idle connections through `port`, each confirmed end to end (the upstream said k)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"H")
        if s.recv(1) != b"k":
            raise SystemExit("an idle connection was not relayed")
        socks.append(s)
    return socks


# ---------------------------------------------------------------- the targets


@contextlib.contextmanager
def chaosproxy(upstream: int) -> Iterator[tuple[int, str, int]]:
    """`chaosproxy run --tcp b=...`: (its TCP port, admin URL, pid)."""
    port, admin_port = free_port(), free_port()
    argv = pinned(
        0,
        [
            PY, "-m", "chaosproxy", "run",
            "--upstream", "http://127.0.0.1:9",
            "--listen", f"127.0.0.1:{free_port()}",
            "--admin", f"127.0.0.1:{admin_port}",
            "--tcp", f"b=127.0.0.1:{port}:127.0.0.1:{upstream}",
        ],
    )  # fmt: skip
    with started(argv, port=port, cwd=str(ROOT)) as proc:
        wait_listening(admin_port)
        yield port, f"http://127.0.0.1:{admin_port}", proc.pid


@contextlib.contextmanager
def socat(upstream: int) -> Iterator[int | None]:
    if not shutil.which("socat"):
        yield None
        return
    port = free_port()
    argv = pinned(
        0,
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{upstream}"],
    )
    with started(argv, port=port):
        yield port


def toxi_call(base: str, method: str, path: str, body: object) -> object:
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method=method
    )  # Toxiproxy answers 201 with JSON
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


@contextlib.contextmanager
def toxiproxy(upstream: int) -> Iterator[tuple[int, str, int] | None]:
    if not PEER.exists():
        yield None
        return
    binary = ROOT / ".bench" / "toxiproxy-server"
    if not binary.exists():
        binary.parent.mkdir(exist_ok=True)
        with binary.open("wb") as out:
            subprocess.run(["xz", "-dc", str(PEER)], stdout=out, check=True)
        binary.chmod(0o755)
    api, port = free_port(), free_port()
    argv = pinned(0, [str(binary), "-host", "127.0.0.1", "-port", str(api)])
    with started(argv, port=api) as proc:
        base = f"http://127.0.0.1:{api}"
        toxi_call(
            base,
            "POST",
            "/proxies",
            {"name": "b", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream}"},
        )
        wait_listening(port)
        yield port, base, proc.pid


# ---------------------------------------------------------------- the run


def measure(name: str, port: int, total: int, rounds: int, pings: int) -> dict[str, float]:
    mbps = max(bulk(port, total) for _ in range(rounds))
    rtts = pingpong(port, pings)
    row = {
        "mb_s": mbps,
        "rt_s": len(rtts) / sum(rtts),
        "p50_us": pct(rtts, 0.5) * 1e6,
        "p99_us": pct(rtts, 0.99) * 1e6,
    }
    print(
        f"{name:<12} {row['mb_s']:>9.0f} MB/s {row['rt_s']:>9.0f} rt/s "
        f"p50 {row['p50_us']:>6.0f} µs  p99 {row['p99_us']:>6.0f} µs",
        flush=True,
    )
    return row


def overshoot(name: str, port: int, pings: int) -> tuple[float, float]:
    """RTT over 50 ms of `pings` 64-byte messages on one connection (after 5 to warm up, for
    every target alike: the first message of a connection also waits for its upstream)."""
    rtts = pingpong(port, pings + 5)[5:]
    over = [(r - 0.050) * 1e3 for r in rtts]
    p50, p99 = statistics.median(over), pct(over, 0.99)
    print(f"{name:<12} 50 ms latency fault: overshoot p50 +{p50:.2f} ms  p99 +{p99:.2f} ms")
    return p50, p99


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        asyncio.run(serve(args.serve))
        return
    total = (128 if args.quick else 512) * (1 << 20)
    rounds, pings = (1, 1000) if args.quick else (3, 5000)
    lag_pings = 100 if args.quick else 300
    up = free_port()
    print(f"cores {os.cpu_count()}; bulk {total >> 20} MiB x{rounds}, {pings} pings of 64 B")
    rows: dict[str, dict[str, float]] = {}
    with started(pinned(1, [PY, str(Path(__file__).resolve()), "--serve", str(up)]), port=up):
        rows["direct"] = measure("direct", up, total, rounds, pings)
        with chaosproxy(up) as (port, admin_url, pid):
            rows["chaosproxy"] = measure("chaosproxy", port, total, rounds, pings)
            admin(
                admin_url,
                "POST",
                "/rules",
                {"match": {"tcp": "b"}, "fault": {"latency": {"latency": "50ms"}}},
            )
            ours = overshoot("chaosproxy", port, lag_pings)
            admin(admin_url, "DELETE", "/rules")
            before = rss_kib(pid)
            socks = hold(port, IDLE)
            after = rss_kib(pid)
            per_conn = (after - before) * 1024 / IDLE
            for s in socks:
                s.close()
        with socat(up) as sport:
            if sport is None:
                print("socat       not installed (make bench-tcp installs it): skipped")
            else:
                rows["socat"] = measure("socat", sport, total, rounds, pings)
        theirs = None
        with toxiproxy(up) as peer:
            if peer is None:
                print("toxiproxy   peer binary not found: skipped")
            else:
                tport, base, _pid = peer
                rows["toxiproxy"] = measure("toxiproxy", tport, total, rounds, pings)
                toxi_call(
                    base,
                    "POST",
                    "/proxies/b/toxics",
                    {"type": "latency", "stream": "downstream", "attributes": {"latency": 50}},
                )
                theirs = overshoot("toxiproxy", tport, lag_pings)
    d, c = rows["direct"], rows["chaosproxy"]
    print("\nratios (chaosproxy / other):")
    for other in ("direct", "socat", "toxiproxy"):
        if other in rows:
            o = rows[other]
            print(
                f"  vs {other:<10} throughput {c['mb_s'] / o['mb_s']:.2f}x  "
                f"round trips {c['rt_s'] / o['rt_s']:.2f}x  p50 {c['p50_us'] / o['p50_us']:.2f}x"
            )
    print(f"  direct: {d['mb_s']:.0f} MB/s, {d['rt_s']:.0f} rt/s")
    print(
        f"\nlatency overshoot over 50 ms: chaosproxy p50 +{ours[0]:.2f} / p99 +{ours[1]:.2f} ms",
        end="",
    )
    print("" if theirs is None else f"; toxiproxy p50 +{theirs[0]:.2f} / p99 +{theirs[1]:.2f} ms")
    print(
        f"memory per idle TCP connection (chaosproxy): {per_conn / 1024:.1f} KiB "
        f"(RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB over {IDLE} connections)"
    )


if __name__ == "__main__":
    main()
