"""A real experiment (real upstream, real proxy subprocess, real Locust subprocess) whose
locustfile also writes down every request Locust saw: the client p95 the results report for a
phase must be the exact p95 of those requests, within the sketch's 1 % (2 % allowed here).

Nothing here depends on how fast the machine is: both numbers come from the same Locust
`request` events, so a slow machine changes the latencies, never whether they agree.
"""

from __future__ import annotations

import asyncio
import csv
import math
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from chaosproxy.common import sketch
from chaosproxy.experiment.align import ClientData
from chaosproxy.experiment.run_state import RunOptions
from chaosproxy.experiment.runner import run_experiment
from chaosproxy.experiment.series import View
from chaosproxy.experiment.spec import load_experiment_text

pytestmark = pytest.mark.slow

SCENARIO = """\
name: varied
phases:
  - name: steady
    duration: 6s
  - name: slowed
    duration: 6s
    rules:
      - match: {path: "/**"}
        fault: {latency: {delay: 150ms, jitter: 50ms}}
  - name: after
    duration: 2s
"""

EXPERIMENT = """\
name: p95-exact
scenario: varied.yaml
proxy:
  upstream: UPSTREAM
  listen: 127.0.0.1:PORT
load:
  users: 6
  spawn_rate: 6
  settle: 1s
  locustfile: recording_locustfile.py
checks:
  - name: p95 is reported
    during_phase: slowed
    metric: latency_p95
    below: 60
"""

# Locust loads this beside the plugin. One process (no workers), so one file is every request.
LOCUSTFILE = """\
from locust import HttpUser, constant, events, task

RECORD = RECORD_PATH


@events.request.add_listener
def _record(response_time=None, start_time=None, exception=None, **_):
    with open(RECORD, "a", encoding="utf-8") as f:
        f.write(f"{start_time!r} {response_time!r} {int(exception is not None)}\\n")


class Varied(HttpUser):
    wait_time = constant(0.02)

    @task
    def one(self):
        self.client.get("/items")
"""


def _exact(values: list[float], q: float) -> float:
    """Nearest rank: the ceil(q n)-th smallest."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


async def test_reported_client_p95_is_the_exact_p95_of_the_phase(
    tmp_path: Path, start_upstream: Callable[[web.Application], Awaitable[str]]
) -> None:
    rng = random.Random(20240611)

    async def varied(request: web.Request) -> web.Response:
        await asyncio.sleep(rng.uniform(0.020, 0.120))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", varied)
    upstream = await start_upstream(app)

    record = tmp_path / "requests.txt"
    (tmp_path / "recording_locustfile.py").write_text(
        LOCUSTFILE.replace("RECORD_PATH", repr(str(record)))
    )
    (tmp_path / "varied.yaml").write_text(SCENARIO)
    text = EXPERIMENT.replace("UPSTREAM", upstream).replace("PORT", "0")
    (tmp_path / "experiment.yaml").write_text(text)
    exp = load_experiment_text(text, str(tmp_path / "experiment.yaml"))
    out = tmp_path / "out"
    outcome = await run_experiment(exp, RunOptions(out=out, tty=False, workers=0))
    assert outcome.results is not None, (out / "locust.log").read_text()

    # Every request Locust saw: (start time, seconds, failed), failures included as the plugin
    # counts them.
    seen: list[tuple[float, float, int]] = []
    for line in record.read_text().splitlines():
        started, ms, failed = line.split()
        seen.append((float(started), float(ms) / 1000, int(failed)))

    # The seconds each phase was judged over, as the results labelled them.
    with (out / "timeseries.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    seconds: dict[str, set[int]] = {}
    for r in rows:
        seconds.setdefault(r["phase"], set()).add(int(r["t"]))

    phases = {p["name"]: p for p in outcome.results["phases"]}
    for name in ("steady", "slowed"):
        mine = [d for started, d, _ in seen if int(started) in seconds[name]]
        client = phases[name]["client"]
        assert len(mine) >= 30, (name, len(mine))
        # The same requests: the plugin's counts and the recording agree one for one.
        assert client["requests"] == len(mine), name
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            exact = _exact(mine, q)
            reported = client[key]
            assert reported is not None
            assert abs(reported - exact) <= 0.02 * exact, (name, key, reported, exact)
            # and within the sketch's own stated error
            assert abs(reported - exact) <= sketch.ACCURACY * exact * 1.000001

    # Every second's tenths (when within the second each request started) are the recorded
    # start times', one for one, and so is its sketch.
    client = ClientData(out / "client.jsonl")
    client.poll()
    assert client.seconds
    recorded: dict[int, View] = {}
    for started, d, failed in seen:
        v = recorded.setdefault(int(started), View())
        slot = v.tenths.setdefault(int((started - int(started)) * 10), [0, 0])
        slot[0] += 1
        slot[1] += failed
        k = sketch.key(d)
        v.sketch[k] = v.sketch.get(k, 0) + 1
    for t, v in client.seconds.items():
        assert v.tenths == recorded[t].tenths, t
        assert v.sketch == recorded[t].sketch, t
    assert set(client.seconds) == set(recorded)

    # The injected latency is there to see: the slowed phase's p95 is well above steady's.
    assert phases["slowed"]["client"]["p95"] > phases["steady"]["client"]["p95"] + 0.05
