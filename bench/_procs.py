"""Process plumbing shared by the benchmark scripts: ports, core pinning, start and stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: int, argv: list[str]) -> list[str]:
    """`argv` run on one core (taskset), when the machine has it."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *argv]
    return argv


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@contextlib.contextmanager
def started(
    argv: list[str],
    port: int | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` (waiting until `port` listens, if given); terminate it on the way out.
    Its output goes to `log` when given, else nowhere."""
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=cwd)
    try:
        if port is not None:
            wait_listening(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            out.close()  # type: ignore[union-attr]


def admin(base: str, method: str, path: str, body: object | None = None) -> object:
    """One call to a proxy's admin API (JSON in, JSON out)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def run_peer(
    main: Callable[[str, int, str], Coroutine[Any, Any, None]], doc: str | None, listen: str
) -> None:
    """The command line every peer proxy shares: `--listen HOST:PORT --upstream URL`, on uvloop
    when it is installed."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--listen", default=listen)
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(host, int(port), a.upstream))
