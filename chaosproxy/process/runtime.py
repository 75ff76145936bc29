"""The one place everything is wired together, started and stopped.

Shutdown order (`stop()`): stop accepting on the proxy listener and close idle client
connections, let in-flight requests finish up to the grace period (then cut them), close the
upstream pool, cancel background tasks, close the journal, then stop the admin listener (so
`/healthz` answers until the end).

Threads: the proxy listener, the engine's listeners and background tasks run on the loop that
called `start()` (the proxy loop); the admin listener runs on its own thread and loop unless
`admin_in_proxy_loop` (docs/architecture.md, "Threads").

Over 400 lines on purpose: the composition root (`Settings`, what is built from them, the start
and stop order) is read as one; each part it wires does its job in its own module.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import yarl
from aiohttp import web

from chaosproxy.admin.app import make_admin_app
from chaosproxy.admin.plane import AdminAccess, ControlPlane
from chaosproxy.admin.thread import AdminThread
from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.errors import UsageError
from chaosproxy.common.events import EventBus, RequestDone, StateChanged
from chaosproxy.common.tasks import TaskGroup
from chaosproxy.config.model import Scenario
from chaosproxy.engine.core import Engine
from chaosproxy.engine.guardrails import DEFAULT_MAX_FAULT_DURATION, Guardrails, Running
from chaosproxy.engine.journal import DEFAULT_KEEP as DEFAULT_JOURNAL_KEEP
from chaosproxy.engine.journal import DEFAULT_MAX_SIZE as DEFAULT_JOURNAL_MAX_SIZE
from chaosproxy.engine.journal import Journal
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.engine.reload import ScenarioWatcher
from chaosproxy.faults.base import Gauge
from chaosproxy.observe.eventlog import EventLog
from chaosproxy.observe.metrics import Metrics
from chaosproxy.observe.stats import Stats
from chaosproxy.proxy.header_faults import FAULT_HEADERS, HeaderFaults
from chaosproxy.proxy.limits import default_max_connections, fd_budget_warning
from chaosproxy.proxy.listener import ListenerLimits, ProxyListener
from chaosproxy.proxy.native import NativeUpstream
from chaosproxy.proxy.server import ProxyCore, ProxyOptions
from chaosproxy.proxy.upstream import AiohttpUpstream, Upstream, UpstreamConfig

log = logging.getLogger("chaosproxy")
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Everything `chaosproxy run` can be told, by flag or by CHAOSPROXY_* environment."""

    upstream: yarl.URL
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    upstream_timeout: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float | None = 300.0  # silence allowed mid-body; None: no limit
    client_id_header: str | None = None  # names the client for per-client Retry-After memory
    pool_size: int = 256
    keepalive: float = 30.0
    upstream_ca: str | None = None
    upstream_insecure: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    rewrite_host: bool = False
    forwarded_headers: bool = True
    grace: float = 10.0
    access_log: bool = False
    seed: int | None = None
    scenario_dir: str | None = None  # where the admin API finds scenarios by name
    scenario: str | None = None  # NAME (in scenario_dir) or FILE, started at boot
    journal: str | None = None  # one JSON line per injected fault
    journal_max_size: int | None = DEFAULT_JOURNAL_MAX_SIZE  # rotate past it; None: never
    journal_keep: int = DEFAULT_JOURNAL_KEEP  # rotated files kept (journal.jsonl.1 ...)
    journal_faults: frozenset[str] | None = None  # record only these faults; None: all
    reload_interval: float = 1.0  # seconds between scenario file checks; 0 turns reload off
    admin_token: str | None = None
    admin_insecure: bool = False
    allow_header_faults: bool = False
    max_header_fault_percentage: float = 100.0
    mark_injected: bool = False
    max_active_faults: int | None = None
    max_fault_duration: float | None = DEFAULT_MAX_FAULT_DURATION
    # `run --workers N` (chaosproxy/workers/): set in each worker process by the supervisor.
    worker: int | None = None  # this worker's index; None: the proxy owns its process alone
    reuse_port: bool = False  # SO_REUSEPORT on the proxy listener (workers share the port)
    scenario_at: float | None = None  # wall-clock origin of --scenario's timeline (None: now)
    upstream_client: str = "native"  # native (own pool, httptools) | aiohttp (ClientSession)
    admin_in_proxy_loop: bool = False  # the admin app on the proxy's loop, not its own thread
    header_timeout: float = 30.0  # a client's time to send a request head (slowloris): 408
    idle_timeout: float = 75.0  # a keep-alive client connection idle this long is closed
    upstream_max_head: int = 64 * 1024  # an upstream response head past it: 502
    upstream_max_headers: int = 128  # header lines of an upstream response head: 502 past it
    body_timeout: float | None = 30.0  # silence allowed mid request body: 408; None: no limit
    send_timeout: float | None = 60.0  # a client taking no response byte this long: closed
    max_connections: int | None = None  # open client connections (503 past it); None: derived


def server_ssl(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def make_upstream(client: str, config: UpstreamConfig) -> Upstream:
    """The upstream client by name: `native` (the lean default) or `aiohttp`."""
    if client == "aiohttp":
        return AiohttpUpstream(config)
    if client == "native":
        return NativeUpstream(config)
    raise UsageError(f"unknown upstream client {client!r} (native or aiohttp)")


class Runtime:
    """A running chaosproxy: proxy listener, admin listener, engine and its listeners."""

    def __init__(
        self, settings: Settings, clock: Clock = SYSTEM_CLOCK, upstream: Upstream | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.bus = EventBus()
        # One LoadSignals, read by the engine's `when` rules and fed by the proxy.
        self.load = LoadSignals(clock)
        self.engine = Engine(self.bus, clock, seed=settings.seed, load=self.load)
        self.upstream: Upstream = upstream or make_upstream(
            settings.upstream_client,
            UpstreamConfig(
                url=settings.upstream,
                pool_size=settings.pool_size,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                timeout=settings.upstream_timeout,
                keepalive=settings.keepalive,
                ca_file=settings.upstream_ca,
                insecure=settings.upstream_insecure,
                max_head=settings.upstream_max_head,
                max_headers=settings.upstream_max_headers,
            ),
        )
        scheme = "https" if settings.tls_cert else "http"
        self.core = ProxyCore(
            self.upstream,
            self.engine,
            ProxyOptions(
                forwarded_headers=settings.forwarded_headers,
                rewrite_host=settings.rewrite_host,
                scheme=scheme,
                access_log=settings.access_log,
            ),
            bus=self.bus,
            load=self.load,
            clock=clock,
        )
        self._wire_control_plane()
        self.journal: Journal | None = None
        self.watcher: ScenarioWatcher | None = None
        self.tasks = TaskGroup()
        self._proxy: ProxyListener | None = None
        self._admin_runner: web.AppRunner | None = None
        self._admin_thread: AdminThread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the proxy loop, set by start()
        self.proxy_port = 0
        self.admin_port = 0
        self.stopped = asyncio.Event()

    @property
    def proxy_url(self) -> str:
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://{_connect_host(self.settings.listen_host)}:{self.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{_connect_host(self.settings.admin_host)}:{self.admin_port}"

    def _wire_control_plane(self) -> None:
        """Per-second stats, guardrails, metrics, header faults and injected-marking."""
        s, core = self.settings, self.core
        self.stats = Stats()
        self.bus.subscribe(RequestDone, self.stats.on_request)
        self.events = EventLog()
        self.bus.subscribe(StateChanged, self.events.on_state)
        # Scenarios sent with PUT /scenarios/{name}: kept in memory, never written to disk.
        self.uploads: dict[str, Scenario] = {}
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.guardrails = Guardrails(
            bus=self.bus,
            stats=self.stats,
            current=self.running_scenario,
            stop=self._stop_scenario,
            clock=self.clock,
            max_active_faults=s.max_active_faults,
            max_fault_duration=s.max_fault_duration,
        )
        core.guardrails = self.guardrails
        self.metrics = Metrics(
            inflight=lambda: core.load.inflight,
            connections=self._client_connections,
            pools=self._pools,
            skipped=lambda: self.guardrails.skipped,
            tasks=self._proxy_tasks,
            client_timeouts=lambda: self._proxy.timeouts.copy() if self._proxy else {},
        )
        self.metrics.attach(self.bus)
        # Fault headers never reach the upstream, whether or not they are honoured.
        core.drop_request_headers = core.drop_request_headers | FAULT_HEADERS
        if s.allow_header_faults:
            hf = HeaderFaults(s.max_header_fault_percentage)
            core.request_faults = lambda ex: hf.faults(ex.headers, ex.rng)
        core.mark_injected = s.mark_injected
        core.client_id_header = s.client_id_header
        self.plane = self._control_plane()

    def _control_plane(self) -> ControlPlane:
        """What the admin API may act on and read (it never sees this runtime)."""
        from pathlib import Path

        from chaosproxy.config.loader import bundled_scenario_dir

        s = self.settings
        directory = Path(s.scenario_dir) if s.scenario_dir else bundled_scenario_dir()
        return ControlPlane(
            engine=self.engine,
            guardrails=self.guardrails,
            stats=self.stats,
            events=self.events,
            clock=self.clock,
            instance=self.instance,
            scenario_dir=directory,
            exposition=self.metrics.exposition,
            request_id=self.core.ids.next,
            # The upstream pool lives on the proxy loop; the admin app may run on its own.
            upstream_ready=lambda: self.on_proxy_loop(self.upstream.reachable()),
            upstream_url=str(self.upstream.config.url),
            access=AdminAccess(
                host=s.admin_host, insecure=s.admin_insecure, open_reads=s.worker is not None
            ),
            uploads=self.uploads,
        )

    def _client_connections(self) -> tuple[int, int]:
        """Client connections open now, and refused over the cap since the start."""
        p = self._proxy
        return (p.open_connections, p.refused) if p is not None else (0, 0)

    def _proxy_tasks(self) -> int:
        """Tasks not done on the proxy loop; `asyncio.all_tasks` copies the task set with
        retries, so it may be called from the admin thread."""
        return len(asyncio.all_tasks(self.loop)) if self.loop is not None else 0

    def running_scenario(self) -> Running | None:
        """The scenario the engine runs now and when it started, for guardrails and the API."""
        return self.engine.current()

    def _stop_scenario(self) -> None:
        self.engine.stop_scenario()

    def _pools(self) -> list[tuple[str, tuple[Gauge, ...]]]:
        return [(rule, f.gauges()) for rule, f in self.engine.faults_in_use()]

    async def _guardrail_ticker(self, interval: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval)
            self.guardrails.check()

    def check_admin_exposure(self) -> None:
        check_admin_exposure(self.settings)

    def start_boot_scenario(self) -> None:
        """`--scenario`: resolve, load and start it (ConfigError: located problems, exit 2)."""
        s = self.settings
        if not s.scenario:
            return
        from pathlib import Path

        from chaosproxy.config.loader import load_scenario_file, resolve_scenario

        directory = Path(s.scenario_dir) if s.scenario_dir else None
        scenario = load_scenario_file(resolve_scenario(s.scenario, directory))
        self.engine.start_scenario(scenario, seed=s.seed, replace=True, started_at=s.scenario_at)

    def _start_engine_tasks(self) -> None:
        """Timeline ticker and scenario reload watcher (stopped with `tasks`)."""
        s = self.settings
        self.tasks.spawn(self.engine.run_ticker(), "engine-ticker")
        if s.reload_interval > 0:
            from pathlib import Path

            from chaosproxy.config.loader import bundled_scenario_dir

            directory = Path(s.scenario_dir) if s.scenario_dir else bundled_scenario_dir()
            self.watcher = ScenarioWatcher(self.engine, directory, s.reload_interval, self.clock)
            self.tasks.spawn(self.watcher.run(), "scenario-reload")

    async def on_proxy_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the proxy loop (objects bound to it, such as the upstream pool),
        from whichever loop calls: the admin thread's, or the proxy loop itself."""
        loop = self.loop
        if loop is None or loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def start(self) -> None:
        s = self.settings
        self.check_admin_exposure()
        self.loop = asyncio.get_running_loop()
        self.bus.bind(self.loop)
        if s.journal:
            self.journal = Journal(
                s.journal,
                self.clock,
                max_size=s.journal_max_size,
                keep=s.journal_keep,
                faults=s.journal_faults,
            )
            self.journal.attach(self.bus)
        self.start_boot_scenario()
        cap = s.max_connections or default_max_connections(s.pool_size)
        if s.max_connections and (warning := fd_budget_warning(cap, s.pool_size)):
            log.warning("%s", warning)
        self._proxy = ProxyListener(
            self.core,
            ListenerLimits(
                header_timeout=s.header_timeout,
                idle_timeout=s.idle_timeout,
                body_timeout=s.body_timeout,
                send_timeout=s.send_timeout,
                max_connections=cap,
            ),
        )
        self.proxy_port = await _bind(
            "--listen",
            s.listen_host,
            s.listen_port,
            self._proxy.start(
                s.listen_host,
                s.listen_port,
                ssl=server_ssl(s.tls_cert, s.tls_key),
                backlog=1024,
                reuse_port=s.reuse_port or None,
            ),
        )
        try:
            self.admin_port = await self._start_admin()
        except UsageError:
            await self._proxy.close(0)
            raise
        self.tasks.spawn(self._guardrail_ticker(), "guardrails")
        self._start_engine_tasks()
        if s.worker is None:
            log.info("proxying %s -> %s (admin %s)", self.proxy_url, s.upstream, self.admin_url)
        else:  # the supervisor logs the one "proxying" line, with its public admin
            log.info(
                "worker %d serving %s (private admin %s)", s.worker, self.proxy_url, self.admin_url
            )

    async def _start_admin(self) -> int:
        s = self.settings
        app = make_admin_app(self.plane, s.admin_token)
        if not s.admin_in_proxy_loop:
            self._admin_thread = AdminThread(app, s.admin_host, s.admin_port)
            return await _bind("--admin", s.admin_host, s.admin_port, self._admin_thread.start())
        self._admin_runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._admin_runner.setup()
        admin_site = web.TCPSite(self._admin_runner, s.admin_host, s.admin_port)
        try:
            await _bind("--admin", s.admin_host, s.admin_port, admin_site.start())
        except UsageError:
            await self._admin_runner.cleanup()
            raise
        return int(self._admin_runner.addresses[0][1])

    async def stop(self) -> None:
        """Graceful: stop accepting, drain in-flight requests up to the grace period."""
        if self._proxy is not None:
            await self._proxy.close(self.settings.grace)
            self._proxy = None
        await self.upstream.close()
        await self.tasks.close()
        if self.journal is not None:
            self.journal.close()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self._admin_thread is not None:
            await self._admin_thread.stop()
            self._admin_thread = None
        self.stopped.set()

    def reopen_journal(self) -> None:
        """SIGHUP: reopen the journal file (after an outside tool renamed it)."""
        if self.journal is not None:
            self.journal.reopen()

    async def serve_until_signal(self, ready: Callable[[Runtime], object] | None = None) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reopens the journal.
        `ready` is called once both listeners are bound (a worker reports its admin port)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reopen_journal)
        await self.start()
        tune_process(admin_thread=not self.settings.admin_in_proxy_loop)
        try:
            if ready is not None:
                ready(self)
            await stop.wait()
            log.info(
                "signal received: draining in-flight requests (grace %.0fs)", self.settings.grace
            )
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()
            log.info("stopped")


def check_admin_exposure(s: Settings) -> None:
    """An admin listener off loopback without a token is an open kill switch: refuse it."""
    if s.admin_token or s.admin_insecure or _is_loopback(s.admin_host):
        return
    raise UsageError(
        f"refusing to serve the admin API on {s.admin_host} without --admin-token "
        "(or pass --admin-insecure)"
    )


def tune_process(admin_thread: bool) -> None:
    """Process-wide settings for a proxy that owns its process (`chaosproxy run`).

    - `gc.freeze()` once started: the tens of thousands of objects made at import and startup
      are never scanned again; a full collection then takes milliseconds, not ~100 ms. Every
      collection holds the GIL, so before this the admin thread waited that long.
    - A 1 ms GIL switch interval (default 5 ms) when the admin API has its own thread: an admin
      call needs the GIL several times and waits up to one interval each time the saturated
      proxy thread holds it. An idle admin thread asks for nothing, so this costs nothing then.
    """
    gc.freeze()
    if admin_thread:
        sys.setswitchinterval(0.001)


async def _bind(flag: str, host: str, port: int, binding: Awaitable[T]) -> T:
    """Await a listener's start; a failure names the flag and address it is about."""
    try:
        return await binding
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise UsageError(f"{flag} {host}:{port}: cannot listen: {reason}") from e


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
