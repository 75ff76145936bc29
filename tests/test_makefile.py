"""`make demo` as a user stops it: Ctrl-C in a terminal ends it without an error from make."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def read_until(fd: int, marker: bytes, limit: float) -> bytes:
    """Terminal output until `marker` shows (or the child closes the terminal)."""
    out = b""
    deadline = time.monotonic() + limit
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal closed: every process on it ended
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="no bootstrapped .venv")
def test_ctrl_c_stops_make_demo_without_an_error_from_make(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session with this terminal, as a user's shell would start it
        out = f"DEMO_ARGS=--out {tmp_path}"
        os.execvp("make", ["make", "-s", "-C", str(ROOT), "demo", out])
    try:
        started = read_until(fd, b"load:", 120)
        assert b"load:" in started, started.decode(errors="replace")
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to make, its shell and the demo
        rest = read_until(fd, b"\0never", 120)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    text = (started + rest).decode(errors="replace")
    assert "make: ***" not in text and "Traceback" not in text, text
    # make ends the way an interrupted program should: by SIGINT (the shell prints nothing).
    assert os.waitstatus_to_exitcode(status) in (0, -signal.SIGINT), text
