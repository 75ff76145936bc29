"""Run the vendored toxiproxy-python suite (tests/toxiproxy/peer/) against one server.

    python tests/toxiproxy/peer_run.py toxiproxy PATH-TO-toxiproxy-server JUNIT.xml
    python tests/toxiproxy/peer_run.py chaosproxy - JUNIT.xml

The suite is written for a Toxiproxy at 127.0.0.1:8474 and listens on fixed ports (22222,
22223, 43215), so `test_peer_suite.py` runs this script in a network namespace of its own
(`unshare --net`): there those ports are always free and nothing else on the machine is
touched. Inside it this brings the loopback interface up, starts the server, waits until its
API answers, runs the suite (pytest, a JUnit file for the counts), stops the server and exits
with the suite's status.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

PEER = Path(__file__).resolve().parent / "peer"
API = ("127.0.0.1", 8474)
STARTUP = 30.0  # seconds a server gets to answer on its API port


def loopback_up() -> None:
    """`ip link set lo up` without iproute2: a new network namespace starts with lo down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, request))[1]
        if not flags & iff_up:
            fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def chaosproxy_command(api: str) -> list[str]:
    """`chaosproxy run` serving the Toxiproxy API on `api` (its HTTP upstream is never used)."""
    return [
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
        "--toxiproxy-api",
        api,
    ]


def server_command(kind: str, binary: str) -> list[str]:
    if kind == "toxiproxy":
        return [binary, "-host", API[0], "-port", str(API[1])]
    return chaosproxy_command(f"{API[0]}:{API[1]}")


def wait_for_api(server: subprocess.Popen[bytes]) -> None:
    """Until the API port accepts a connection (the server's own readiness), or it died."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before answering")
        try:
            socket.create_connection(API, timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port another process opens: no event to wait on
    raise SystemExit(f"the server did not answer on {API[0]}:{API[1]} in {STARTUP:.0f}s")


def main(kind: str, binary: str, junit: str) -> int:
    loopback_up()
    log = open(Path(junit).with_suffix(".server.log"), "wb")  # noqa: SIM115 - held open below
    server = subprocess.Popen(server_command(kind, binary), stdout=log, stderr=log)
    try:
        wait_for_api(server)
        suite = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-c",
                str(PEER / "pytest.ini"),
                "--rootdir",
                str(PEER),
                "-p",
                "no:cacheprovider",
                "-p",
                "no:locust",
                "-o",
                "asyncio_default_fixture_loop_scope=function",  # pytest-asyncio's warning
                "-o",
                "timeout=120",
                "-q",
                f"--junitxml={junit}",
                str(PEER / "test"),
            ],
            cwd=PEER,
        )
        return suite.returncode
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("toxiproxy", "chaosproxy"):
        raise SystemExit(__doc__)
    os.environ.pop("http_proxy", None)
    os.environ.pop("HTTP_PROXY", None)
    sys.exit(main(*sys.argv[1:]))
