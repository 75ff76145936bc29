"""Memory held by idle keep-alive client connections: chaosproxy against the yardstick and the
httptools probe, in the same run.

Each proxy (on core 0, in front of nginx or the aiohttp upstream of passthrough.py on core 1)
gets `--conns` client connections (default 5 000) that each send one request, read the answer
and then stay open and silent, as a fleet of keep-alive clients between requests does. It prints
each proxy's RSS before and while holding them, and the memory per held connection. A sample
request on a held connection at the end shows they were still served, not dropped.

    .venv/bin/python bench/idle_connections.py
    .venv/bin/python bench/idle_connections.py --conns 10000

The bench raises its own open-file limit to the hard limit (children inherit it); with a hard
limit below about twice `--conns` it says so and holds fewer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from _procs import free_port, pinned, started
from passthrough import NO_MATCH_SCENARIO, nginx_argv, rss_mib

HERE = Path(__file__).resolve().parent
PY = sys.executable
REQUEST = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _one(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await _answer(reader)
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def hold(port: int, conns: int, pid: int) -> dict[str, float]:
    """Open `conns` connections (64 at a time), measure RSS while all are held, then use one."""
    base = rss_mib(pid)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for start in range(0, conns, 64):
        held += await asyncio.gather(*(_one(port) for _ in range(min(64, conns - start))))
    await asyncio.sleep(1.0)  # let the proxy settle (a measurement pause, not synchronisation)
    holding = rss_mib(pid)
    reader, writer = held[len(held) // 2]
    writer.write(REQUEST)
    status = await _answer(reader)
    for _, w in held:
        w.close()
    return {
        "base": base,
        "holding": holding,
        "per_conn_kib": (holding - base) * 1024 / max(1, len(held)),
        "ok": float(status.endswith(b"200 OK")),
        "held": float(len(held)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--aiohttp-upstream", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    conns = min(a.conns, max(64, (soft - 200) // 2))
    if conns < a.conns:
        print(f"open-file limit {soft}: holding {conns} connections, not {a.conns}")
    work = Path(tempfile.mkdtemp(prefix="chaosproxy-idle-"))
    scenario = work / "no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    up, cp, admin, ys, ph = (free_port() for _ in range(5))
    upstream = f"http://127.0.0.1:{up}"
    use_nginx = bool(shutil.which("nginx")) and not a.aiohttp_upstream
    up_argv = (
        nginx_argv(up, work / "nginx")
        if use_nginx
        else [PY, str(HERE / "passthrough.py"), "--serve-upstream", str(up)]
    )
    chaos = [
        PY, "-m", "chaosproxy", "run", "--upstream", upstream, "--log-level", "warning",
        "--listen", f"127.0.0.1:{cp}", "--admin", f"127.0.0.1:{admin}",
        "--scenario", str(scenario), "--reload-interval", "0",
        "--max-connections", str(conns + 100),
    ]  # fmt: skip

    def peer(script: str, port: int) -> list[str]:
        return [PY, str(HERE / script), "--upstream", upstream, "--listen", f"127.0.0.1:{port}"]

    results: dict[str, dict[str, float]] = {}
    with started(pinned(1, up_argv), up):
        for name, argv, port in (
            ("chaosproxy", chaos, cp),
            ("yardstick", peer("yardstick_proxy.py", ys), ys),
            ("httptools probe", peer("probe_httptools.py", ph), ph),
        ):
            with started(pinned(0, argv), port, cwd=str(HERE)) as proc:
                results[name] = asyncio.run(hold(port, conns, proc.pid))
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"{conns} idle keep-alive client connections (one request each, then silent); "
        f"upstream {'nginx' if use_nginx else 'aiohttp'}"
    )
    print(f"  {'proxy':<16} {'RSS before':>10} {'holding':>9} {'KiB/conn':>9}  request after")
    for name, r in results.items():
        print(
            f"  {name:<16} {r['base']:8.1f} MiB {r['holding']:6.1f} MiB {r['per_conn_kib']:9.1f}"
            f"  {'200' if r['ok'] else 'FAILED'}"
        )
    ys_held = results["yardstick"]["holding"]
    print(f"chaosproxy / yardstick RSS holding: {results['chaosproxy']['holding'] / ys_held:.2f}x")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
