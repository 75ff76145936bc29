"""What each Toxiproxy API call does, on chaosproxy's TCP proxies and ad-hoc rules.

The proxies are the TCP proxy registry's (`chaosproxy/tcp/`): the ones `--tcp` declared and the
ones a client creates here are the same objects, listed by both APIs. This module keeps only
what Toxiproxy has and the registry has not: each proxy's toxics in the client's order, and the
ad-hoc rule each toxic became (`translate.py`). Every change is serialised by one lock, as
Toxiproxy serialises them with its collection's mutex, so two clients racing on one name see
one winner.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaosproxy.tcp.registry import TcpProxies, TcpProxyError, TcpProxyExists, TcpProxyInfo
from chaosproxy.tcp.registry import TcpProxyNotFound as TcpProxyNotFound
from chaosproxy.toxiproxy import model
from chaosproxy.toxiproxy.errors import (
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_EXISTS,
    TOXIC_NOT_FOUND,
    ToxiproxyError,
)
from chaosproxy.toxiproxy.model import ProxySpec, Toxic

MAX_TOXICS = 64  # per proxy: each one is a rule every connection of the proxy is decided by


class Rules(Protocol):
    """Where a toxic's rule goes: the engine's ad-hoc rules (`translate.EngineRules`)."""

    def prepare(self, proxy: str, toxic: Toxic) -> Callable[[], list[str]]:
        """Check the toxic as a rule (ToxiproxyError 400 when refused); the call returned
        puts it in force and returns its rule ids."""
        ...

    def remove(self, ids: Sequence[str]) -> None: ...

    def alive(self) -> set[str]:
        """The rule ids in force now."""
        ...


@dataclass
class Toxics:
    """One proxy's toxics in the order they were added, and the rules each one became."""

    items: list[Toxic] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)  # toxic name -> rule ids

    def chain(self) -> list[Toxic]:
        """Toxiproxy lists the upstream chain, then the downstream one."""
        return [t for s in model.STREAMS for t in self.items if t.direction == s]

    def find(self, name: str) -> Toxic | None:
        return next((t for t in self.items if t.name == name), None)


def proxy_json(info: TcpProxyInfo, listen: str, toxics: Toxics | None) -> dict[str, Any]:
    return {
        "name": info.name,
        "listen": listen,
        "upstream": info.upstream,
        "enabled": info.enabled,
        "toxics": [t.to_json() for t in toxics.chain()] if toxics else [],
    }


async def _resolved(host: str, port: int) -> tuple[str, int]:
    """HOST:PORT as an IP, so `localhost:9000` and a bound `127.0.0.1:9000` are the same."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return host, port
    return str(infos[0][4][0]), port


def _registry_error(e: TcpProxyError) -> ToxiproxyError:
    """The registry's refusals in Toxiproxy's words: exists 409, not found 404; a listen that
    failed is a 500 in Toxiproxy (`listen tcp ...: address already in use`)."""
    if isinstance(e, TcpProxyExists):
        return PROXY_EXISTS
    if isinstance(e, TcpProxyNotFound):
        return PROXY_NOT_FOUND
    return ToxiproxyError(500, str(e))


class Proxies:
    """Toxiproxy's proxy collection over the TCP registry: one method per API call."""

    def __init__(self, registry: TcpProxies, rules: Rules) -> None:
        self.registry = registry
        self.rules = rules
        self._toxics: dict[str, Toxics] = {}
        self._last_bound: dict[str, str] = {}
        self._lock = asyncio.Lock()

    # Reads: plain reads of the registry (thread-safe there) and of this collection.

    def listen(self, info: TcpProxyInfo) -> str:
        """The bound address while enabled; else the last bound one (Toxiproxy shows that),
        or the configured one for a proxy never started."""
        if info.address is not None:
            self._last_bound[info.name] = info.address
            return info.address
        return self._last_bound.get(info.name, info.listen)

    def info(self, name: str) -> TcpProxyInfo:
        try:
            return self.registry.get(name)
        except TcpProxyNotFound:
            raise PROXY_NOT_FOUND from None

    def show(self, info: TcpProxyInfo) -> dict[str, Any]:
        return proxy_json(info, self.listen(info), self._current(info.name))

    def all(self) -> dict[str, dict[str, Any]]:
        return {info.name: self.show(info) for info in self.registry.all()}

    def _current(self, name: str) -> Toxics | None:
        """The proxy's toxics, less any whose rule was removed behind this API's back (the
        admin API's DELETE /rules): what a client reads is what is in force."""
        found = self._toxics.get(name)
        if found is None:
            return None
        alive = self.rules.alive()
        gone = [n for n, ids in found.rules.items() if ids and not alive.issuperset(ids)]
        for toxic_name in gone:
            self.rules.remove(found.rules.pop(toxic_name))
            found.items = [t for t in found.items if t.name != toxic_name]
        return found

    def toxics(self, name: str) -> list[Toxic]:
        self.info(name)
        found = self._current(name)
        return found.chain() if found else []

    def toxic(self, name: str, toxic_name: str) -> Toxic:
        self.info(name)
        found = self._current(name)
        toxic = found.find(toxic_name) if found else None
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return toxic

    # Proxies

    async def _add(self, spec: ProxySpec) -> TcpProxyInfo:
        """A new proxy starts without toxics, even where one of its name had some (removed
        another way than through this API: their rules would fault the new one)."""
        try:
            info = await self.registry.add(
                spec.name, str(spec.listen), str(spec.upstream), enabled=spec.enabled
            )
        except TcpProxyError as e:
            raise _registry_error(e) from None
        self._drop_toxics(spec.name)
        self._last_bound.pop(spec.name, None)
        return info

    async def create(self, spec: ProxySpec) -> dict[str, Any]:
        async with self._lock:
            return self.show(await self._add(spec))

    async def _differs(self, info: TcpProxyInfo, spec: ProxySpec) -> bool:
        """Toxiproxy's test: another upstream, or a listen address that resolves elsewhere
        than where the proxy is (a port 0 always moves it)."""
        if str(spec.upstream) != info.upstream:
            return True
        current = model.parse_address(self.listen(info), "listen", default_host="0.0.0.0")
        asked = await _resolved(spec.listen.host, spec.listen.port)
        return asked != await _resolved(current.host, current.port)

    async def update(self, name: str, body: Any) -> dict[str, Any]:
        """A new listen or upstream moves the proxy there; then `enabled` starts or stops it."""
        async with self._lock:
            info = self.info(name)
            current = ProxySpec(
                name,
                model.parse_address(self.listen(info), "listen", default_host="0.0.0.0"),
                model.parse_address(info.upstream, "upstream"),
                info.enabled,
            )
            spec = model.updated_proxy(current, body)
            moved = await self._differs(info, spec)
            try:
                info = await self.registry.update(
                    name,
                    listen=str(spec.listen) if moved else None,
                    upstream=str(spec.upstream) if moved else None,
                    enabled=spec.enabled,
                )
            except TcpProxyError as e:
                raise _registry_error(e) from None
            return self.show(info)

    async def delete(self, name: str) -> None:
        async with self._lock:
            self.info(name)
            self._drop_toxics(name)
            try:
                await self.registry.remove(name)
            except TcpProxyError as e:
                raise _registry_error(e) from None
            self._last_bound.pop(name, None)

    def _drop_toxics(self, name: str) -> None:
        toxics = self._toxics.pop(name, None)
        if toxics is not None:
            self.rules.remove([rid for ids in toxics.rules.values() for rid in ids])

    async def reset(self) -> None:
        """POST /reset: every proxy enabled again, every toxic removed (rules added through
        the admin API or a scenario are not toxics, and stay)."""
        async with self._lock:
            for name in list(self._toxics):
                self._drop_toxics(name)
            try:
                await self.registry.reset()
            except TcpProxyError as e:
                raise _registry_error(e) from None

    async def populate(
        self, specs: Sequence[ProxySpec]
    ) -> tuple[list[dict[str, Any]], ToxiproxyError | None]:
        """POST /populate: a proxy that exists unchanged is kept (toxics and all); a changed
        one is replaced by a new one without toxics. Stops at the first failure, returning the
        proxies done so far with the error."""
        done: list[dict[str, Any]] = []
        async with self._lock:
            for spec in specs:
                try:
                    existing = self.registry.get(spec.name)
                except TcpProxyNotFound:
                    existing = None
                try:
                    if existing is not None:
                        if not await self._differs(existing, spec):
                            done.append(self.show(existing))
                            continue
                        self._drop_toxics(spec.name)
                        await self.registry.remove(spec.name)
                    done.append(self.show(await self._add(spec)))
                except TcpProxyError as e:
                    return done, _registry_error(e)
                except ToxiproxyError as e:
                    return done, e
        return done, None

    # Toxics

    async def add_toxic(self, name: str, body: Any) -> Toxic:
        async with self._lock:
            self.info(name)
            toxic = model.new_toxic(body)
            toxics = self._toxics.setdefault(name, Toxics())
            if toxics.find(toxic.name) is not None:
                raise TOXIC_EXISTS
            if len(toxics.items) >= MAX_TOXICS:
                raise ToxiproxyError(
                    409, f"{MAX_TOXICS} toxics on this proxy already (the limit); remove some"
                )
            toxics.rules[toxic.name] = self.rules.prepare(name, toxic)()
            toxics.items.append(toxic)
            return toxic

    async def update_toxic(self, name: str, toxic_name: str, body: Any) -> Toxic:
        """New attributes or toxicity: the toxic's rule is replaced, checked before the old
        one goes (a refused update leaves the toxic as it was)."""
        async with self._lock:
            old = self.toxic(name, toxic_name)
            new = model.updated_toxic(old, body)
            install = self.rules.prepare(name, new)
            toxics = self._toxics[name]
            self.rules.remove(toxics.rules.pop(toxic_name))
            toxics.rules[toxic_name] = install()
            toxics.items = [new if t is old else t for t in toxics.items]
            return new

    async def remove_toxic(self, name: str, toxic_name: str) -> None:
        async with self._lock:
            old = self.toxic(name, toxic_name)
            toxics = self._toxics[name]
            self.rules.remove(toxics.rules.pop(toxic_name))
            toxics.items = [t for t in toxics.items if t is not old]
