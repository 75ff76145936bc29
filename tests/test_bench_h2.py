"""The HTTP/2 benches run end to end with tiny settings, so they cannot rot unseen; and their
measuring stick, bench/h2_yardstick_proxy.py, really proxies (a stick that dropped bytes would
make every ratio lie). Nothing here is timed: the benches print numbers, these tests only hold
that a run completes cleanly (exit 0: no failed request, no 4xx/5xx) and prints its parts.

Needs h2load (Debian nghttp2-client) and nginx, as the benches do (`make tools`, `make bench`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from _h2load import missing_tools, nginx_argv  # noqa: E402  (bench/ is not a package)
from _procs import free_port, started  # noqa: E402

pytestmark = pytest.mark.skipif(
    bool(missing_tools()), reason=f"{' and '.join(missing_tools())} not installed (make tools)"
)


def bench(script: str, *args: str) -> str:
    """Run a bench script as a user does; its output, after checking it exited 0. It runs in a
    process group of its own: a hang kills it with everything it started (proxies, nginx,
    h2load), instead of stalling the suite or leaving them behind."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script} did not finish in 300 s:\n{out}{err}")
    assert proc.returncode == 0, out + err
    return out


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """The benches' nginx: (HTTP/1.1 port, h2c port)."""
    h1, h2 = free_port(), free_port()
    with started(nginx_argv(h1, h2, tmp_path / "nginx"), h1):
        yield h1, h2


def curl_h2(url: str) -> bytes:
    done = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-o", "-", url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_h2_yardstick_carries_bodies_unchanged(nginx: tuple[int, int]) -> None:
    _, h2 = nginx
    port = free_port()
    argv = [sys.executable, str(BENCH / "h2_yardstick_proxy.py"),
            "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{h2}"]  # fmt: skip
    with started(argv, port, cwd=str(BENCH)):
        for path in ("/small", "/64k"):
            direct = curl_h2(f"http://127.0.0.1:{h2}{path}")
            assert len(direct) > 0
            assert curl_h2(f"http://127.0.0.1:{port}{path}") == direct
        assert curl_h2(f"http://127.0.0.1:{port}/64k") == bytes(range(256)) * 256


def test_h2_passthrough_runs() -> None:
    # a warm-up: a cold proxy's first answer once took a whole 0.3 s cell
    out = bench(
        "h2_passthrough.py", "--seconds", "0.4", "--warm", "0.3", "--rounds", "1",
        "--conns", "2", "--streams", "2",
    )  # fmt: skip
    for target in ("yardstick h2", "chaosproxy h2", "chaosproxy h2>1", "chaosproxy h1"):
        for body in ("small", "64k"):
            assert re.search(rf"round 1 +{re.escape(target)} +{body} +\d+ req/s", out), target
    assert "chaosproxy h2 / yardstick h2" in out
    assert "chaosproxy h2>1 / chaosproxy h1" in out


def test_h2_idle_connections_runs() -> None:
    out = bench("h2_idle_connections.py", "--conns", "20")
    assert "h2c / HTTP/1.1 per idle connection" in out
    assert out.count("  200") == 2  # a request on a held connection answered, each protocol


def test_h2_faults_runs() -> None:
    out = bench(
        "h2_faults.py", "--seconds", "0.5", "--warm", "0", "--inflight", "4",
        "--grpc-inflight", "4",
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith("          4 ")]
    assert [r[1] for r in rows] == ["h2c", "HTTP/1.1"]
    grpc = out.split("gRPC unary calls", 1)[1]  # the gRPC cells, printed beside them
    for cell in ("direct", "proxy, no fault", "proxy, 50 ms latency", "overshoot p50/p99"):
        assert f"  {cell} " in grpc
