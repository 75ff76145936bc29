"""Admin API latency while the data plane is saturated: stop, DELETE /rules, healthz.

Starts an upstream (core 1), `chaosproxy run` (core 0) and `wrk` (core 1) with enough
connections to keep the proxy's core busy, then times admin calls from this process (a fresh
TCP connection per call, as `chaosproxy ctl` makes them) before and during the load:

  start    POST /scenarios/idle/start {"replace": true}   (a scenario whose rule never matches)
  stop     POST /scenarios/stop
  add      POST /rules (a rule that never matches)
  clear    DELETE /rules
  healthz  GET /healthz

Each admin mode is measured in the same run: `thread` (the default: the admin listener on its
own thread and event loop) and `shared` (`--admin-in-proxy-loop`: the admin app on the proxy's
loop). `old` runs the `chaosproxy` package found in `--old-tree DIR` (e.g. `git archive COMMIT |
tar -x -C DIR`), to measure a commit from before the admin thread. It also scrapes
`chaosproxy_inflight_requests` every `--scrape` seconds during the load, and for 4 s with an
`error` rule answering every request at once (no request ever waits in a handler then).
Prints numbers, asserts none.

    .venv/bin/python bench/admin_latency.py
    .venv/bin/python bench/admin_latency.py --seconds 20 --conns 1000 --modes shared,thread
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _procs import free_port, pinned, started, wait_listening

HERE = Path(__file__).resolve()
PY = sys.executable
CALLS = ("start", "stop", "add", "clear", "healthz")
IDLE_SCENARIO = """\
name: idle
description: a rule that never matches, so a running scenario costs decide() and nothing else
phases:
  - name: idle
    duration: 1h
    rules:
      - match: {path: "/never/**"}
        fault: {error: {status: 500}}
"""


def serve_upstream(port: int) -> None:
    """A fast aiohttp low-level server answering a small body to everything."""
    import asyncio

    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        return web.Response(body=b"hello, world\n", content_type="text/plain")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def call(port: int, method: str, path: str, body: object | None = None) -> tuple[float, int]:
    """One admin call on a fresh connection: (seconds, status)."""
    data = None if body is None else json.dumps(body).encode()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        status = r.status
    finally:
        conn.close()
    return time.perf_counter() - t0, status


def cycle(port: int, pause: float, until: float, times: dict[str, list[float]]) -> None:
    """Repeat start, healthz, stop, add, clear until `until`, recording each call's time."""
    steps: list[tuple[str, str, str, object | None]] = [
        ("start", "POST", "/scenarios/idle/start", {"replace": True}),
        ("healthz", "GET", "/healthz", None),
        ("stop", "POST", "/scenarios/stop", None),
        ("add", "POST", "/rules", {"match": {"path": "/never/**"}, "fault": {"error": {}}}),
        ("clear", "DELETE", "/rules", None),
    ]
    while time.monotonic() < until:
        for name, method, path, body in steps:
            secs, status = call(port, method, path, body)
            if status >= 400:
                raise SystemExit(f"{method} {path} answered {status}")
            times[name].append(secs)
            time.sleep(pause)


def sample_inflight(port: int, every: float, stop: threading.Event, out: list[float]) -> None:
    """The in-flight gauge every `every` seconds (a scrape, as Prometheus makes it)."""
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except OSError:
            continue
        m = re.search(r"^chaosproxy_inflight_requests (\S+)", text, re.M)
        if m:
            out.append(float(m.group(1)))
        stop.wait(every)


def gauge_line(label: str, xs: list[float]) -> str:
    if not xs:
        return f"  inflight gauge, {label}: no samples"
    zeros = sum(1 for x in xs if x == 0)
    return (
        f"  inflight gauge, {label}: {len(xs)} samples, median {statistics.median(xs):.0f},"
        f" min {min(xs):.0f}, max {max(xs):.0f}, zero {zeros}x"
    )


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


def row(label: str, xs: list[float]) -> str:
    return (
        f"  {label:<22} n={len(xs):<4} p50 {pct(xs, 0.5):7.1f}  p95 {pct(xs, 0.95):7.1f}"
        f"  p99 {pct(xs, 0.99):7.1f}  max {max(xs) * 1000 if xs else float('nan'):7.1f} ms"
    )


def measure(mode: str, a: argparse.Namespace, up: int, scenario_dir: str) -> dict[str, object]:
    px, ad = free_port(), free_port()
    argv = [
        PY, "-m", "chaosproxy", "run",
        "--upstream", f"http://127.0.0.1:{up}",
        "--listen", f"127.0.0.1:{px}",
        "--admin", f"127.0.0.1:{ad}",
        "--scenario-dir", scenario_dir,
        "--log-level", "error",
    ]  # fmt: skip
    if mode == "shared":
        argv.append("--admin-in-proxy-loop")
    elif mode == "old":
        if not a.old_tree:
            raise SystemExit("mode old needs --old-tree DIR")
        tree = Path(a.old_tree).resolve()  # its directory first on sys.path: `-m` puts cwd there
        argv = ["env", "-C", str(tree), f"PYTHONPATH={tree}", *argv]
    result: dict[str, object] = {"mode": mode}
    with started(pinned(0, argv)):
        wait_listening(px)
        wait_listening(ad)
        idle: dict[str, list[float]] = {c: [] for c in CALLS}
        cycle(ad, a.pause, time.monotonic() + a.idle_seconds, idle)
        wrk_secs = f"-d{a.seconds + 9:.0f}s"
        wrk = ["wrk", "-t1", f"-c{a.conns}", wrk_secs, f"http://127.0.0.1:{px}/"]
        load = subprocess.Popen(pinned(1, wrk), stdout=subprocess.PIPE, text=True)
        time.sleep(2.0)  # connections up, the proxy's core busy
        busy: dict[str, list[float]] = {c: [] for c in CALLS}
        inflight: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_inflight, args=(ad, a.scrape, stop, inflight))
        if a.scrape > 0:
            sampler.start()
        cycle(ad, a.pause, time.monotonic() + a.seconds, busy)
        stop.set()
        if sampler.is_alive():
            sampler.join()
        answered: list[float] = []  # an error rule answers every request without waiting
        call(ad, "POST", "/rules", {"fault": {"error": {"status": 503}}})
        stop = threading.Event()
        sampler = threading.Thread(target=sample_inflight, args=(ad, 0.25, stop, answered))
        sampler.start()
        stop.wait(4.0)
        stop.set()
        sampler.join()
        call(ad, "DELETE", "/rules")
        out, _ = load.communicate()
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps = float(m.group(1)) if m else float("nan")
    print(f"\nmode {mode}: admin {'on the proxy loop' if mode != 'thread' else 'own thread'}")
    for c in CALLS:
        print(row(f"{c} (idle)", idle[c]))
    for c in CALLS:
        print(row(f"{c} (saturated)", busy[c]))
    print(f"  proxy {rps:.0f} req/s under wrk -c{a.conns} (whole run, admin calls included)")
    print(gauge_line("passing through", inflight))
    print(gauge_line("error rule", answered))
    result.update(
        rps=rps,
        idle={c: idle[c] for c in CALLS},
        busy={c: busy[c] for c in CALLS},
        inflight=inflight,
        inflight_error_rule=answered,
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=15, help="saturated measuring time per mode")
    ap.add_argument("--idle-seconds", type=float, default=3, help="idle measuring time per mode")
    ap.add_argument("--conns", type=int, default=1000, help="wrk connections (offered load)")
    ap.add_argument("--pause", type=float, default=0.02, help="seconds between admin calls")
    ap.add_argument(
        "--scrape", type=float, default=0.5, help="seconds between /metrics scrapes (0: none)"
    )
    ap.add_argument("--modes", default="shared,thread", help="comma list: thread, shared, old")
    ap.add_argument("--old-tree", metavar="DIR", help="source tree whose chaosproxy mode old runs")
    ap.add_argument("--json", metavar="FILE", help="also write every timing as JSON")
    ap.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_upstream:
        serve_upstream(a.serve_upstream)
        return
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (Debian package): ci/debian-tools.sh wrk")
    load1 = os.getloadavg()[0]
    print(
        f"cores {os.cpu_count()}, load average {load1:.2f}; proxy on core 0, upstream and wrk "
        f"-c{a.conns} on core 1; {a.seconds:.0f}s saturated per mode, a call every "
        f"{a.pause * 1000:.0f} ms"
    )
    results = []
    with tempfile.TemporaryDirectory() as d:
        Path(d, "idle.yaml").write_text(IDLE_SCENARIO)
        up = free_port()
        with started(pinned(1, [PY, str(HERE), "--serve-upstream", str(up)]), up):
            for mode in a.modes.split(","):
                results.append(measure(mode, a, up, d))
    if a.json:
        Path(a.json).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
