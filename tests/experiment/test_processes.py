"""The proxy an experiment starts (`proxy:`): its admin API where `proxy.admin` says, so a
Prometheus can scrape it; off loopback with a token of the runner's own."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from chaosproxy.experiment.processes import Load, StartedProxy, free_port, spawn, start_proxy
from chaosproxy.experiment.spec import load_experiment_text

EXPERIMENT = """\
name: admin-here
scenario: post-deploy-breakage
proxy:
  upstream: http://127.0.0.1:9
  admin: {admin}
checks:
  - {{name: served, during_phase: broken-release, metric: error_rate, below: 0.02}}
"""


async def _started(tmp_path: Path, admin: str) -> StartedProxy:
    exp = load_experiment_text(EXPERIMENT.format(admin=admin))
    return await start_proxy(exp, tmp_path, None)


async def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        await r.read()
        return r.status


async def test_the_admin_api_listens_where_proxy_admin_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token in the runner's own environment (set for `ctl`) must not lock the runner out.
    monkeypatch.setenv("CHAOSPROXY_ADMIN_TOKEN", "for-ctl-only")
    port = free_port()
    proxy = await _started(tmp_path, f"127.0.0.1:{port}")
    try:
        assert proxy.admin == f"http://127.0.0.1:{port}" and proxy.token is None
        assert await _status(f"{proxy.admin}/metrics") == 200  # what Prometheus scrapes
        assert await _status(f"{proxy.admin}/scenarios") == 200
    finally:
        await proxy.child.stop()


async def test_off_loopback_the_admin_api_gets_a_token_of_the_runners_own(
    tmp_path: Path,
) -> None:
    port = free_port("0.0.0.0")
    proxy = await _started(tmp_path, f"0.0.0.0:{port}")
    try:
        assert proxy.token and proxy.admin == f"http://127.0.0.1:{port}"
        assert await _status(f"{proxy.admin}/metrics") == 200  # scraping needs no token
        assert await _status(f"{proxy.admin}/scenarios") == 401
        assert await _status(f"{proxy.admin}/scenarios", proxy.token) == 200
        # Never on the command line, where `ps` shows it to every user of the machine.
        cmdline = Path(f"/proc/{proxy.child.proc.pid}/cmdline").read_bytes().decode()
        assert "--admin\x000.0.0.0:" in cmdline and proxy.token not in cmdline
    finally:
        await proxy.child.stop()


# A stand-in for a Locust master whose shape just ended: it is quitting by itself, and a SIGINT
# in the middle of that cuts it short, as it cut Locust's quit. Its quit ends when the test
# says so (it blocks reading a FIFO until the test writes to it), so that nothing here depends
# on how long anything takes.
QUITTING = """\
import os, pathlib, signal, sys
out = pathlib.Path(sys.argv[1])
def interrupted(*_):
    out.write_text("interrupted")
    sys.exit(1)
signal.signal(signal.SIGINT, interrupted)
go = os.open(out.with_suffix(".go"), os.O_RDWR)  # open before the test may write (never blocks)
out.with_suffix(".started").write_text("")
os.read(go, 1)  # the test's word; a SIGINT meanwhile ends this at once
out.write_text("reports written")
"""


@pytest.mark.parametrize(
    ("planned_end", "got"), [(True, "reports written"), (False, "interrupted")]
)
async def test_at_the_planned_end_locust_is_left_to_stop_by_itself(
    tmp_path: Path, planned_end: bool, got: str
) -> None:
    """At the planned end the load stops by itself: no SIGINT in the middle of its quit (which
    lost locust.json once); before it (a halt, Ctrl-C), SIGINT at once."""
    out = tmp_path / "reports.txt"
    os.mkfifo(out.with_suffix(".go"))
    child = await spawn("locust", [sys.executable, "-c", QUITTING, str(out)], tmp_path / "log")
    async with asyncio.timeout(10):
        while not out.with_suffix(".started").exists():  # its SIGINT handler is in place
            await asyncio.sleep(0.01)
    stopping = asyncio.create_task(Load(child).stop(planned_end=planned_end))
    await asyncio.sleep(0)  # `stop` runs to its first wait: a SIGINT, if any, is sent by now
    try:  # the stand-in's quit may end (unless a SIGINT ended it: then no one reads)
        go = os.open(out.with_suffix(".go"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: it is gone already
        pass
    else:
        os.write(go, b"x")
        os.close(go)
    async with asyncio.timeout(30):
        await stopping
    assert out.read_text() == got
