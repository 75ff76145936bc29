"""Every command that prints stops quietly when its reader goes away (`... | head`): no
BrokenPipeError traceback, the exit status a shell shows for a command a closed pipe ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosproxy.cli import SIGPIPE_EXIT
from tests.experiment.support_results import make_run

CLI = [sys.executable, "-m", "chaosproxy"]


def _many_checks(run_dir: Path, n: int) -> Path:
    """A run with n checks: `compare` then prints far more than a pipe holds (64 KiB)."""
    doc = json.loads((run_dir / "results.json").read_text())
    first = doc["checks"][0]
    doc["checks"] = [first | {"name": f"{first['name']} #{i}"} for i in range(n)]
    (run_dir / "results.json").write_text(json.dumps(doc))
    return run_dir


def test_compare_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    a = _many_checks(make_run(tmp_path / "a", failover=True), 1500)
    b = _many_checks(make_run(tmp_path / "b", failover=False), 1500)
    cmd = [*CLI, "experiment", "compare", str(a), str(b)]
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -1', "bash", *cmd],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("A: checkout-survives-bad-deploy run 9f2c1a7b (PASS)")
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""  # no traceback, no "Exception ignored" on the final flush
    assert done.returncode == SIGPIPE_EXIT  # as `head` leaves any command it cut short


@pytest.mark.parametrize(
    "args",
    [["scenarios"], ["experiment", "list"], ["schema", "--experiment"], ["--help"]],
    ids=lambda a: " ".join(a),
)
def test_a_reader_that_is_already_gone_ends_the_command_quietly(args: list[str]) -> None:
    """The pipe's read end is closed before the command writes a byte: whatever it prints
    meets a closed pipe."""
    r, w = os.pipe()
    proc = subprocess.Popen([*CLI, *args], stdout=w, stderr=subprocess.PIPE)
    os.close(w)
    os.close(r)  # the reader leaves first
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert proc.returncode in (0, SIGPIPE_EXIT)
