"""`run --workers 2` against `--workers 1`, measured in one run, alternating.

Prints, per round and as medians: requests/s, the CPU time of the whole proxy (supervisor and
workers) per request, and how the kernel spread the connections over the workers; then the
ratios. No assertion: numbers to read.

What a 2-core machine can and cannot show: the target (≥ 1.7x with two workers) assumes
each worker has a core and the load generator a third. Here wrk and the upstream are pinned to
core 1, and the proxy may use both cores, so two workers share core 1 with the load: the
measured req/s ratio is a floor. The CPU per request is what scaling depends on once cores are
free: with N workers each owning a core, throughput is N / (CPU per request), so the "implied"
ratio is 2 x CPU/req(1 worker) / CPU/req(2 workers) — an upper bound (it ignores what the kernel
and memory share).

    python bench/workers.py                        # 3 rounds, 5 s each, 64 connections
    python bench/workers.py --rounds 5 --seconds 8 --conns 128
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _procs import free_port, pinned, started
from passthrough import NO_MATCH_SCENARIO, cpu_seconds, nginx_argv, run_wrk

PY = sys.executable


@dataclass
class Round:
    workers: int
    rps: float
    cpu_us: float  # CPU of the supervisor and every worker, per request
    supervisor_us: float  # of which the supervisor (0 with one worker: there is none)
    shares: list[float]  # fraction of the requests each worker served
    errors: int


def get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def metrics_requests(admin: str) -> float:
    with urllib.request.urlopen(admin + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chaosproxy_requests_total{")
    )


def wait_ready(admin: str, workers: int, timeout: float = 60.0) -> list[dict[str, object]]:
    """Until the admin answers with every worker up; the workers as `/status` lists them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = get(admin + "/status")
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
            continue
        assert isinstance(status, dict)
        found = status.get("workers", [])
        if workers == 1 or len(found) == workers:
            return list(found)
        time.sleep(0.1)
    raise SystemExit(f"chaosproxy --workers {workers} not ready after {timeout:.0f}s")


def measure(argv: list[str], workers: int, conns: int, seconds: float) -> Round:
    port, admin_port = free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    cmd = [*argv, "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin_port}"]
    cmd += ["--workers", str(workers)]
    url = f"http://127.0.0.1:{port}/small"
    with started(cmd) as proc:
        found = wait_ready(admin, workers)
        pids = [proc.pid] + [int(str(w["pid"])) for w in found]
        admins = [str(w["admin"]) for w in found] or [admin]
        run_wrk(url, conns, 1)  # warm-up
        before = [cpu_seconds(p) for p in pids]
        counted = [metrics_requests(a) for a in admins]
        rps, _, _, errors = run_wrk(url, conns, seconds)
        used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
        served = [metrics_requests(a) - c for a, c in zip(admins, counted, strict=True)]
    total = sum(served) or 1.0
    return Round(
        workers,
        rps,
        sum(used) / total * 1e6,
        used[0] / total * 1e6 if workers > 1 else 0.0,
        [s / total for s in served],
        errors,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of 1 and 2 workers")
    ap.add_argument("--seconds", type=float, default=5.0, help="wrk duration per measurement")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    a = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        raise SystemExit("needs wrk and nginx (Debian packages; `make bench` installs them)")

    work = Path(tempfile.mkdtemp(prefix="chaosproxy-bench-workers-"))
    scenario = work / "bench-no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    up_port = free_port()
    argv = [
        PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{up_port}",
        "--log-level", "warning", "--scenario", str(scenario), "--reload-interval", "0",
    ]  # fmt: skip
    print(
        f"wrk -t1 -c{a.conns} and nginx pinned to core 1; the proxy unpinned (both cores); "
        f"{a.seconds:.0f}s per measurement after 1s warm-up; {a.rounds} rounds, alternating"
    )
    rounds: dict[int, list[Round]] = {1: [], 2: []}
    with started(pinned(1, nginx_argv(up_port, work / "nginx")), port=up_port):
        for i in range(a.rounds):
            for n in (1, 2) if i % 2 == 0 else (2, 1):
                r = measure(argv, n, a.conns, a.seconds)
                rounds[n].append(r)
                shares = "/".join(f"{s:.0%}" for s in r.shares)
                print(
                    f"round {i + 1} workers={n}: {r.rps:8.0f} req/s  "
                    f"{r.cpu_us:6.1f} µs CPU/req (supervisor {r.supervisor_us:4.1f})  "
                    f"served {shares}  errors {r.errors}"
                )
    rps = {n: statistics.median(r.rps for r in rs) for n, rs in rounds.items()}
    cpu = {n: statistics.median(r.cpu_us for r in rs) for n, rs in rounds.items()}
    print(f"median workers=1: {rps[1]:8.0f} req/s  {cpu[1]:6.1f} µs CPU/req")
    print(f"median workers=2: {rps[2]:8.0f} req/s  {cpu[2]:6.1f} µs CPU/req")
    print(f"measured req/s ratio 2/1 (load generator sharing the cores): {rps[2] / rps[1]:.2f}x")
    print(f"CPU per request ratio 2/1: {cpu[2] / cpu[1]:.2f}x")
    print(f"implied ratio with a core per worker and one for the load: {2 * cpu[1] / cpu[2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
