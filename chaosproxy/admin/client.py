"""The one place that speaks the admin API from the outside: `ctl` and the experiment runner.

`AdminClient` wraps one sidecar's admin URL. Every call returns the decoded JSON body or raises
`AdminError` (the API answered with an error: status, message, details, request id) or
`Unreachable` (no answer at all), each naming the URL, so callers can report per sidecar.
Every path comes from the route declarations (`routes.py`), never written here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from chaosproxy.admin import routes
from chaosproxy.admin.declare import Route
from chaosproxy.common.errors import ChaosProxyError

DEFAULT_ADMIN = "http://127.0.0.1:8081"


class AdminError(ChaosProxyError):
    """The admin API answered with an error status."""

    def __init__(self, url: str, status: int, message: str, details: Any, request_id: str):
        self.url = url
        self.status = status
        self.message = message
        self.details = details
        self.request_id = request_id
        tail = f": {json.dumps(details)}" if details is not None else ""
        super().__init__(f"{url}: HTTP {status} {message}{tail}")


class Unreachable(ChaosProxyError):
    """No answer from the admin API (refused, timed out, not HTTP)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: unreachable: {reason}")


def admin_url(admin: str) -> str:
    """Accept a URL or the HOST:PORT form `run --admin` takes (so CHAOSPROXY_ADMIN serves both)."""
    admin = admin.strip().rstrip("/")
    if "://" not in admin:
        admin = "http://" + admin
    return admin.replace("://0.0.0.0:", "://127.0.0.1:")


async def expand_admins(specs: list[str]) -> list[str]:
    """Admin URLs from what a user gave: URLs or HOST:PORT, `@FILE` (one per line, `#` starts a
    comment), and `dns://NAME:PORT` (every address NAME resolves to: a headless Kubernetes
    Service names every pod). Raises ChaosProxyError naming what could not be read."""
    import asyncio
    import socket

    out: list[str] = []
    for spec in specs:
        spec = spec.strip()
        if spec.startswith("@"):
            try:
                with open(spec[1:], encoding="utf-8") as f:
                    lines = [ln.split("#", 1)[0].strip() for ln in f]
            except OSError as e:
                raise ChaosProxyError(f"cannot read {spec[1:]}: {e.strerror or e}") from None
            out.extend(await expand_admins([ln for ln in lines if ln]))
        elif spec.startswith("dns://"):
            host, _, port = spec[len("dns://") :].rstrip("/").rpartition(":")
            if not host or not port.isdigit():
                raise ChaosProxyError(f"expected dns://NAME:PORT, got {spec!r}")
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, int(port), type=socket.SOCK_STREAM
                )
            except OSError as e:
                raise ChaosProxyError(f"cannot resolve {host}: {e.strerror or e}") from None
            addrs = sorted({str(i[4][0]) for i in infos})
            out.extend(f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addrs)
        else:
            out.append(admin_url(spec))
    return list(dict.fromkeys(out))


@dataclass
class Response:
    status: int
    body: Any


class AdminClient:
    """One sidecar's admin API. Share an `aiohttp.ClientSession` across clients when you have
    many; `timeout` bounds every call."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = admin_url(url)
        self.token = token
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self, method: str, path: str, body: Any = None, *, text: str | None = None
    ) -> Response:
        """Raw call: the status and decoded body, whatever the status (Unreachable if none)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        kw: dict[str, Any] = {"headers": headers, "timeout": self.timeout}
        if text is not None:
            kw["data"] = text.encode()
            headers["Content-Type"] = "application/yaml"
        elif body is not None:
            kw["json"] = body
        try:
            async with self._sess().request(method, self.url + path, **kw) as r:
                raw = await r.read()
                try:
                    data: Any = json.loads(raw)
                except ValueError:
                    data = raw.decode("utf-8", "replace")
                return Response(r.status, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            reason = str(e) or e.__class__.__name__
            raise Unreachable(self.url, f"{e.__class__.__name__}: {reason}") from None

    async def call(
        self, method: str, path: str, body: Any = None, *, text: str | None = None
    ) -> Any:
        """The decoded body of a successful call; AdminError otherwise."""
        res = await self.request(method, path, body, text=text)
        if res.status >= 400:
            raise _error(self.url, res)
        return res.body

    async def call_route(
        self,
        route: Route,
        body: Any = None,
        *,
        text: str | None = None,
        query: Mapping[str, object] | None = None,
        **params: str,
    ) -> Any:
        """The decoded body of a successful call of a declared route; AdminError otherwise."""
        return await self.call(route.method, route.url(query, **params), body, text=text)

    # ------------------------------------------------------------ typed operations
    # One per route that declares `client=` this method's name (tests/admin/test_routes.py).

    async def health(self) -> bool:
        route = routes.HEALTHZ
        res = await self.request(route.method, route.url())
        return res.status == 200 and isinstance(res.body, dict) and res.body.get("status") == "ok"

    async def status(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.call_route(routes.STATUS)
        return body

    async def upload(self, name: str, text: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.call_route(routes.PUT_SCENARIO, text=text, name=name)
        return body

    async def start(
        self,
        name: str,
        *,
        seed: int | None = None,
        repeat: int | None = None,
        replace: bool = False,
        at: float | None = None,
    ) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if seed is not None:
            opts["seed"] = seed
        if repeat is not None:
            opts["repeat"] = repeat
        if replace:
            opts["replace"] = True
        if at is not None:
            opts["at"] = at
        body: dict[str, Any] = await self.call_route(routes.START, opts, name=name)
        return body

    async def stop(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.call_route(routes.STOP)
        return body

    async def reset(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.call_route(routes.RESET)
        return body

    async def clear_rules(self) -> int:
        body = await self.call_route(routes.CLEAR_RULES)
        return int(body.get("deleted", 0))

    async def events(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        query = {"since": since, "limit": limit}
        body: dict[str, Any] = await self.call_route(routes.EVENTS, query=query)
        return body

    async def timeseries(
        self, first: int, end: int, run: str | None = None, histograms: bool = False
    ) -> list[dict[str, Any]]:
        """Rows for the Unix seconds [first, end), at most the proxy's ring (900 s) per call."""
        query = {"from": first, "to": end, "run": run or None, "histograms": histograms or None}
        body = await self.call_route(routes.TIMESERIES, query=query)
        rows: list[dict[str, Any]] = body["series"]
        return rows

    async def stats_clients(self, run: str) -> dict[str, Any]:
        """Who the run touched: `{"run", "clients": [{cohort, first, last, hurt}], "count",
        "truncated"}` (no client ids)."""
        body: dict[str, Any] = await self.call_route(routes.STATS_CLIENTS, query={"run": run})
        return body

    async def metrics(self) -> str:
        route = routes.METRICS
        res = await self.request(route.method, route.url())
        if res.status >= 400:
            raise _error(self.url, res)
        return str(res.body)


def _error(url: str, res: Response) -> AdminError:
    body = res.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return AdminError(
            url,
            res.status,
            str(err.get("message", "")),
            err.get("details"),
            str(err.get("requestId", "")),
        )
    return AdminError(url, res.status, str(body)[:200], None, "")
