"""Loaded by Locust beside any locustfile (`-f LOCUSTFILE,plugin.py`): never imported by
chaosproxy itself, since importing Locust patches the whole process with gevent.

It does three things for the experiment runner:
- counts every request per second **it started** (count, failures, latency histogram in the
  proxy's own buckets, a 1 % latency sketch, and count and failures per tenth of that second)
  and appends those counts as JSON lines to `--chaos-out`; in distributed mode the workers send
  theirs to the master with their regular reports and the master writes;
- follows the plan file `--chaos-plan` (`ChaosShape`): a warm-up user count until the runner
  has started the scenario, then stages at absolute wall-clock times, then stop;
- puts `X-Chaos-Run: <id>` on every request of every user class, so the proxy can keep the
  experiment's traffic apart from the rest;
- with a control group (`--chaos-cohort '{"seed": S, "share": s}'`), labels each request with
  its user's cohort — the proxy's own hash of the user's `X-Chaos-User` id
  (`chaosproxy.common.cohort`), read from the request's context `chaos_user` (the bundled
  locustfile sets it; a request without it is in neither cohort) — and counts each cohort's
  requests the same way, under `"c": {"fault": {...}, "control": {...}}`;
- counts gRPC calls (`GrpcUser`, whose request events carry `grpc_status`) by status name
  under `"g"`.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import random
import time
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

# The proxy's latency buckets (chaosproxy.observe.stats.BOUNDS), repeated so this file needs nothing
# but Locust: ~1.25x apart from 0.5 ms to 60 s.
BOUNDS = tuple(round(0.0005 * 1.25**i, 6) for i in range(int(math.log(60 / 0.0005, 1.25)) + 2))
RUN_HEADER = "X-Chaos-Run"

# chaosproxy.common.sketch.key, repeated for the same reason (a test holds them equal):
# DDSketch's logarithmic mapping at 1 % relative error, durations in seconds.
_LOG_GAMMA = math.log((1 + 0.01) / (1 - 0.01))


def _key(seconds: float) -> int:
    return math.ceil(math.log(max(seconds, 1e-6)) / _LOG_GAMMA)


# second -> [requests, failures, {bucket: count}, {sketch key: count},
#            {tenth of the second: [requests, failures]}, {cohort: the same five},
#            {gRPC status name: calls}]
_pending: dict[int, list[Any]] = {}
_cohort: tuple[int, float] | None = None  # (seed, share) of the scenario's control group


def _options(parser: Any) -> None:
    parser.add_argument("--chaos-plan", default="", help="chaosproxy: the load plan file")
    parser.add_argument(
        "--chaos-out", default="", help="chaosproxy: per-second counts (JSON lines)"
    )
    parser.add_argument("--chaos-run-id", default="", help="chaosproxy: the X-Chaos-Run value")
    parser.add_argument("--chaos-seed", default="", help="chaosproxy: seeds task choice")
    parser.add_argument(
        "--chaos-cohort", default="", help="chaosproxy: the control group (JSON: seed, share)"
    )


def _init(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    runner = environment.runner
    out = getattr(opts, "chaos_out", "") if opts else ""
    if runner is not None and out and not isinstance(runner, WorkerRunner):
        gevent.spawn(_writer, environment, out)


def _test_start(environment: Environment, **_: Any) -> None:
    """On every process that runs users, once the options are final (a remote worker gets the
    master's custom options with its first spawn message, after `init`)."""
    opts = environment.parsed_options
    seed = getattr(opts, "chaos_seed", "") if opts else ""
    if seed:
        random.seed(f"{seed}:{os.getpid()}")
    global _cohort
    spec = getattr(opts, "chaos_cohort", "") if opts else ""
    if spec:
        doc = json.loads(spec)
        _cohort = (int(doc.get("seed") or 0), float(doc["share"]))
    run_id = getattr(opts, "chaos_run_id", "") if opts else ""
    if run_id:
        for cls in environment.user_classes:
            if getattr(cls, "_chaos_run_id", None) != run_id:
                _tag(cls, run_id)
                setattr(cls, "_chaos_run_id", run_id)  # noqa: B010


def _tag(cls: Any, run_id: str) -> None:
    """Every request of this user class carries the run id (HttpUser and FastHttpUser)."""
    if hasattr(cls, "default_headers"):  # FastHttpUser: read when its client is built
        cls.default_headers = {**(cls.default_headers or {}), RUN_HEADER: run_id}
        return
    original = getattr(cls, "_chaos_original_init", None) or cls.__init__
    cls._chaos_original_init = original

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        headers = getattr(getattr(self, "client", None), "headers", None)
        if headers is not None:
            headers[RUN_HEADER] = run_id

    cls.__init__ = init


def _on_request(
    response_time: float | None = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    seconds = (response_time or 0.0) / 1000.0
    started = start_time if start_time is not None else time.time() - seconds
    sec = int(started)
    slot = _pending.get(sec)
    if slot is None:
        slot = _pending[sec] = [0, 0, {}, {}, {}, {}, {}]
    failed = exception is not None
    _count(slot, seconds, started - sec, failed)
    status = (context or {}).get("grpc_status")  # a GrpcUser's call: its status name
    if status:
        slot[6][status] = slot[6].get(status, 0) + 1
    user = (context or {}).get("chaos_user") if _cohort is not None else None
    if user and _cohort is not None:
        from chaosproxy.common.cohort import label_of  # the proxy's own hash

        label = label_of(_cohort[0], str(user), _cohort[1])
        sub = slot[5].get(label)
        if sub is None:
            sub = slot[5][label] = [0, 0, {}, {}, {}]
        _count(sub, seconds, started - sec, failed)


def _count(slot: list[Any], seconds: float, into_second: float, failed: bool) -> None:
    """One request into a slot: count, failure, histogram bucket, sketch key, tenth."""
    slot[0] += 1
    if failed:
        slot[1] += 1
    hist = slot[2]
    b = bisect.bisect_left(BOUNDS, seconds)
    hist[b] = hist.get(b, 0) + 1
    sk = slot[3]
    k = _key(seconds)
    sk[k] = sk.get(k, 0) + 1
    d = min(9, max(0, int(into_second * 10)))
    tenth = slot[4].get(d)
    if tenth is None:
        tenth = slot[4][d] = [0, 0]
    tenth[0] += 1
    if failed:
        tenth[1] += 1


def _take() -> dict[str, Any]:
    global _pending
    taken, _pending = _pending, {}
    return {str(k): v for k, v in taken.items()}


def _report(client_id: str, data: dict[str, Any]) -> None:
    data["chaosproxy"] = _take()


def _worker_report(client_id: str, data: dict[str, Any]) -> None:
    for sec, rec in (data.get("chaosproxy") or {}).items():
        slot = _pending.setdefault(int(sec), [0, 0, {}, {}, {}, {}, {}])
        _merge(slot, rec)
        for label, sub in (rec[5] if len(rec) > 5 else {}).items():
            _merge(slot[5].setdefault(label, [0, 0, {}, {}, {}]), sub)
        for status, n in (rec[6] if len(rec) > 6 else {}).items():
            slot[6][status] = slot[6].get(status, 0) + n


def _merge(slot: list[Any], rec: list[Any]) -> None:
    """A worker's counts of one second (or one cohort of it) into the master's."""
    slot[0] += rec[0]
    slot[1] += rec[1]
    for i in (2, 3):  # histogram, sketch: counts by key
        into = slot[i]
        for b, c in (rec[i] if len(rec) > i else {}).items():
            into[int(b)] = into.get(int(b), 0) + c
    for d, (n, f) in (rec[4] if len(rec) > 4 else {}).items():
        tenth = slot[4].setdefault(int(d), [0, 0])
        tenth[0] += n
        tenth[1] += f


def _writer(environment: Environment, path: str) -> None:
    """Once a second, and once more when Locust quits: the new counts, then the user count."""
    global _out
    _out = (environment, path)
    while True:
        gevent.sleep(1.0)
        _flush()


_out: tuple[Environment, str] | None = None


def _by_second(item: tuple[str, Any]) -> int:
    return int(item[0])


def _record(slot: list[Any]) -> dict[str, Any]:
    n, fails, hist, sk, tenths = slot[:5]
    return {"n": n, "f": fails, "h": hist, "s": sk, "d": tenths}


def _flush(**_: Any) -> None:
    if _out is None:
        return
    environment, path = _out
    runner = environment.runner
    users = runner.user_count if runner is not None else 0
    lines = []
    for sec, slot in sorted(_take().items(), key=_by_second):
        rec = _record(slot)
        rec["t"] = int(sec)
        if len(slot) > 5 and slot[5]:
            rec["c"] = {label: _record(sub) for label, sub in sorted(slot[5].items())}
        if len(slot) > 6 and slot[6]:
            rec["g"] = dict(sorted(slot[6].items()))
        lines.append(json.dumps(rec))
    workers = len(runner.clients) if isinstance(runner, MasterRunner) else None
    lines.append(json.dumps({"now": time.time(), "users": users, "workers": workers}))
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


events.init_command_line_parser.add_listener(_options)
events.init.add_listener(_init)
events.test_start.add_listener(_test_start)
events.request.add_listener(_on_request)
events.report_to_master.add_listener(_report)
events.worker_report.add_listener(_worker_report)
events.quitting.add_listener(_flush)


class ChaosShape(LoadTestShape):
    """Users over time from the runner's plan file (re-read when it changes):

    `{"warmup": [users, rate], "stages": [[at, users, rate], ...], "end": at | null}`,
    times in Unix seconds. Before the first stage: the warm-up; at or after `end`: stop.
    """

    def __init__(self) -> None:
        super().__init__()
        self._mtime = -1.0
        self._plan: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        opts = self.runner.environment.parsed_options if self.runner is not None else None
        path = getattr(opts, "chaos_plan", "") if opts else ""
        if not path:
            return {"warmup": [1, 1], "stages": [], "end": None}
        with contextlib.suppress(OSError, ValueError):
            mtime = os.stat(path).st_mtime
            if mtime != self._mtime:
                with open(path, encoding="utf-8") as f:
                    self._plan = json.load(f)
                self._mtime = mtime
        return self._plan

    def tick(self) -> tuple[int, float] | None:
        plan = self._read()
        now = time.time()
        end = plan.get("end")
        if end is not None and now >= end:
            return None
        users, rate = plan.get("warmup") or [1, 1]
        for at, n, r in plan.get("stages") or []:
            if at > now:
                break
            users, rate = n, r
        return int(users), float(rate)
