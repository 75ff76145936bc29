"""Pass-through benchmark: direct vs chaosproxy vs the yardstick proxy and two ceiling probes,
measured in one run.

Prints requests/s, p50/p99 latency and CPU per request per (target, body, concurrency) cell, the
ratios that matter, each process's RSS, and the overshoot of a 50 ms latency fault at c=16 and
c=32.
The upstream is nginx when installed (else an aiohttp server); chaosproxy runs with a scenario
loaded whose rules never match, so the decision is paid for as in a real experiment.
Load comes from `wrk` when installed (Debian package), else from a Python generator.
Pinning (`taskset`): proxies on core 0; the upstream and wrk on core 1.

    python bench/passthrough.py                 # full matrix, ~3 minutes
    python bench/passthrough.py --quick         # small body, 16 connections only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _procs import admin, free_port, pinned, started

HERE = Path(__file__).resolve().parent
PY = sys.executable
BODIES = {"small": b"hello, world\n", "64k": bytes(range(256)) * 256}


# ---------------------------------------------------------------- the upstream


def serve_upstream(port: int) -> None:
    """A fast aiohttp low-level server: `/small` and `/64k`, nothing else."""
    from aiohttp import web

    responses = {f"/{name}": body for name, body in BODIES.items()}

    async def handle(request: web.BaseRequest) -> web.Response:
        body = responses.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/octet-stream")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {d}/www;
        default_type application/octet-stream;
        location = /small {{ return 200 "hello, world\\n"; }}
        location = /64k {{ }}
    }}
}}
"""

# A scenario whose rules never match these requests: the decision runs, no fault fires.
NO_MATCH_SCENARIO = """
name: bench-no-match
rules:
  - name: never-api
    match: {path: "/never/**"}
    fault: {error: {status: 500}}
  - name: never-header
    match: {headers: {X-Bench-Fault: {present: true}}}
    fault: {latency: {delay: 1s}}
phases:
  - name: steady
    duration: 1h
"""


def nginx_argv(port: int, d: Path) -> list[str]:
    """nginx serving the same two bodies, one process (the upstream of the peers' numbers)."""
    (d / "www").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    (d / "www" / "64k").write_bytes(BODIES["64k"])
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, port=port))
    return [shutil.which("nginx") or "nginx", "-c", str(conf), "-p", str(d)]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


# ---------------------------------------------------------------- processes


# ---------------------------------------------------------------- load generators


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process: CPU per request is robust to a busy machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    target: str
    body: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # CPU time of the measured process per request (direct: the upstream's)


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


# Seconds a latency-fault cell lasts at least: 50 ms waves of 16 requests make 320 a second; over
# 10 s one wave is 0.5 % of the requests, so no single stall of the machine sets the p99 alone
# (over 3 s one wave was 1.7 %: the p99 was whichever wave the machine delayed most).
LATENCY_SECONDS = 10


def run_wrk(url: str, conns: int, seconds: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", url]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(g) for g in m.groups())
    return rps, p50, p99, errs


def run_python_load(url: str, conns: int, seconds: float) -> tuple[float, float, float, int]:
    """Fallback when wrk is missing: aiohttp keep-alive clients in this process (slower)."""
    import aiohttp

    async def main() -> tuple[float, float, float, int]:
        lat: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds
        conn = aiohttp.TCPConnector(limit=conns)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    try:
                        async with s.get(url) as r:
                            await r.read()
                            if r.status != 200:
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1
                    lat.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conns)))
            elapsed = time.perf_counter() - t0
        lat.sort()
        q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
        return len(lat) / elapsed, q(0.50), q(0.99), errors

    return asyncio.run(main())


# ---------------------------------------------------------------- the run


def machine() -> dict[str, str]:
    import aiohttp

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.+)", f.read())
        cpu = m.group(1).strip() if m else cpu
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = "absent"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "uvloop": uv,
        "kernel": platform.release(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each cell")
    ap.add_argument("--conns", default="1,16,128", help="concurrency levels")
    ap.add_argument("--bodies", default="small,64k", help="response bodies")
    ap.add_argument("--repeat", type=int, default=3, help="extra rounds of the key cell")
    ap.add_argument("--quick", action="store_true", help="only the key cell (small, 16)")
    ap.add_argument("--python-load", action="store_true", help="use the Python load generator")
    ap.add_argument("--aiohttp-upstream", action="store_true", help="not nginx, even if present")
    ap.add_argument("--no-latency", action="store_true", help="skip the 50 ms latency-fault run")
    ap.add_argument("--json", metavar="FILE", help="also write all cells as JSON")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also measure the chaosproxy package in DIR (e.g. `git archive REV chaosproxy`)",
    )
    ap.add_argument(
        "--pure",
        action="store_true",
        help="also measure this tree as pure Python (CHAOSPROXY_PURE=1), beside the compiled path",
    )
    ap.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_upstream:
        serve_upstream(a.serve_upstream)
        return 0

    use_wrk = bool(shutil.which("wrk")) and not a.python_load
    load = run_wrk if use_wrk else run_python_load
    conns = [16] if a.quick else [int(c) for c in a.conns.split(",")]
    bodies = ["small"] if a.quick else a.bodies.split(",")
    use_nginx = bool(shutil.which("nginx")) and not a.aiohttp_upstream
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"load: {'wrk (core 1)' if use_wrk else 'python generator'}; proxies on core 0; "
        f"upstream {'nginx' if use_nginx else 'aiohttp+uvloop'} on core 1; "
        f"{a.seconds:.0f}s per cell; "
        "chaosproxy runs a scenario whose rules never match"
    )

    work = Path(tempfile.mkdtemp(prefix="chaosproxy-bench-"))
    scenario = work / "bench-no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    ports = {
        n: free_port()
        for n in ("up", "cp", "ys", "pa", "ph", "admin", "bf", "bfadmin", "pu", "puadmin")
    }
    upstream = f"http://127.0.0.1:{ports['up']}"

    def chaosproxy(port: str, admin: str) -> list[str]:
        """`chaosproxy run` on these ports (this tree's, a `--before` one, the pure one)."""
        return [
            PY, "-m", "chaosproxy", "run", "--upstream", upstream, "--log-level", "warning",
            "--listen", f"127.0.0.1:{ports[port]}", "--admin", f"127.0.0.1:{ports[admin]}",
            "--scenario", str(scenario),
            "--reload-interval", "0",
        ]  # fmt: skip

    chaos = chaosproxy("cp", "admin")

    def peer(script: str, port: int) -> list[str]:
        return [PY, str(HERE / script), "--upstream", upstream, "--listen", f"127.0.0.1:{port}"]

    up_argv = (
        nginx_argv(ports["up"], work / "nginx")
        if use_nginx
        else [PY, __file__, "--serve-upstream", str(ports["up"])]
    )
    targets = {
        "direct": ports["up"],
        "yardstick": ports["ys"],
        "chaosproxy": ports["cp"],
        "aiohttp+pool": ports["pa"],
        "httptools": ports["ph"],
    }
    before = chaosproxy("bf", "bfadmin")
    before_env = {**os.environ, "PYTHONPATH": str(Path(a.before).resolve())} if a.before else None
    if a.before:
        targets["before"] = ports["bf"]
    pure = chaosproxy("pu", "puadmin")
    if a.pure:
        targets["pure"] = ports["pu"]
    cells: list[Cell] = []
    key: list[tuple[float, float]] = []  # (req/s ratio, CPU-per-request ratio) per round
    rss: dict[str, float] = {}
    rounds: dict[str, list[Cell]] = {}
    latency: dict[int, dict[str, float]] = {}
    with (
        contextlib.ExitStack() as extra,
        started(pinned(1, up_argv), ports["up"]) as up,
        started(pinned(0, peer("yardstick_proxy.py", ports["ys"])), ports["ys"]) as ys,
        started(pinned(0, chaos), ports["cp"]) as cp,
        started(pinned(0, peer("probe_aiohttp_pool.py", ports["pa"])), ports["pa"]) as pa,
        started(pinned(0, peer("probe_httptools.py", ports["ph"])), ports["ph"]) as ph,
    ):
        pids = {
            "direct": up.pid,
            "yardstick": ys.pid,
            "chaosproxy": cp.pid,
            "aiohttp+pool": pa.pid,
            "httptools": ph.pid,
        }
        if a.before:
            # Not from the repository root: `-m` would import this tree's package from the cwd.
            bf = extra.enter_context(
                started(pinned(0, before), ports["bf"], env=before_env, cwd=str(HERE))
            )
            pids["before"] = bf.pid
        if a.pure:
            pure_env = {**os.environ, "CHAOSPROXY_PURE": "1"}
            pu = extra.enter_context(started(pinned(0, pure), ports["pu"], env=pure_env))
            pids["pure"] = pu.pid

        def measure(name: str, body: str, c: int, warm: bool = True) -> Cell:
            url = f"http://127.0.0.1:{targets[name]}/{body}"
            if warm:
                load(url, c, 1.0)  # pools filled, caches hot
            cpu0 = cpu_seconds(pids[name])
            rps, p50, p99, errs = load(url, c, a.seconds)
            cpu = cpu_seconds(pids[name]) - cpu0
            cpu_us = cpu / max(1.0, rps * a.seconds) * 1e6
            return Cell(name, body, c, rps, p50, p99, errs, cpu_us)

        for body in bodies:
            for c in conns:
                for name in targets:
                    x = measure(name, body, c)
                    cells.append(x)
                    print(
                        f"  {name:>12} {body:>5} c={c:<3} {x.rps:9.0f} req/s"
                        f"  p50 {x.p50_ms:7.2f} ms  p99 {x.p99_ms:7.2f} ms"
                        f"  {x.cpu_us:6.1f} us CPU/req  errors {x.errors}",
                        flush=True,
                    )
        rounds = {t: [] for t in targets if t != "direct"}
        for _ in range(a.repeat):
            for name in rounds:  # interleaved: each round measures every proxy back to back
                rounds[name].append(measure(name, "small", 16, warm=False))
            ysx, cpx = rounds["yardstick"][-1], rounds["chaosproxy"][-1]
            key.append((cpx.rps / ysx.rps, ysx.cpu_us / cpx.cpu_us))
            print(
                "  repeat small c=16: "
                + ", ".join(
                    f"{n} {r[-1].rps:.0f} req/s {r[-1].cpu_us:.1f} us" for n, r in rounds.items()
                ),
                flush=True,
            )
        rss = {name: rss_mib(pid) for name, pid in pids.items()}
        if not a.no_latency and use_wrk:
            for c in (16, 32):
                latency[c] = latency_overshoot(
                    f"http://127.0.0.1:{ports['cp']}/small",
                    f"http://127.0.0.1:{ports['admin']}",
                    max(LATENCY_SECONDS, round(a.seconds)),
                    c,
                )

    print(
        "\nratios (same run)   chaosproxy/yardstick req/s   (CPU/req)"
        "   chaosproxy/direct req/s   CPU/req vs httptools probe"
    )
    by = {(x.target, x.body, x.conns): x for x in cells}
    for body in bodies:
        for c in conns:
            cpc, ysc, dc, hc = (
                by[(t, body, c)] for t in ("chaosproxy", "yardstick", "direct", "httptools")
            )
            print(
                f"  {body:>5} c={c:<3}               {cpc.rps / ysc.rps:6.2f}x"
                f"              ({ysc.cpu_us / cpc.cpu_us:4.2f}x)"
                f"              {cpc.rps / dc.rps:6.2f}x"
                f"                  {cpc.cpu_us / hc.cpu_us:4.2f}x"
                + "".join(
                    f"   {t}/yardstick {by[(t, body, c)].rps / ysc.rps:4.2f}x"
                    for t in ("before", "pure")
                    if t in targets
                )
            )
    if 1 in conns:
        p99s = ", ".join(f"{t} {by[(t, 'small', 1)].p99_ms:.2f}" for t in targets)
        print(f"\np99 at c=1, small body (ms): {p99s}")
    print("RSS after the run (MiB): " + ", ".join(f"{t} {v:.0f}" for t, v in rss.items()))
    for c, lat in latency.items():
        print(
            f"50 ms latency fault, c={c}: p50 {lat['p50']:.2f} ms (+{lat['p50'] - 50:.2f}),"
            f" p99 {lat['p99']:.2f} ms (+{lat['p99'] - 50:.2f}) of {lat['requests']:.0f}"
            f" requests; without the fault p50 {lat['base_p50']:.2f} ms,"
            f" p99 {lat['base_p99']:.2f} ms"
        )
    if "small" in bodies and 16 in conns:
        cpc, ysc = by[("chaosproxy", "small", 16)], by[("yardstick", "small", 16)]
        key.insert(0, (cpc.rps / ysc.rps, ysc.cpu_us / cpc.cpu_us))
    if key:
        rps_r = [k[0] for k in key]
        cpu_r = [k[1] for k in key]
        verdict = "meets" if statistics.median(rps_r) >= 2.6 else "BELOW"
        print(
            f"\nkey cell small c=16, chaosproxy/yardstick over {len(key)} rounds:\n"
            f"  req/s    median {statistics.median(rps_r):.2f}x"
            f" (min {min(rps_r):.2f}x, max {max(rps_r):.2f}x): {verdict} the 2.6x target\n"
            f"  CPU/req  median {statistics.median(cpu_r):.2f}x"
            f" (min {min(cpu_r):.2f}x, max {max(cpu_r):.2f}x) (yardstick's CPU per request /"
            " chaosproxy's; steadier than req/s on a busy machine)"
        )
    if a.repeat:
        ys_med = statistics.median(x.rps for x in rounds["yardstick"])
        print(f"\nkey cell small c=16, medians over {a.repeat} interleaved rounds:")
        for name, cs in rounds.items():
            rps = statistics.median(x.rps for x in cs)
            cpu = statistics.median(x.cpu_us for x in cs)
            print(
                f"  {name:>12} {rps:8.0f} req/s ({rps / ys_med:4.2f}x yardstick)"
                f"  {cpu:6.1f} us CPU/req"
            )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "cells": [asdict(x) for x in cells],
                    "key": key,
                    "rss_mib": rss,
                    "latency_fault_ms": latency,
                },
                indent=1,
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


def latency_overshoot(url: str, admin_url: str, seconds: int, conns: int = 32) -> dict[str, float]:
    """p50/p99 at `conns` without, then with, a 50 ms latency rule added through the admin API
    (and how many delayed requests the p99 is read from)."""
    _, base_p50, base_p99, _ = run_wrk(url, conns, seconds)
    admin(
        admin_url, "POST", "/rules", {"name": "bench-50ms", "fault": {"latency": {"delay": "50ms"}}}
    )
    try:
        run_wrk(url, conns, 1)  # warm
        rps, p50, p99, _ = run_wrk(url, conns, seconds)
    finally:
        admin(admin_url, "DELETE", "/rules")
    return {
        "p50": p50,
        "p99": p99,
        "base_p50": base_p50,
        "base_p99": base_p99,
        "requests": rps * seconds,
    }


if __name__ == "__main__":
    raise SystemExit(main())
