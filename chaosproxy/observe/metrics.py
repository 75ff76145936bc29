"""Prometheus metrics fed by engine events, in a registry private to one Runtime.

A private `CollectorRegistry` lets several proxies live in one process (tests). Label values are
bounded: methods are normalised to a known set, codes are status numbers ("0" for a connection
reset or closed without a status), never paths or request ids. Gauges that describe current state
(in-flight requests, pool slots) are read at scrape time, so requests pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chaosproxy.common.events import EventBus, FaultInjected, RequestDone, StateChanged, StateKind
from chaosproxy.observe.stats import GRPC_NAMES

if TYPE_CHECKING:
    from chaosproxy.faults.base import Gauge as FaultGauge

METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
UPSTREAM_REASONS: Final = frozenset({"refused", "timeout", "reset", "protocol"})
# Deadlines the proxy listener holds its clients to (chaosproxy_client_timeouts_total{kind}).
CLIENT_TIMEOUTS = ("header", "body", "send")
# Bounds an HTTP/2 client went past (chaosproxy_h2_clients_cut_total{bound}; proxy/h2/limits.py).
H2_BOUNDS = ("resets", "control", "queued", "headers")
# Seconds; covers sub-millisecond pass-through up to the longest injected hangs.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# Yields (rule id, the fault's `gauges()`) for every fault in use: live state read at scrape time.
GaugeSource = Callable[[], Iterable[tuple[str, Iterable["FaultGauge"]]]]
# Fault gauges documented in docs/metrics.md: present (maybe empty) even when no fault is in use.
_DOCUMENTED = {
    "pool_in_use": "Slots held in a pool_exhaustion fault's simulated pool.",
    "pool_waiting": "Requests queued for a slot of a pool_exhaustion fault's simulated pool.",
}


class _LiveGauges(Collector):
    """Gauges computed at scrape time from live state, not updated per request."""

    def __init__(
        self,
        inflight: Callable[[], int],
        pools: GaugeSource | None,
        skipped: Callable[[], int],
        connections: Callable[[], tuple[int, int]],
        tasks: Callable[[], int],
        client_timeouts: Callable[[], dict[str, int]],
        h2_cut: Callable[[], dict[str, int]],
    ) -> None:
        self._h2_cut = h2_cut
        self._inflight = inflight
        self._pools = pools
        self._skipped = skipped
        self._connections = connections
        self._tasks = tasks
        self._client_timeouts = client_timeouts

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            "chaosproxy_inflight_requests",
            "Client requests read by the proxy and not yet answered.",
        )
        g.add_metric([], float(self._inflight()))
        yield g
        t = GaugeMetricFamily(
            "chaosproxy_tasks",
            "asyncio tasks not done on the proxy loop (one per client connection, plus a few).",
        )
        t.add_metric([], float(self._tasks()))
        yield t
        open_now, refused = self._connections()
        g = GaugeMetricFamily(
            "chaosproxy_client_connections",
            "Client connections open on the proxy listener (a WebSocket counts twice).",
        )
        g.add_metric([], float(open_now))
        yield g
        c = CounterMetricFamily(
            "chaosproxy_client_connections_refused",
            "Client connections refused because --max-connections were open.",
        )
        c.add_metric([], float(refused))
        yield c
        timeouts = self._client_timeouts()
        c = CounterMetricFamily(
            "chaosproxy_client_timeouts",
            "Clients cut by a listener deadline: a request head late (408), a request body "
            "silent (408), a client taking no response bytes (closed, --send-timeout).",
            labels=["kind"],
        )
        for kind in CLIENT_TIMEOUTS:
            c.add_metric([kind], float(timeouts.get(kind, 0)))
        yield c
        cut = self._h2_cut()
        c = CounterMetricFamily(
            "chaosproxy_h2_clients_cut",
            "HTTP/2 client connections ended with GOAWAY(ENHANCE_YOUR_CALM) past a bound: "
            "streams reset too fast, control frames flooded, replies not read, a header block "
            "too large.",
            labels=["bound"],
        )
        for bound in H2_BOUNDS:
            c.add_metric([bound], float(cut.get(bound, 0)))
        yield c
        families = {
            name: GaugeMetricFamily(f"chaosproxy_{name}", text, labels=["rule"])
            for name, text in _DOCUMENTED.items()
        }
        for rule, gauges in self._pools() if self._pools else ():
            for gauge in gauges:
                family = families.get(gauge.name)
                if family is None:
                    family = families[gauge.name] = GaugeMetricFamily(
                        f"chaosproxy_{gauge.name}", gauge.help, labels=["rule"]
                    )
                family.add_metric([rule], gauge.value)
        yield from families.values()
        skipped = CounterMetricFamily(
            "chaosproxy_faults_skipped",
            "Requests a rule chose to fault but max_active_faults let through untouched.",
        )
        skipped.add_metric([], float(self._skipped()))
        yield skipped

    def describe(self) -> Iterator[Metric]:
        return iter(())


class TrafficCounts:
    """Requests, their durations and upstream errors, counted per request in plain Python (a
    class of its own, not the collector: compiled, its fields are read directly)."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, int, str, str], int] = {}
        self.grpc: dict[int, int] = {}  # gRPC status code -> calls
        self.request_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.request_sum = 0.0
        self.upstream_buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.upstream_sum = 0.0
        self.upstream_errors = dict.fromkeys(sorted(UPSTREAM_REASONS), 0)
        self._bounds = list(DURATION_BUCKETS)

    def _bucket(self, seconds: float) -> int:
        """The histogram bucket of a duration (`bisect_left` on `DURATION_BUCKETS`, written
        out: compiled, a loop over fifteen floats that usually stops at the first costs less
        than the call; a list of this object's, not the module's tuple, which compiled code
        would look up and unpack whole at each call)."""
        i = 0
        for bound in self._bounds:
            if seconds <= bound:
                return i
            i += 1
        return i

    def on_request(self, ev: RequestDone) -> None:
        method = ev.method if ev.method in METHODS else "OTHER"
        key = (method, ev.status, ev.cohort, ev.protocol)
        codes = self.codes
        codes[key] = codes.get(key, 0) + 1
        if ev.grpc_status is not None:
            self.grpc[ev.grpc_status] = self.grpc.get(ev.grpc_status, 0) + 1
        duration = ev.duration
        self.request_buckets[self._bucket(duration)] += 1
        self.request_sum += duration
        upstream = ev.upstream_duration
        if upstream is not None:
            self.upstream_buckets[self._bucket(upstream)] += 1
            self.upstream_sum += upstream
        if ev.upstream_error is not None:
            reason = ev.upstream_error if ev.upstream_error in UPSTREAM_REASONS else "protocol"
            self.upstream_errors[reason] += 1


class _Traffic(Collector):
    """`TrafficCounts` as metric families, at scrape time."""

    def __init__(self) -> None:
        self.counts = TrafficCounts()

    def collect(self) -> Iterator[Metric]:
        c = self.counts
        requests = CounterMetricFamily(
            "chaosproxy_requests",
            "Client requests answered.",
            labels=["method", "code", "protocol"],
        )
        # A copy: the admin thread scrapes while the proxy loop adds keys. A request of a run
        # that splits its clients carries `cohort` (fault | control: bounded); others have
        # no such label, so their series stay what they were.
        for (method, code, cohort, protocol), n in sorted(c.codes.copy().items()):
            if cohort:
                labels = {
                    "method": method,
                    "code": str(code),
                    "protocol": protocol,
                    "cohort": cohort,
                }
                requests.add_sample("chaosproxy_requests_total", labels, float(n))
            else:
                requests.add_metric([method, str(code), protocol], float(n))
        yield requests
        calls = CounterMetricFamily(
            "chaosproxy_grpc_calls",
            "gRPC calls answered, by the status their client read (grpc-status, or what a "
            "reset stream means to gRPC).",
            labels=["grpc_status"],
        )
        for code, n in sorted(c.grpc.copy().items()):
            calls.add_metric([GRPC_NAMES.get(code, str(code))], float(n))
        yield calls
        yield _histogram(
            "chaosproxy_request_duration_seconds",
            "Request duration as the client saw it, injected delay included.",
            c.request_buckets.copy(),
            c.request_sum,
        )
        yield _histogram(
            "chaosproxy_upstream_duration_seconds",
            "Time until the upstream's response headers arrived.",
            c.upstream_buckets.copy(),
            c.upstream_sum,
        )
        errors = CounterMetricFamily(
            "chaosproxy_upstream_errors", "Upstream failures by reason.", labels=["reason"]
        )
        for reason, n in c.upstream_errors.copy().items():
            errors.add_metric([reason], float(n))
        yield errors

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _histogram(name: str, doc: str, buckets: list[int], total: float) -> HistogramMetricFamily:
    cumulative: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
        running += n
        cumulative.append((floatToGoString(bound), float(running)))  # type: ignore[no-untyped-call]
    h = HistogramMetricFamily(name, doc)
    h.add_metric([], cumulative, sum_value=total)
    return h


class Metrics:
    """Owns the registry and the collectors; `attach(bus)` subscribes to the engine's events."""

    def __init__(
        self,
        inflight: Callable[[], int] = lambda: 0,
        pools: GaugeSource | None = None,  # every fault's live gauges, see GaugeSource
        skipped: Callable[[], int] = lambda: 0,
        connections: Callable[[], tuple[int, int]] = lambda: (0, 0),
        tasks: Callable[[], int] = lambda: 0,  # counted at scrape time (a leak shows as growth)
        client_timeouts: Callable[[], dict[str, int]] = dict,  # by kind, since the start
        h2_cut: Callable[[], dict[str, int]] = dict,  # HTTP/2 clients cut, by bound
    ) -> None:
        # `_created` series double the exposition and no dashboard here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Per-request series are plain counters here, turned into metric families at scrape
        # time: a request costs a few dict and list increments, no locks, no label lookups.
        self.traffic = _Traffic()
        r.register(self.traffic)
        self.faults_injected = Counter(
            "chaosproxy_faults_injected",
            "Faults that acted on a request.",
            ["scenario", "phase", "rule", "fault"],
            registry=r,
        )
        self.scenario_active = Gauge(
            "chaosproxy_scenario_active",
            "1 while the scenario runs in this phase, else 0.",
            ["scenario", "phase"],
            registry=r,
        )
        self.reload_errors = Counter(
            "chaosproxy_config_reload_errors",
            "Scenario reloads rejected as invalid (the previous version kept running).",
            registry=r,
        )
        self.guardrail_trips = Counter(
            "chaosproxy_guardrail_trips",
            "Times a guardrail stopped injection.",
            ["guardrail"],
            registry=r,
        )
        self.reload_errors.inc(0)
        r.register(
            _LiveGauges(inflight, pools, skipped, connections, tasks, client_timeouts, h2_cut)
        )
        self._active: tuple[str, str] | None = None
        self.on_request = self.traffic.counts.on_request

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(RequestDone, self.on_request)
        bus.subscribe(FaultInjected, self.on_fault)
        bus.subscribe(StateChanged, self.on_state)

    # ------------------------------------------------------------ listeners

    def on_fault(self, ev: FaultInjected) -> None:
        # Ad-hoc rule ids (r1, r2, ...) grow without bound: one label for all of them (the
        # journal keeps the id). Faults asked for by request headers have no rule at all.
        rule = ev.rule if ev.scenario else ("adhoc" if ev.rule else "header")
        self.faults_injected.labels(ev.scenario, ev.phase, rule, ev.fault).inc()

    def on_state(self, ev: StateChanged) -> None:
        kind = ev.kind
        if kind in (StateKind.SCENARIO_STARTED, StateKind.PHASE_CHANGED):
            self._set_active((ev.scenario, ev.phase))
        elif kind in (StateKind.SCENARIO_STOPPED, StateKind.SCENARIO_FINISHED):
            self._set_active(None)
        elif kind == StateKind.RELOAD_FAILED:
            self.reload_errors.inc()
        elif kind == StateKind.GUARDRAIL_TRIPPED:
            self.guardrail_trips.labels(str(ev.details.get("guardrail", "unknown"))).inc()

    def _set_active(self, active: tuple[str, str] | None) -> None:
        if self._active is not None and self._active != active:
            self.scenario_active.labels(*self._active).set(0)
        if active is not None:
            self.scenario_active.labels(*active).set(1)
        self._active = active

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
