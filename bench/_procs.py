"""Process plumbing shared by the benchmark scripts: ports, core pinning, start and stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


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
