"""Throwaway Postgres and Redis servers on loopback ports, for the database suites: started
from the Debian packages' commands (`make tools` installs them), each in a temporary directory,
ready when the server says so on its log (no polling, no sleeps). Postgres refuses to run as
root: as root it runs as the `postgres` user the package creates."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

READY_TIMEOUT = 60.0  # seconds a server may take to start on a loaded machine


def command(name: str) -> str | None:
    """A server command on PATH, or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_user() -> str | None:
    """The user to run Postgres as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and no `postgres` user to run Postgres as")
    return "postgres"


@dataclass
class Server:
    port: int
    proc: asyncio.subprocess.Process

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _start(argv: Sequence[str], ready: bytes, stream: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE if stream == "stdout" else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if stream == "stderr" else asyncio.subprocess.DEVNULL,
    )
    out = proc.stdout if stream == "stdout" else proc.stderr
    assert out is not None
    seen: list[bytes] = []
    async with asyncio.timeout(READY_TIMEOUT):
        while True:
            line = await out.readline()
            if not line:
                raise AssertionError(
                    f"{argv[0]} exited: " + b"".join(seen).decode(errors="replace")
                )
            seen.append(line)
            if ready in line:
                break

    async def drain() -> None:  # keep reading the log, so the server never blocks on it
        while await out.readline():
            pass

    asyncio.get_running_loop().create_task(drain())
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await proc.wait()


@asynccontextmanager
async def postgres() -> AsyncIterator[Server]:
    initdb, server = command("initdb"), command("postgres")
    if initdb is None or server is None:
        pytest.skip("postgres is not installed (make tools installs it, as root)")
    user = as_user()
    run_as = ["runuser", "-u", user, "--"] if user else []
    with tempfile.TemporaryDirectory(prefix="chaosproxy-pg-") as tmp:
        if user:
            os.chown(tmp, pwd.getpwnam(user).pw_uid, -1)
        data = os.path.join(tmp, "data")
        subprocess.run(
            [*run_as, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        port = free_port()
        proc = await _start(
            [
                *run_as,
                server,
                "-D",
                data,
                "-k",
                tmp,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-F",
                "-c",
                "logging_collector=off",
            ],
            b"ready to accept connections",
            "stderr",
        )
        try:
            yield Server(port, proc)
        finally:
            await _stop(proc)


@asynccontextmanager
async def redis() -> AsyncIterator[Server]:
    server = command("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (make tools installs it, as root)")
    with tempfile.TemporaryDirectory(prefix="chaosproxy-redis-") as tmp:
        port = free_port()
        proc = await _start(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            b"Ready to accept connections",
            "stdout",
        )
        try:
            yield Server(port, proc)
        finally:
            await _stop(proc)
