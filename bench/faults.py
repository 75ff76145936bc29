"""Fault accuracy benchmark: how exact are `latency` and a probabilistic `error` under load?

Starts a real upstream and a real `chaosproxy run` (separate processes, 127.0.0.1), adds ad-hoc
rules through the admin API, and measures from a third process:

  (a) a 50 ms `latency` fault under concurrency 32: p50 and p99 as the client sees them, their
      overshoot over 50 ms, and the same percentiles without the fault (the proxy's own cost);
  (b) a `error` rule with probability 0.1: the measured error rate over 20 000 requests, with
      the 95 % binomial interval expected around 10 %.

Load for (a) comes from `wrk --latency` when installed (else an aiohttp client process); (b)
always uses an aiohttp client process, which counts every status. Prints numbers, asserts none.

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --seconds 10 --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _procs import admin, free_port, pinned, started, wait_listening

HERE = Path(__file__).resolve()
PY = sys.executable
DELAY = 0.050


# ---------------------------------------------------------------- child roles


def serve_upstream(port: int) -> None:
    """A fast aiohttp low-level server answering a small body to everything."""
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        return web.Response(body=b"hello, world\n", content_type="text/plain")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def python_load(url: str, requests: int, concurrency: int) -> None:
    """Send `requests` GETs over `concurrency` connections; print status counts and latencies."""
    import aiohttp

    async def main() -> dict[str, object]:
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        left = requests

        async def worker(s: aiohttp.ClientSession) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                async with s.get(url) as r:
                    await r.read()
                latencies.append(time.perf_counter() - t0)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:
            await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        latencies.sort()
        return {
            "statuses": statuses,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)],
        }

    print(json.dumps(asyncio.run(main())))


# ---------------------------------------------------------------- processes


# ---------------------------------------------------------------- measurements


def wrk_percentiles(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(p50, p99, requests/s) from `wrk --latency`, pinned to core 1."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(pinned(1, argv), capture_output=True, text=True, check=True).stdout

    def seconds_of(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.M)
        if m is None:
            raise RuntimeError(f"no {label}% line in wrk output:\n{out}")
        return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return seconds_of("50"), seconds_of("99"), float(rps.group(1)) if rps else 0.0


def python_percentiles(url: str, requests: int, connections: int) -> dict[str, object]:
    argv = [PY, str(HERE), "--python-load", url, str(requests), str(connections)]
    out = subprocess.run(pinned(1, argv), capture_output=True, text=True, check=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


def percentiles(url: str, args: argparse.Namespace) -> tuple[float, float, str]:
    if shutil.which("wrk") and not args.python_load_only:
        subprocess.run(pinned(1, ["wrk", "-t1", "-c32", "-d1s", url]), capture_output=True)
        p50, p99, rps = wrk_percentiles(url, args.seconds, args.concurrency)
        return p50, p99, f"wrk, {rps:.0f} req/s"
    r = python_percentiles(url, args.seconds * 500, args.concurrency)
    return float(r["p50"]), float(r["p99"]), "aiohttp client"  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=5, help="duration of each latency run")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20_000, help="requests for the error rate")
    ap.add_argument("--python-load-only", action="store_true", help="do not use wrk")
    ap.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--python-load", nargs=3, metavar=("URL", "N", "C"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    if args.python_load:
        url, n, c = args.python_load
        python_load(url, int(n), int(c))
        return

    up, px, ad = free_port(), free_port(), free_port()
    proxy_argv = [
        PY, "-m", "chaosproxy", "run",
        "--upstream", f"http://127.0.0.1:{up}",
        "--listen", f"127.0.0.1:{px}",
        "--admin", f"127.0.0.1:{ad}",
        "--log-level", "error",
    ]  # fmt: skip
    with (
        started(pinned(1, [PY, str(HERE), "--serve-upstream", str(up)])),
        started(pinned(0, proxy_argv)),
    ):
        wait_listening(up)
        wait_listening(px)
        wait_listening(ad)
        base, url = f"http://127.0.0.1:{ad}", f"http://127.0.0.1:{px}/"

        print(f"(a) latency {DELAY * 1000:.0f} ms, concurrency {args.concurrency}")
        b50, b99, how = percentiles(url, args)
        print(f"    no fault:  p50 {b50 * 1000:7.2f} ms   p99 {b99 * 1000:7.2f} ms   ({how})")
        admin(base, "POST", "/rules", {"fault": {"latency": {"delay": f"{DELAY * 1000:g}ms"}}})
        p50, p99, how = percentiles(url, args)
        admin(base, "DELETE", "/rules")
        print(f"    latency:   p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   ({how})")
        print(
            f"    overshoot over {DELAY * 1000:g} ms: p50 +{(p50 - DELAY) * 1000:.2f} ms, "
            f"p99 +{(p99 - DELAY) * 1000:.2f} ms "
            f"(minus the no-fault proxy time: p50 +{(p50 - DELAY - b50) * 1000:.2f} ms, "
            f"p99 +{(p99 - DELAY - b99) * 1000:.2f} ms)"
        )

        print(f"(b) error rule, probability 0.1, {args.requests} requests")
        admin(base, "POST", "/rules", {"probability": 0.1, "fault": {"error": {"status": 500}}})
        r = python_percentiles(url, args.requests, args.concurrency)
        admin(base, "DELETE", "/rules")
        statuses = {int(k): v for k, v in r["statuses"].items()}  # type: ignore[attr-defined]
        total = sum(statuses.values())
        errors = statuses.get(500, 0)
        half = 1.96 * math.sqrt(0.1 * 0.9 / total)
        print(f"    statuses: {dict(sorted(statuses.items()))}")
        print(
            f"    measured error rate {errors / total:.4f} ({errors}/{total}); "
            f"95 % interval for a true 0.1: {0.1 - half:.4f}..{0.1 + half:.4f}"
        )


if __name__ == "__main__":
    main()
