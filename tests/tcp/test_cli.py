"""`chaosproxy run --tcp` as a user runs it: the real CLI in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

from tests.tcp.conftest import Upstream

RELAYING = re.compile(r"relaying tcp (\S+): (\S+):(\d+) -> ")
READY = re.compile(r"proxying (\S+) -> ")


async def test_run_relays_each_tcp_proxy(
    upstream: Upstream,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        "run",
        "--upstream",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--tcp",
        f"one=127.0.0.1:0:{upstream.address}",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, "CHAOSPROXY_TCP": f"two=127.0.0.1:0:{upstream.address}"},
    )
    assert proc.stderr is not None
    ports: dict[str, int] = {}
    lines: list[str] = []
    try:
        while True:
            raw = await proc.stderr.readline()
            assert raw, "exited early: " + "\n".join(lines)
            lines.append(raw.decode())
            if m := RELAYING.search(lines[-1]):
                ports[m.group(1)] = int(m.group(3))
            if READY.search(lines[-1]):
                break
        # A flag given replaces the variable's list (as every CHAOSPROXY_ default does).
        assert list(ports) == ["one"]
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["one"])
        writer.write(b"through the CLI")
        assert await reader.readexactly(15) == b"through the CLI"
        writer.close()
    finally:
        proc.terminate()
        await proc.wait()


def test_a_bad_tcp_declaration_is_one_line_and_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "run", "--upstream", "http://x", "--tcp", "pg=5432"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().endswith(
        "argument --tcp: expected NAME=LISTEN:UPSTREAM, each HOST:PORT (e.g. "
        "pg=127.0.0.1:6432:127.0.0.1:5432), got 'pg=5432'"
    ), out.stderr
