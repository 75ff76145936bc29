"""The named TCP proxies of one runtime, added, changed and removed while it runs.

Threads: the listeners and their connections live on the proxy loop. The coroutines here
(`add`, `remove`, `update`, `reset`, `close`) may be awaited from any loop (the admin thread's
included): they run their work on the proxy loop. The reads (`get`, `all`, `status`) are plain
and thread-safe: the table of proxies is replaced whole on every change, never mutated.

What is in force changing (a rule added or removed, a scenario started, stopped or finished, a
phase entered) makes every proxy decide its open connections again (`TcpProxy.redecide`), so a
fault applies to the connections present and future, and stops on all of them when it ends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.common.events import EventBus, StateChanged, StateKind
from chaosproxy.common.wake import Deadlines
from chaosproxy.tcp.address import AddressError, check_name, parse_host_port, shown
from chaosproxy.tcp.listener import TcpProxy, view_path

if TYPE_CHECKING:
    from chaosproxy.engine.core import Engine

T = TypeVar("T")

# State changes after which the faults in force may differ.
_REDECIDE = frozenset(
    {
        StateKind.SCENARIO_STARTED,
        StateKind.SCENARIO_STOPPED,
        StateKind.SCENARIO_FINISHED,
        StateKind.SCENARIO_REPLACED,
        StateKind.PHASE_CHANGED,
        StateKind.RULE_ADDED,
        StateKind.RULE_REMOVED,
        StateKind.RULES_CLEARED,
    }
)
MAX_PROXIES = 256  # each holds a listening socket: bounded whatever an API client asks


class TcpProxyError(ChaosProxyError):
    """A TCP proxy could not be added or changed; the message says why."""


class TcpProxyExists(TcpProxyError):
    """A TCP proxy of that name exists already."""


class TcpProxyNotFound(TcpProxyError):
    """No TCP proxy of that name."""


@dataclass(frozen=True)
class TcpProxyInfo:
    """A TCP proxy as the API shows it."""

    name: str
    listen: str  # as configured (the port may be 0)
    upstream: str
    enabled: bool
    address: str | None  # bound now (port 0 resolved); None while disabled
    open: int  # connections open now
    accepted: int  # since the proxy was added
    refused: int = 0  # reset at accept by a `refused` fault
    connect_failed: int = 0  # the upstream could not be reached
    bytes_up: int = 0  # client → upstream
    bytes_down: int = 0  # upstream → client
    rules: tuple[str, ...] = ()  # ids of the rules written for it (ad-hoc, running scenario)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "address": self.address,
            "connections": {
                "open": self.open,
                "accepted": self.accepted,
                "refused": self.refused,
                "connect_failed": self.connect_failed,
            },
            "bytes": {"upstream": self.bytes_up, "downstream": self.bytes_down},
            "rules": list(self.rules),
        }


class TcpProxies:
    """Every TCP proxy by name (see the module doc for threads)."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        connect_timeout: float = 5.0,
        reuse_port: bool = False,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.connect_timeout = connect_timeout
        self.reuse_port = reuse_port  # `run --workers`: every worker listens on each port
        self._proxies: dict[str, TcpProxy] = {}  # replaced whole on change
        self._enabled: dict[str, bool] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        # The latency toxics' waits, every proxy's, in one heap behind one wake-up.
        self.deadlines = Deadlines()
        bus.subscribe(StateChanged, self._on_state)

    def start(self) -> None:
        """Bind to the running loop (the proxy loop): the coroutines run there from now on."""
        self.loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop
        if loop is None:
            raise TcpProxyError("the TCP proxies are not started")
        if loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    # ------------------------------------------------------------ changes

    async def add(
        self, name: str, listen: str, upstream: str, enabled: bool = True
    ) -> TcpProxyInfo:
        return await self._on_loop(self._add(name, listen, upstream, enabled))

    async def remove(self, name: str) -> None:
        await self._on_loop(self._remove(name))

    async def update(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> TcpProxyInfo:
        return await self._on_loop(self._update(name, listen, upstream, enabled))

    async def reset(self) -> None:
        """Every proxy enabled again (rules are the engine's: remove them there)."""
        await self._on_loop(self._reset())

    async def close(self) -> None:
        """Stop every listener and close every connection (the runtime's shutdown)."""
        if self.loop is None:
            return
        await self._on_loop(self._close())

    async def _add(self, name: str, listen: str, upstream: str, enabled: bool) -> TcpProxyInfo:
        assert self._lock is not None
        async with self._lock:
            try:
                check_name(name)
                listen_at = parse_host_port(listen, "listen")
                upstream_at = parse_host_port(upstream, "upstream")
            except AddressError as e:
                raise TcpProxyError(str(e)) from None
            if name in self._proxies:
                raise TcpProxyExists(f"a TCP proxy named {name!r} exists already")
            if len(self._proxies) >= MAX_PROXIES:
                raise TcpProxyError(f"{MAX_PROXIES} TCP proxies exist already (the limit)")
            proxy = TcpProxy(
                name,
                listen_at,
                upstream_at,
                self.engine,
                self.bus,
                self.deadlines,
                self.connect_timeout,
            )
            proxy.reuse_port = self.reuse_port
            if enabled:
                await _listen(proxy, listen_at)
            self._proxies = {**self._proxies, name: proxy}
            self._enabled = {**self._enabled, name: enabled}
            return self._info(proxy)

    async def _remove(self, name: str) -> None:
        assert self._lock is not None
        async with self._lock:
            proxy = self._find(name)
            self._proxies = {k: v for k, v in self._proxies.items() if k != name}
            self._enabled = {k: v for k, v in self._enabled.items() if k != name}
            await proxy.stop()

    async def _update(
        self, name: str, listen: str | None, upstream: str | None, enabled: bool | None
    ) -> TcpProxyInfo:
        assert self._lock is not None
        async with self._lock:
            proxy = self._find(name)
            try:
                listen_at = parse_host_port(listen, "listen") if listen is not None else None
                upstream_at = (
                    parse_host_port(upstream, "upstream") if upstream is not None else None
                )
            except AddressError as e:
                raise TcpProxyError(str(e)) from None
            if upstream_at is not None:
                proxy.upstream = upstream_at  # new connections go there
            on = self._enabled[name] if enabled is None else enabled
            if listen_at is not None and listen_at != proxy.listen:
                old = proxy.listen
                if proxy.listening:
                    await proxy.stop(close_connections=False)
                proxy.listen = listen_at
                if on:
                    try:
                        await _listen(proxy, listen_at)
                    except TcpProxyError:
                        proxy.listen = old
                        if self._enabled[name]:
                            await _listen(proxy, self._again(proxy))
                        raise
            if on and not proxy.listening:
                await _listen(proxy, self._again(proxy))
            elif not on and proxy.listening:
                await proxy.stop(close_connections=True)
            self._enabled = {**self._enabled, name: on}
            return self._info(proxy)

    async def _reset(self) -> None:
        for name in list(self._proxies):
            if not self._enabled[name]:
                await self._update(name, None, None, True)

    async def _close(self) -> None:
        for proxy in list(self._proxies.values()):
            await proxy.stop()
        self.deadlines.close()

    @staticmethod
    def _again(proxy: TcpProxy) -> tuple[str, int]:
        """The address to listen on again: the configured one, with port 0 made the port the
        proxy had (so a client's configuration keeps working across a disable)."""
        host, port = proxy.listen
        if port == 0 and proxy.address is not None:
            return host, proxy.address[1]
        return host, port

    def _find(self, name: str) -> TcpProxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise TcpProxyNotFound(f"no TCP proxy named {name!r}")
        return proxy

    # ------------------------------------------------------------ events

    def _on_state(self, ev: StateChanged) -> None:
        if ev.kind in _REDECIDE:
            for proxy in self._proxies.values():
                if proxy.relays:
                    proxy.redecide()

    # ------------------------------------------------------------ reads

    def get(self, name: str) -> TcpProxyInfo:
        return self._info(self._find(name))

    def all(self) -> list[TcpProxyInfo]:
        proxies = self._proxies
        return [self._info(proxies[name]) for name in sorted(proxies)]

    def proxies(self) -> list[TcpProxy]:
        """The proxies themselves (metrics read their counts)."""
        return list(self._proxies.values())

    def __len__(self) -> int:
        return len(self._proxies)

    def status(self) -> list[dict[str, Any]]:
        return [info.as_dict() for info in self.all()]

    def _info(self, proxy: TcpProxy) -> TcpProxyInfo:
        up, down = proxy.bytes()
        c = proxy.counts
        address = proxy.address if proxy.listening else None
        return TcpProxyInfo(
            name=proxy.name,
            listen=shown(proxy.listen),
            upstream=shown(proxy.upstream),
            enabled=self._enabled.get(proxy.name, proxy.listening),
            address=shown(address) if address is not None else None,
            open=len(proxy.relays),
            accepted=c.accepted,
            refused=c.refused,
            connect_failed=c.connect_failed,
            bytes_up=up,
            bytes_down=down,
            rules=self._rules_of(proxy.name),
        )

    def _rules_of(self, name: str) -> tuple[str, ...]:
        key = view_path(name)
        ids = [a.id for a in self.engine.adhoc_rules() if a.rule.segment == key]
        compiled = self.engine.scenario
        if compiled is not None:
            ids += [r.id for r in compiled.rules if r.segment == key]
        return tuple(dict.fromkeys(ids))


async def _listen(proxy: TcpProxy, at: tuple[str, int]) -> None:
    """Listen on `at`; a failure is a TcpProxyError saying which address and why."""
    proxy.listen, configured = at, proxy.listen
    try:
        await proxy.start()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise TcpProxyError(f"listen {shown(at)}: {reason.lower()}") from None
    finally:
        proxy.listen = configured
