"""The supervisor's line to its workers: calls to their private admins, the same call to all of
them, and the one ring of state changes behind `/events` (with guardrail trips made global).

`/events` is worker 0's state changes, plus the `abort_if` trips of the others (the one
guardrail that depends on a worker's own traffic), renumbered in the supervisor's ring. A trip on
any worker stops the scenario on every worker (`sweep`, every `EVENTS_INTERVAL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from chaosproxy.admin.errors import ApiError
from chaosproxy.admin.routes import EVENTS, STOP
from chaosproxy.common.events import StateChanged, StateKind
from chaosproxy.observe.eventlog import EventLog

log = logging.getLogger("chaosproxy.workers")

EVENTS_INTERVAL = 0.5  # seconds between polls of the workers' /events (abort_if propagation)


@dataclass(frozen=True)
class Backend:
    """One worker as the relay reaches it."""

    index: int
    pid: int
    admin: str  # its private admin URL (loopback, port 0, writes need the per-run token)
    instance: str


@dataclass
class Answer:
    worker: Backend
    status: int  # 0: no answer (then `body` is the reason)
    body: Any  # decoded JSON, else the text


class Relay:
    """The supervisor's view of its workers, for the admin routes."""

    def __init__(self, secret: str, timeout: float = 10.0) -> None:
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.backends: list[Backend] = []  # set once every worker is ready; [] while stopping
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.events = EventLog()
        self.last_start = 0.0  # trips older than the latest start stop nothing
        self._cursors: dict[int, int] = {}
        self._events_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        b: Backend,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        h = {"Authorization": f"Bearer {self.secret}", **(headers or {})}
        try:
            async with self._session.request(method, b.admin + path, data=data, headers=h) as r:
                raw = await r.read()
                body: Any = raw.decode("utf-8", "replace")
                if r.content_type == "application/json":
                    with contextlib.suppress(ValueError):
                        body = json.loads(raw)
                return Answer(b, r.status, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return Answer(b, 0, f"{e.__class__.__name__}: {e}".rstrip(": "))

    async def all(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> list[Answer]:
        backends = self.backends
        if not backends:
            raise ApiError(503, "Service Unavailable", "the workers are starting or stopping")
        return list(
            await asyncio.gather(*(self.call(b, method, path, data, headers) for b in backends))
        )

    # ------------------------------------------------------------ events

    async def refresh_events(self) -> list[dict[str, Any]]:
        """Take what the workers recorded since the last poll; the guardrail trips that should
        stop the scenario everywhere."""
        trips: list[dict[str, Any]] = []
        async with self._events_lock:
            for b in self.backends:
                cursor = self._cursors.get(b.index, 0)
                while True:
                    query = {"since": cursor, "limit": 1000}
                    a = await self.call(b, EVENTS.method, EVENTS.url(query))
                    if a.status != 200 or not isinstance(a.body, dict):
                        break
                    found = a.body.get("events") or []
                    for ev in found:
                        self._take(b, ev, trips)
                    cursor = int(a.body.get("next", cursor))
                    if not found or cursor >= int(a.body.get("last", cursor)):
                        break
                self._cursors[b.index] = cursor
        return trips

    def _take(self, b: Backend, ev: dict[str, Any], trips: list[dict[str, Any]]) -> None:
        try:
            kind = StateKind(ev["kind"])
            t = float(ev["t"])
        except (KeyError, ValueError, TypeError):
            return
        details = dict(ev.get("details") or {})
        if kind == StateKind.GUARDRAIL_TRIPPED:
            details["worker"] = b.index
            if t >= self.last_start:
                trips.append({**ev, "worker": b.index})
            if b.index != 0 and not str(details.get("guardrail", "")).startswith("abort_if"):
                return  # duration limits trip on every worker alike: worker 0 reports them
        elif b.index != 0:
            return
        self.events.on_state(
            StateChanged(t, kind, str(ev.get("scenario", "")), str(ev.get("phase", "")), details)
        )

    async def watch(self) -> None:
        """Keep `/events` fresh and guardrails global, every `EVENTS_INTERVAL` seconds."""
        while True:
            await asyncio.sleep(EVENTS_INTERVAL)
            if not self.backends:
                continue
            try:
                await self.sweep()
            except Exception:  # a worker stopping as we call it: the next sweep tries again
                log.exception("could not read the workers' events")

    async def sweep(self) -> None:
        """Take the workers' new events; a guardrail trip on one stops the scenario on all."""
        trips = await self.refresh_events()
        if trips:
            log.warning(
                "guardrail %s tripped on worker %s: stopping the scenario on every worker",
                ", ".join(str(t.get("details", {}).get("guardrail")) for t in trips),
                ", ".join(str(t["worker"]) for t in trips),
            )
            self.last_start = time.time()  # the same trips stop nothing more
            await self.all(STOP.method, STOP.url())

    def describe_workers(self) -> list[dict[str, Any]]:
        return [
            {"index": b.index, "pid": b.pid, "instance": b.instance, "admin": b.admin}
            for b in self.backends
        ]
