"""The load plugin's latency sketch and tenths, and how `ClientData` reads them.

The plugin is loaded by Locust and never imported by chaosproxy (importing Locust patches the
process with gevent), so these tests load it with stand-ins for `locust` and `gevent`: its own
code runs unchanged, Locust's does not run at all.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import random
import sys
import types
from pathlib import Path
from typing import Any

import msgpack
import pytest

import chaosproxy
from chaosproxy.common import sketch
from chaosproxy.experiment.align import ClientData
from chaosproxy.experiment.series import View

PLUGIN = Path(chaosproxy.__file__).parent / "experiment" / "loadgen" / "plugin.py"
_loads = itertools.count()


class _Event:
    def add_listener(self, fn: Any) -> Any:
        return fn


class _Events:
    def __getattr__(self, name: str) -> _Event:
        return _Event()


class _MasterRunner:
    def __init__(self, users: int = 0, clients: int = 0) -> None:
        self.user_count = users
        self.clients = [object()] * clients


class _WorkerRunner:
    pass


@pytest.fixture
def load_plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each call: a fresh copy of the plugin (its own pending counts), as in one process."""
    locust = types.ModuleType("locust")
    locust.LoadTestShape = type("LoadTestShape", (), {})  # type: ignore[attr-defined]
    locust.events = _Events()  # type: ignore[attr-defined]
    env = types.ModuleType("locust.env")
    env.Environment = object  # type: ignore[attr-defined]
    runners = types.ModuleType("locust.runners")
    runners.MasterRunner = _MasterRunner  # type: ignore[attr-defined]
    runners.WorkerRunner = _WorkerRunner  # type: ignore[attr-defined]
    gevent = types.ModuleType("gevent")
    for name, mod in [
        ("locust", locust),
        ("locust.env", env),
        ("locust.runners", runners),
        ("gevent", gevent),
    ]:
        monkeypatch.setitem(sys.modules, name, mod)

    def load() -> Any:
        spec = importlib.util.spec_from_file_location(f"_chaos_plugin_{next(_loads)}", PLUGIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _durations() -> list[float]:
    """From below the floor to beyond an hour: a dense geometric sweep, every key's edges
    (where rounding could tell two formulas apart), and random durations."""
    out = [0.0, -1.0, 1e-12, 1e-6, 1e-6 * (1 + 1e-12), 0.001, 0.02, 0.1, 0.5, 1.0, 60.0, 3600.0]
    out += [1e-7 * 1.001**i for i in range(int(math.log(1e4 / 1e-7, 1.001)))]
    for k in range(sketch.key(1e-6), sketch.key(1e4) + 1):
        edge = sketch.GAMMA**k
        out += [edge, math.nextafter(edge, 0.0), math.nextafter(edge, math.inf)]
    rng = random.Random(7)
    out += [math.exp(rng.uniform(math.log(1e-7), math.log(1e4))) for _ in range(20_000)]
    return out


def test_the_plugin_maps_durations_to_the_same_keys_as_chaosproxy(load_plugin: Any) -> None:
    plugin = load_plugin()
    durations = _durations()
    assert len(durations) > 40_000
    mismatched = [x for x in durations if plugin._key(x) != sketch.key(x)]
    assert mismatched == []


def _started(rng: random.Random, sec: int) -> float:
    return sec + rng.random()


def test_plugin_counts_round_trip_from_workers_through_master_to_client_data(
    load_plugin: Any, tmp_path: Path
) -> None:
    """Two workers count requests, ship them (msgpack, as Locust does) to the master, which
    writes the lines ClientData reads: every second's sketch, tenths and counts survive."""
    workers = [load_plugin(), load_plugin()]
    master = load_plugin()
    rng = random.Random(3)
    t0 = 1_700_000_000
    expected: dict[int, View] = {}
    durations: dict[int, list[float]] = {}
    for i in range(3000):
        sec = t0 + i % 4
        started = _started(rng, sec)
        ms = rng.uniform(1.0, 2500.0)
        failed = rng.random() < 0.1
        workers[i % 2]._on_request(
            response_time=ms,
            exception=RuntimeError("boom") if failed else None,
            start_time=started,
            request_type="GET",
        )
        v = expected.setdefault(sec, View())
        v.requests += 1
        v.failures += failed
        k = sketch.key(ms / 1000)
        v.sketch[k] = v.sketch.get(k, 0) + 1
        d = int((started - sec) * 10)
        slot = v.tenths.setdefault(d, [0, 0])
        slot[0] += 1
        slot[1] += failed
        durations.setdefault(sec, []).append(ms / 1000)
        if i % 700 == 699:  # a worker's regular report to the master
            for w in workers:
                data: dict[str, Any] = {}
                w._report("w", data)
                wire = msgpack.loads(msgpack.dumps(data), raw=False, strict_map_key=False)
                master._worker_report("w", wire)
    for w in workers:
        data = {}
        w._report("w", data)
        master._worker_report("w", msgpack.loads(msgpack.dumps(data), strict_map_key=False))

    out = tmp_path / "client.jsonl"
    master._out = (types.SimpleNamespace(runner=_MasterRunner(users=5, clients=2)), out)
    master._flush()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all({"t", "n", "f", "h", "s", "d"} <= rec.keys() for rec in lines[:-1])
    assert lines[-1]["users"] == 5 and lines[-1]["workers"] == 2

    data = ClientData(out)
    data.poll()
    assert set(data.seconds) == set(expected)
    for sec, want in expected.items():
        got = data.seconds[sec]
        assert (got.requests, got.failures) == (want.requests, want.failures)
        assert got.sketch == want.sketch
        assert got.tenths == want.tenths
        assert sum(got.hist.values()) == want.requests  # the coarse histogram is still there
        exact = sorted(durations[sec])
        for q in (0.5, 0.95, 0.99):
            rank = max(1, math.ceil(q * len(exact)))
            p = got.quantile(q)
            assert p is not None
            assert abs(p - exact[rank - 1]) <= sketch.ACCURACY * exact[rank - 1] * 1.000001


def test_plugin_tenths_follow_the_start_time_within_its_second(load_plugin: Any) -> None:
    plugin = load_plugin()
    t = 1_700_000_000
    for frac in (0.0, 0.05, 0.15, 0.55, 0.95, 0.999999):
        plugin._on_request(response_time=10.0, exception=None, start_time=t + frac)
    plugin._on_request(response_time=10.0, exception=ValueError(), start_time=t + 0.97)
    # without a start time: now minus the response time
    plugin._on_request(response_time=10.0, exception=None)
    taken = plugin._take()
    (n, f, _h, sk, tenths, cohorts, grpc) = taken.pop(str(t))
    assert cohorts == {}  # no control group: no cohort counts
    assert grpc == {}  # no gRPC calls: no status counts
    assert (n, f) == (7, 1) and sk == {sketch.key(0.01): 7}
    assert tenths == {0: [2, 0], 1: [1, 0], 5: [1, 0], 9: [3, 1]}
    [(_, _, _, _, now, _, _)] = taken.values()
    assert sum(c[0] for c in now.values()) == 1 and all(0 <= d <= 9 for d in now)


def test_plugin_labels_cohorts_with_the_proxys_hash_through_workers_and_master(
    load_plugin: Any, tmp_path: Path
) -> None:
    """With a control group each request counts in its user's cohort too — the label the proxy
    gives the same X-Chaos-User id with the same seed and share — merged like the rest; a
    request whose context has no user is in neither cohort."""
    from chaosproxy.common.cohort import label_of

    workers = [load_plugin(), load_plugin()]
    master = load_plugin()
    for w in workers:
        w._cohort = (7, 0.3)
    t0 = 1_700_000_000
    want: dict[str, list[int]] = {"fault": [0, 0], "control": [0, 0]}
    for i in range(400):
        user = f"u{i % 20}"
        failed = i % 5 == 0
        workers[i % 2]._on_request(
            response_time=5.0,
            exception=RuntimeError() if failed else None,
            start_time=t0 + 0.5,
            context={"chaos_user": user},
        )
        label = label_of(7, user, 0.3)
        want[label][0] += 1
        want[label][1] += failed
    workers[0]._on_request(response_time=5.0, start_time=t0 + 0.5, context={})  # unlabelled
    for w in workers:
        data: dict[str, Any] = {}
        w._report("w", data)
        master._worker_report("w", msgpack.loads(msgpack.dumps(data), strict_map_key=False))
    out = tmp_path / "client.jsonl"
    master._out = (types.SimpleNamespace(runner=_MasterRunner(users=20, clients=2)), out)
    master._flush()
    data_ = ClientData(out)
    data_.poll()
    split = data_.cohorts[t0]
    assert {k: [v.requests, v.failures] for k, v in split.items()} == want
    assert data_.seconds[t0].requests == 401  # the whole view counts the unlabelled one too
    assert sum(v.requests for v in split.values()) == 400
    assert all(v.sketch and v.tenths for v in split.values())


def test_plugin_counts_grpc_statuses_through_workers_and_master(
    load_plugin: Any, tmp_path: Path
) -> None:
    """A GrpcUser's calls carry their status name in the event's context: each second counts
    them by name, merged across workers, read back by ClientData; names that are not gRPC's
    are dropped when read."""
    workers = [load_plugin(), load_plugin()]
    master = load_plugin()
    t0 = 1_700_000_000
    for i in range(30):
        status = "UNAVAILABLE" if i % 3 == 0 else "OK"
        workers[i % 2]._on_request(
            response_time=2.0,
            exception=RuntimeError(status) if status != "OK" else None,
            start_time=t0 + 0.2,
            context={"chaos_user": "u1", "grpc_status": status},
        )
    workers[0]._on_request(response_time=2.0, start_time=t0 + 0.3, context={})  # HTTP
    workers[1]._on_request(
        response_time=2.0, start_time=t0 + 0.3, context={"grpc_status": "NOT_A_STATUS"}
    )
    for w in workers:
        data: dict[str, Any] = {}
        w._report("w", data)
        master._worker_report("w", msgpack.loads(msgpack.dumps(data), strict_map_key=False))
    out = tmp_path / "client.jsonl"
    master._out = (types.SimpleNamespace(runner=_MasterRunner(users=2, clients=2)), out)
    master._flush()
    data_ = ClientData(out)
    data_.poll()
    got = data_.seconds[t0]
    assert (got.requests, got.failures) == (32, 10)
    assert got.grpc == {"OK": 20, "UNAVAILABLE": 10}


def _write(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_client_data_reads_sketch_and_tenths_and_sums_lines_of_one_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "client.jsonl"
    _write(
        path,
        json.dumps({"t": 100, "n": 3, "f": 1, "h": {"5": 3}, "s": {"-200": 2, "-150": 1},
                    "d": {"0": [2, 1], "9": [1, 0]}}),
        json.dumps({"t": 101, "n": 1, "f": 0, "h": {"6": 1}, "s": {"-140": 1}, "d": {"3": [1, 0]}}),
    )  # fmt: skip
    data = ClientData(path)
    data.poll()
    _write(  # a worker's late report for second 100, then the user count
        path,
        json.dumps({"t": 100, "n": 2, "f": 1, "h": {"5": 2}, "s": {"-200": 1, "-100": 1},
                    "d": {"0": [1, 1], "4": [1, 0]}}),
        json.dumps({"now": 102.5, "users": 4, "workers": None}),
    )  # fmt: skip
    data.poll()
    v = data.seconds[100]
    assert (v.requests, v.failures) == (5, 2)
    assert v.hist == {5: 5}
    assert v.sketch == {-200: 3, -150: 1, -100: 1}
    assert v.tenths == {0: [3, 2], 4: [1, 0], 9: [1, 0]}
    assert data.seconds[101].sketch == {-140: 1} and data.seconds[101].tenths == {3: [1, 0]}
    assert v.quantile(0.5) == pytest.approx(sketch.value(-200))
    assert v.quantile(1.0) == pytest.approx(sketch.value(-100))
    assert data.users == 4 and data.users_at == {102: 4} and data.workers is None


def test_client_data_reads_older_lines_without_sketch_or_tenths(tmp_path: Path) -> None:
    path = tmp_path / "client.jsonl"
    _write(path, json.dumps({"t": 7, "n": 2, "f": 0, "h": {"10": 2}}), '{"t": 8}')
    data = ClientData(path)
    data.poll()
    assert data.seconds[7].sketch == {} and data.seconds[7].tenths == {}
    assert data.seconds[7].hist == {10: 2} and data.seconds[7].quantile(0.5) is not None
    assert data.seconds[8].requests == 0


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        b"\xff\xfe{",
        "[1, 2, 3]",
        "42",
        "null",
        '{"t": "soon", "n": 1}',
        '{"t": Infinity, "n": 1}',
        '{"t": 5, "n": NaN}',
        '{"t": 5, "n": -1}',
        '{"t": 5, "n": 1.5}',
        '{"t": 5, "n": "many"}',
        '{"t": 5, "n": 1, "h": [1, 2]}',
        '{"t": 5, "n": 1, "s": {"x": 1}}',
        '{"t": 5, "n": 1, "s": {"-10": "one"}}',
        '{"t": 5, "n": 1, "s": {"-10": -1}}',
        '{"t": 5, "n": 1, "s": 3}',
        '{"t": 5, "n": 1, "d": {"10": [1, 0]}}',
        '{"t": 5, "n": 1, "d": {"-1": [1, 0]}}',
        '{"t": 5, "n": 1, "d": {"2": [1]}}',
        '{"t": 5, "n": 1, "d": {"2": 1}}',
        '{"t": 5, "n": 1, "d": {"2": [1, "x"]}}',
        '{"t": 5, "n": 1, "d": [[1, 0]]}',
        '{"users": "some", "now": 1}',
        '{"users": 3, "now": Infinity}',
        '{"users": 3, "now": 1, "workers": "two"}',
        "[" * 100_000,
    ],
)
def test_client_data_skips_a_malformed_record_and_keeps_the_rest(
    tmp_path: Path, bad: str | bytes
) -> None:
    path = tmp_path / "client.jsonl"
    good = {"t": 5, "n": 2, "f": 1, "h": {"3": 2}, "s": {"-150": 2}, "d": {"1": [2, 1]}}
    path.write_bytes(
        (json.dumps(good) + "\n").encode()
        + (bad if isinstance(bad, bytes) else bad.encode())
        + b"\n"
        + (json.dumps(good) + "\n").encode()
        + b'{"now": 9.0, "users": 2, "workers": 1}\n'
    )
    data = ClientData(path)
    data.poll()
    v = data.seconds[5]
    assert (v.requests, v.failures) == (4, 2)
    assert v.sketch == {-150: 4} and v.tenths == {1: [4, 2]} and v.hist == {3: 4}
    assert set(data.seconds) == {5}
    assert (data.users, data.workers, data.last_report) == (2, 1, 9.0)
