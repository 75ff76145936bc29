"""Soak: the real proxy at ~70 % of its measured capacity for minutes, while scenarios and ad-hoc
rules churn through the admin API. Exits 1 on resource growth or on any error a client saw that
no injected fault explains; prints a summary either way.

    python bench/soak.py                       # 5 minutes
    python bench/soak.py --duration 25         # the short form the slow test suite runs
    python bench/soak.py --rate 3000           # skip the capacity probe, hold 3000 req/s
    python bench/soak.py --json soak.json      # also write the summary and every sample

Rig: `chaosproxy run` (subprocess, journal on, hot reload on) on core 0; the upstream (nginx when
installed, else an aiohttp server) and this script's load generator (`_soakload.py`) on core 1
(taskset). Capacity is probed closed-loop with no fault, then the generator holds `--load` of it
open-loop while `_soakchurn.py` works the admin API. RSS, open fds, threads and the proxy loop's
tasks (`chaosproxy_tasks` on /metrics) are sampled every second.

After the run the fault journal (rotated files included) is reconciled with every request's
outcome by request id, as tests/e2e/test_accounting.py does: a request that was not ok must have
exactly one journal entry whose fault explains what the client saw, and an ok request none that
would have broken it. `_soakjudge.py` holds that and the growth rule.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from _procs import free_port, pinned, started
from _soakchurn import Churn, scenario_yaml
from _soakjudge import NAMES, judge_growth, read_journal, reconcile
from _soakload import Load

HERE = Path(__file__).resolve().parent
PY = sys.executable


def proc_status(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    rss = re.search(r"VmRSS:\s+(\d+) kB", text)
    threads = re.search(r"Threads:\s+(\d+)", text)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return {
        "rss_mib": int(rss.group(1)) / 1024 if rss else float("nan"),
        "threads": float(threads.group(1)) if threads else float("nan"),
        "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
        "cpu_s": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
    }


def gauge(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


async def sample(pid: int, admin: str, load: Load, t0: float, until: float,
                 rows: list[dict[str, float]]) -> None:  # fmt: skip
    async with aiohttp.ClientSession() as s:
        while (now := time.monotonic()) < until:
            row = {"t": now - t0, **proc_status(pid)}
            async with s.get(admin + "/metrics") as r:
                text = await r.text()
            row["tasks"] = gauge(text, "chaosproxy_tasks")
            row["inflight"] = gauge(text, "chaosproxy_inflight_requests")
            row["requests"] = float(load.done())
            row["connections"] = float(load.connections)
            rows.append(row)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))


def upstream_argv(port: int, work: Path) -> list[str]:
    import passthrough

    if shutil.which("nginx"):
        return passthrough.nginx_argv(port, work / "nginx")
    return [PY, str(HERE / "passthrough.py"), "--serve-upstream", str(port)]


async def soak(
    a: argparse.Namespace, pid: int, ports: dict[str, int], work: Path
) -> dict[str, Any]:
    load = Load("127.0.0.1", ports["proxy"], a.conns)
    admin = f"http://127.0.0.1:{ports['admin']}"
    sweeper = asyncio.create_task(load.sweep())
    capacity = a.rate / a.load if a.rate else None
    probe: dict[str, float] = {}
    if capacity is None:  # closed loop, no fault: what the rig carries
        t = time.monotonic()
        await asyncio.gather(*(load.closed_worker(t + 1.0) for _ in range(a.conns)))  # warm-up
        before, cpu0, t0 = load.done(), proc_status(pid)["cpu_s"], time.monotonic()
        own0 = time.process_time()
        await asyncio.gather(*(load.closed_worker(t0 + a.probe) for _ in range(a.conns)))
        elapsed = time.monotonic() - t0
        capacity = (load.done() - before) / elapsed
        probe = {
            "rps": capacity,
            "proxy_cpu": (proc_status(pid)["cpu_s"] - cpu0) / elapsed,
            "generator_cpu": (time.process_time() - own0) / elapsed,
        }
    rate = capacity * a.load
    print(
        f"capacity {capacity:.0f} req/s; holding {rate:.0f} req/s for {a.duration:.0f}s", flush=True
    )
    first = load.done()
    t0 = time.monotonic()
    until = t0 + a.duration
    rows: list[dict[str, float]] = []
    churn = Churn(admin, work / "scenarios", a.seed)
    workers = [asyncio.create_task(load.paced_worker()) for _ in range(a.conns)]
    await asyncio.gather(
        load.pace(rate, until),
        churn.run(a.churn_every, until),
        sample(pid, admin, load, t0, until, rows),
    )
    for _ in workers:
        load.queue.put_nowait(-1)
    await asyncio.gather(*workers)  # every request answered, timed out or failed
    elapsed = time.monotonic() - t0
    sweeper.cancel()
    journal = read_journal(work / "journal.jsonl")
    busy = rows[-1]["cpu_s"] - rows[0]["cpu_s"] if len(rows) > 1 else 0.0
    span = rows[-1]["t"] - rows[0]["t"] if len(rows) > 1 else 1.0
    explained, unexplained = reconcile(bytes(load.outcomes), load.statuses, journal)
    return {
        "duration_s": round(elapsed, 1),
        "requests": len(load.outcomes),
        "soak_requests": len(load.outcomes) - first,
        "rate": round((len(load.outcomes) - first) / elapsed, 1),
        "target_rate": round(rate, 1),
        "capacity": round(capacity, 1),
        "probe": probe,
        "proxy_cpu": round(busy / span, 3),
        "missed": load.missed,
        "connections": load.connections,
        "outcomes": dict(Counter(NAMES[o] for o in load.outcomes)),
        "explained": dict(explained),
        "unexplained": unexplained,
        "admin_ops": churn.ops,
        "admin_failures": churn.failures,
        "growth": judge_growth(rows),
        "samples": rows,
    }


def summary(r: dict[str, Any], log_problems: list[str]) -> str:
    g = r["growth"]
    lines = [
        f"duration {r['duration_s']}s, {r['requests']} requests ({r['soak_requests']} in the "
        f"soak) at {r['rate']:.0f} req/s = {100 * r['rate'] / r['capacity']:.0f}% of capacity "
        f"{r['capacity']:.0f} req/s; {r['missed']} not sent in time; {r['connections']} "
        f"connections; {r['admin_ops']} admin calls",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())),
        "explained by the journal: "
        + (", ".join(f"{k} {v}" for k, v in sorted(r["explained"].items())) or "none"),
        f"unexplained: {len(r['unexplained'])}",
    ]
    if r["probe"]:
        p = r["probe"]
        lines.append(
            f"capacity probe (closed loop, no fault): proxy {100 * p['proxy_cpu']:.0f}% of a "
            f"core, generator {100 * p['generator_cpu']:.0f}%"
        )
    lines.append(f"proxy CPU during the soak: {100 * r['proxy_cpu']:.0f}% of a core")
    for name, m in g.items():
        lines.append(
            f"{name:8} start {m['start']:.1f}  end {m['end']:.1f}  max {m['max']:.1f}  "
            f"second-half growth {m['growth']:+.2f} (allowed {m['allowed']:.2f})"
            + ("  GROWS" if m["grows"] else "")
        )
    lines += [f"UNEXPLAINED {u}" for u in r["unexplained"][:20]]
    lines += [f"ADMIN {f}" for f in r["admin_failures"][:20]]
    lines += [f"LOG {p}" for p in log_problems[:20]]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0, help="seconds at the target rate")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of capacity to hold")
    ap.add_argument("--rate", type=float, help="hold this rate (req/s) instead of probing")
    ap.add_argument("--probe", type=float, default=5.0, help="seconds of the capacity probe")
    ap.add_argument("--conns", type=int, default=64, help="client keep-alive connections")
    ap.add_argument("--churn-every", type=float, default=1.0, help="seconds between admin steps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write the summary and samples as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (journal, log)")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="chaosproxy-soak-"))
    (work / "scenarios").mkdir()
    (work / "scenarios" / "soak-file.yaml").write_text(scenario_yaml("soak-file", 0))
    ports = {n: free_port() for n in ("up", "proxy", "admin")}
    proxy = [
        PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{ports['up']}",
        "--listen", f"127.0.0.1:{ports['proxy']}", "--admin", f"127.0.0.1:{ports['admin']}",
        "--scenario-dir", str(work / "scenarios"), "--journal", str(work / "journal.jsonl"),
        "--reload-interval", "1s", "--log-level", "warning",
    ]  # fmt: skip
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the generator shares core 1 with the upstream
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    log = work / "proxy.log"
    # The chaosproxy of this checkout, whichever one the interpreter has installed.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    }
    with (
        started(pinned(1, upstream_argv(ports["up"], work)), ports["up"]),
        started(pinned(0, proxy), ports["proxy"], env=env, cwd=str(HERE.parent), log=log) as cp,
    ):
        result = asyncio.run(soak(a, cp.pid, ports, work))
    problems = [
        line for line in log.read_text(errors="replace").splitlines()
        if "Traceback" in line or " ERROR " in line or "CRITICAL" in line
    ]  # fmt: skip
    result["log_problems"] = problems
    print(summary(result, problems))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    failed = [
        *(f"{n} grows" for n, m in result["growth"].items() if m["grows"]),
        *(["unexplained client errors"] if result["unexplained"] else []),
        *(["admin calls failed"] if result["admin_failures"] else []),
        *(["errors in the proxy log"] if problems else []),
    ]
    if a.keep or failed:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("FAIL: " + "; ".join(failed) if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
