"""`error`: answer with an HTTP error instead of (or after) the upstream.

`after_upstream: true` forwards the request first and discards the real reply: the side effect
happened, yet the client saw a failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, Reply, register


@register
@dataclass(frozen=True)
class ErrorFault(Fault):
    name = "error"
    order = 80

    params = (
        P.status("status", 500),
        P.anything("body", {"type": ["string", "object", "array"]}),
        P.anything(
            "headers",
            {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        ),
        P.boolean("after_upstream", False),
    )

    status: int = 500
    body: bytes | None = None  # None: the proxy's own JSON error shape with the request id
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    after_upstream: bool = False

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        status: int = p["status"]
        raw_body = p["body"]
        body: bytes | None = None
        content_type = "application/json"
        if isinstance(raw_body, str):
            body, content_type = raw_body.encode(), "text/plain; charset=utf-8"
        elif isinstance(raw_body, Mapping | list):
            body = json.dumps(raw_body).encode()
        elif raw_body is not None:
            raise p.error("body", f"expected text or a mapping, got {raw_body!r}")
        raw_headers = p.get("headers", {})
        if not isinstance(raw_headers, Mapping):
            raise p.error(
                "headers", f"expected a mapping of header names to values, got {raw_headers!r}"
            )
        headers = tuple((str(k), str(v)) for k, v in raw_headers.items())
        return cls(status, body, content_type, headers, p["after_upstream"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if not self.after_upstream:
            await self._send(ex)
            return

        async def replace(ex: Exchange, reply: Reply) -> Reply | None:
            await self._send(ex)
            return None

        ex.on_reply(replace)
        await proceed()

    async def _send(self, ex: Exchange) -> None:
        if self.body is None:
            body = ex.error_body(self.status, "injected by chaosproxy")
        else:
            body = self.body
        headers = [("Content-Type", self.content_type), *self.headers]
        ex.record(self, f"status={self.status}")
        await ex.respond(self.status, body, headers)
