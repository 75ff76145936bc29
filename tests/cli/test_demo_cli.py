"""`chaosproxy demo`: the guided tour runs end to end through real sockets and stops by itself."""

from __future__ import annotations

import re
import subprocess
import sys


def _row(out: str, phase: str, user: str) -> list[int]:
    m = re.search(rf"^{phase}\s+{user}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", out, re.M)
    assert m, f"no row for {phase}/{user} in:\n{out}"
    return [int(x) for x in m.groups()]


def test_tour_shows_each_phase_as_the_users_saw_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "demo", "--duration", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    total, ok, _, _ = _row(out, "healthy", "desktop")
    assert total > 0 and ok == total
    total, _, errors, _ = _row(out, "broken-release", "mobile")
    assert total > 0 and errors == total
    assert _row(out, "mobile-trouble", "desktop")[3] == 0
    assert re.search(r"faults injected: .*\d+ reset", out)
    total, ok, _, _ = _row(out, "recovered", "mobile")
    assert ok == total
    assert "Ctrl-C stops it." in out
