"""The one place everything is wired together, started and stopped.

Shutdown order (`stop()`): stop accepting on the proxy listener and close idle client
connections, let in-flight requests finish up to the grace period (then cut them), close the
TCP proxies (listeners, then their connections, at once), close the upstream pool, cancel
background tasks, close the journal, then stop the admin listener (so `/healthz` answers until
the end).

Threads: the proxy listener, the engine's listeners and background tasks run on the loop that
called `start()` (the proxy loop); the admin listener runs on its own thread and loop unless
`admin_in_proxy_loop` (docs/architecture.md, "Threads").

Over 400 lines on purpose: the composition root (what is built from `Settings`, declared in
`settings.py`, and the start and stop order) is read as one; each part it wires does its job
in its own module.
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
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from chaosproxy import native
from chaosproxy.admin.app import make_admin_app
from chaosproxy.admin.plane import AdminAccess, ControlPlane
from chaosproxy.admin.thread import AdminThread
from chaosproxy.common.address_file import Addresses, host_port
from chaosproxy.common.address_file import remove as address_file_remove
from chaosproxy.common.address_file import write as address_file_write
from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.errors import UsageError
from chaosproxy.common.events import EventBus, FaultInjected, RequestDone, StateChanged
from chaosproxy.common.tasks import TaskGroup
from chaosproxy.config.model import Scenario
from chaosproxy.engine.core import Engine
from chaosproxy.engine.guardrails import Guardrails, Running
from chaosproxy.engine.journal import Journal
from chaosproxy.engine.load_signals import LoadSignals
from chaosproxy.engine.reload import ScenarioWatcher
from chaosproxy.faults.base import Gauge
from chaosproxy.observe.eventlog import EventLog
from chaosproxy.observe.metrics import Metrics
from chaosproxy.observe.stats import Stats
from chaosproxy.process.settings import Settings as Settings  # declared there, option by option
from chaosproxy.proxy.downstream.core import ALWAYS_DROPPED, ProxyCore, ProxyOptions
from chaosproxy.proxy.downstream.header_faults import FAULT_HEADERS, HeaderFaults
from chaosproxy.proxy.downstream.limits import default_max_connections, fd_budget_warning
from chaosproxy.proxy.downstream.listener import ListenerLimits, ProxyListener
from chaosproxy.proxy.h2.client import H2Upstream, h2_client_ssl
from chaosproxy.proxy.h2.core import H2Core
from chaosproxy.proxy.h2.forward import Route
from chaosproxy.proxy.h2.server import handoff
from chaosproxy.proxy.h2.upgrade import take_over
from chaosproxy.proxy.upstream.client import NativeUpstream
from chaosproxy.proxy.upstream.interface import Upstream, UpstreamConfig
from chaosproxy.tcp.address import shown
from chaosproxy.tcp.metrics import TcpCollector
from chaosproxy.tcp.registry import TcpProxies, TcpProxyError

log = logging.getLogger("chaosproxy")
T = TypeVar("T")


def server_ssl(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    # HTTP/2 by ALPN: its preface then opens the connection, and the listener hands it on.
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


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
        # The TCP proxies (`--tcp`, and those added at runtime): started after the HTTP listener.
        self.tcp = TcpProxies(
            self.engine, self.bus, settings.connect_timeout, reuse_port=settings.reuse_port
        )
        self.engine.sections["tcp"] = self.tcp.status  # `/status` lists them
        self.upstream: Upstream = upstream or NativeUpstream(
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
        self._wire_control_plane()
        self.journal: Journal | None = None
        self.watcher: ScenarioWatcher | None = None
        self.tasks = TaskGroup()
        self._proxy: ProxyListener | None = None
        self._admin_runner: web.AppRunner | None = None
        self._admin_thread: AdminThread | None = None
        self._toxiproxy_thread: AdminThread | None = None  # --toxiproxy-api
        self.toxiproxy_port = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the proxy loop, set by start()
        self.proxy_port = 0
        self.tcp_bound: dict[str, str] = {}  # --tcp NAME -> the HOST:PORT it listens on
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
        """Per-second stats, guardrails, metrics and the proxy core they watch."""
        s = self.settings
        self.stats = Stats()
        self.bus.subscribe(RequestDone, self.stats.on_request)
        self.bus.subscribe(FaultInjected, self.stats.on_fault)
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
        self.core = core = self._proxy_core()
        self.h2_upstream, self.h2 = self._h2_core(core)
        self.metrics = Metrics(
            inflight=lambda: core.load.inflight,
            connections=self._client_connections,
            pools=self._pools,
            skipped=lambda: self.guardrails.skipped,
            tasks=self._proxy_tasks,
            client_timeouts=lambda: self._proxy.timeouts.copy() if self._proxy else {},
            h2_cut=lambda: self.h2.calmed.copy(),
        )
        self.metrics.attach(self.bus)
        self.metrics.registry.register(TcpCollector(self.tcp))
        self.engine.client_id_header = s.client_id_header
        self.plane = self._control_plane()

    def _proxy_core(self) -> ProxyCore:
        """The per-request path, configured in this one place: its options and collaborators."""
        s = self.settings
        header_faults = HeaderFaults(s.max_header_fault_percentage)
        options = ProxyOptions(
            forwarded_headers=s.forwarded_headers,
            rewrite_host=s.rewrite_host,
            scheme="https" if s.tls_cert else "http",
            access_log=s.access_log,
            mark_injected=s.mark_injected,
            client_id_header=s.client_id_header,
            # Fault headers never reach the upstream, whether or not they are honoured.
            drop_request_headers=FAULT_HEADERS,
        )
        return ProxyCore(
            self.upstream,
            self.engine,
            options,
            bus=self.bus,
            load=self.load,
            clock=self.clock,
            guardrails=self.guardrails,
            request_faults=header_faults.of_request if s.allow_header_faults else None,
        )

    def _h2_core(self, core: ProxyCore) -> tuple[H2Upstream, H2Core]:
        """HTTP/2 clients' streams (docs/http2.md): the same core, an HTTP/2 upstream pool."""
        s = self.settings
        tls = s.upstream.scheme == "https"
        pool = H2Upstream(
            s.upstream,
            connect_timeout=s.connect_timeout,
            ssl_context=h2_client_ssl(s.upstream_ca, s.upstream_insecure) if tls else None,
        )
        route = Route(
            h1=core.forwarder,
            h2=pool,
            clock=self.clock,
            upstream_h2=s.upstream_h2,
            head_timeout=s.upstream_timeout,
            drop=frozenset(n.encode() for n in ALWAYS_DROPPED | FAULT_HEADERS),
            forwarded_headers=s.forwarded_headers,
            rewrite_host=s.rewrite_host,
            body_timeout=s.body_timeout,
        )
        return pool, H2Core(core, route)

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
        self._proxy.h2_handoff = partial(handoff, self.h2)
        self._proxy.h2_upgrade = partial(take_over, self.h2)
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
            await self._start_tcp()
            self.admin_port = await self._start_admin()
        except UsageError:
            await self.tcp.close()
            await self._proxy.close(0)
            raise
        self.tasks.spawn(self._guardrail_ticker(), "guardrails")
        self._start_engine_tasks()
        self.toxiproxy_port = await self._start_toxiproxy_api()
        if s.worker is None:
            log.info("per-request path: %s", native.state)
            log.info("proxying %s -> %s (admin %s)", self.proxy_url, s.upstream, self.admin_url)
        else:  # the supervisor logs the one "proxying" line, with its public admin
            log.info(
                "worker %d serving %s (private admin %s)", s.worker, self.proxy_url, self.admin_url
            )

    async def _start_tcp(self) -> None:
        """The TCP proxies of `--tcp`; one that cannot listen stops the start (UsageError)."""
        self.tcp.start()
        for spec in self.settings.tcp:
            try:
                info = await self.tcp.add(spec.name, shown(spec.listen), shown(spec.upstream))
            except TcpProxyError as e:
                raise UsageError(f"--tcp {spec.name}: {e}") from None
            log.info("relaying tcp %s: %s -> %s", info.name, info.address, info.upstream)
            if info.address is not None:
                self.tcp_bound[info.name] = info.address

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

    async def _start_toxiproxy_api(self) -> int:
        """`--toxiproxy-api`: Toxiproxy's HTTP API over the TCP proxies (docs/toxiproxy.md), on
        a thread and loop of its own as the admin API; 0 when not asked for."""
        s = self.settings
        if s.toxiproxy_api is None:
            return 0
        host, port = s.toxiproxy_api  # checked by check_toxiproxy_api before anything started
        from chaosproxy.toxiproxy.app import make_toxiproxy_app
        from chaosproxy.toxiproxy.state import Proxies
        from chaosproxy.toxiproxy.translate import EngineRules

        app = make_toxiproxy_app(Proxies(self.tcp, EngineRules(self.engine)))
        self._toxiproxy_thread = AdminThread(app, host, port)
        bound = await _bind("--toxiproxy-api", host, port, self._toxiproxy_thread.start())
        log.info("Toxiproxy API on http://%s:%d", _connect_host(host), bound)
        return bound

    async def stop(self) -> None:
        """Graceful: stop accepting, drain in-flight requests up to the grace period."""
        if self._toxiproxy_thread is not None:  # no Toxiproxy client changes a thing from here
            await self._toxiproxy_thread.stop()
            self._toxiproxy_thread = None
        if self._proxy is not None:
            await self._proxy.close(self.settings.grace)
            self._proxy = None
        self.core.deadlines.close()
        await self.tcp.close()
        await self.upstream.close()
        await self.h2_upstream.close()
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

    def addresses(self) -> Addresses:
        """Where each listener is bound (port 0 resolved), for `--address-file`."""
        s = self.settings
        tox = s.toxiproxy_api
        return Addresses(
            listen=host_port(s.listen_host, self.proxy_port),
            admin=host_port(s.admin_host, self.admin_port),
            toxiproxy_api=host_port(tox[0], self.toxiproxy_port) if tox else None,
            tcp=dict(self.tcp_bound),
        )

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
        address_file = self.settings.address_file if self.settings.worker is None else None
        try:
            if address_file:
                address_file_write(address_file, self.addresses())
            if ready is not None:
                ready(self)
            await stop.wait()
            log.info(
                "signal received: draining in-flight requests (grace %.0fs)", self.settings.grace
            )
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if address_file:
                address_file_remove(address_file)
            await self.stop()
            log.info("stopped")


def check_admin_exposure(s: Settings) -> None:
    """An admin listener off loopback without a token is an open kill switch: refuse it."""
    check_toxiproxy_api(s)
    if s.admin_token or s.admin_insecure or _is_loopback(s.admin_host):
        return
    raise UsageError(
        f"refusing to serve the admin API on {s.admin_host} without --admin-token "
        "(or pass --admin-insecure)"
    )


def check_toxiproxy_api(s: Settings) -> None:
    """`--toxiproxy-api` has no token (Toxiproxy's clients send none): off loopback only with
    --admin-insecure; and one process serves it (a worker's TCP proxies are its own)."""
    if s.toxiproxy_api is None:
        return
    host = s.toxiproxy_api[0]
    if not (s.admin_insecure or _is_loopback(host)):
        raise UsageError(
            f"refusing to serve the Toxiproxy API on {host} (it has no authentication); "
            "use a loopback address or pass --admin-insecure"
        )
    if s.workers > 1 or s.worker is not None:
        raise UsageError("--toxiproxy-api serves one proxy process: drop --workers")


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
