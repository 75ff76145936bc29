"""`error`: answer with an HTTP error instead of (or after) the upstream.

`after_upstream: true` forwards the request first and discards the real reply: the side effect
happened, yet the client saw a failure.

A custom body may carry `{request_id}` (in text, or in the string values of a JSON body). Whether
it does is settled when the fault is built: a body without it is sent as built, one with it is
kept as the pieces around each placeholder and joined with the request id per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, Reply, register

PLACEHOLDER = "{request_id}"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name characters
# The proxy frames every response it writes: a rule must not lie about where one ends.
FRAMING = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
     "trailer", "proxy-connection"}
)  # fmt: skip


def _header(p: Params, name: str, value: Any) -> tuple[str, str]:
    """A header a rule may add: a valid name, not a framing header, a value on one line."""
    if not _TOKEN.match(name):
        raise p.error("headers", f"{name[:60]!r} is not a valid header name")
    if name.lower() in FRAMING:
        raise p.error(
            "headers", f"{name} is the proxy's to write (it frames every response it sends)"
        )
    text = str(value)
    if any(c in text for c in "\r\n\x00"):
        raise p.error("headers", f"the value of {name} must be one line (no CR, LF or NUL)")
    return name, text


# Stands for the placeholder while a JSON body is encoded (a control character: not in bodies).
_MARK = "\x00request_id\x00"
_MARK_JSON = json.dumps(_MARK)[1:-1].encode()


def _has_placeholder(node: Any) -> bool:
    """Whether a string leaf (not a key) of a JSON body holds the placeholder."""
    if isinstance(node, str):
        return PLACEHOLDER in node
    if isinstance(node, Mapping):
        return any(_has_placeholder(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_placeholder(v) for v in node)
    return False


def _mark(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace(PLACEHOLDER, _MARK)
    if isinstance(node, Mapping):
        return {k: _mark(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_mark(v) for v in node]
    return node


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
    # With a {request_id} placeholder: the body split around it, and whether the id is
    # JSON-escaped when joined in (a JSON body) or sent as is (text).
    body_parts: tuple[bytes, ...] = ()
    json_escape: bool = False

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        status: int = p["status"]
        raw_body = p["body"]
        body: bytes | None = None
        parts: tuple[bytes, ...] = ()
        content_type = "application/json"
        if isinstance(raw_body, str):
            body, content_type = raw_body.encode(), "text/plain; charset=utf-8"
            if PLACEHOLDER in raw_body:
                parts = tuple(piece.encode() for piece in raw_body.split(PLACEHOLDER))
        elif isinstance(raw_body, Mapping | list):
            body = json.dumps(raw_body).encode()
            if _has_placeholder(raw_body):
                marked = json.dumps(_mark(raw_body)).encode()
                parts = tuple(marked.split(_MARK_JSON))
        elif raw_body is not None:
            raise p.error("body", f"expected text or a mapping, got {raw_body!r}")
        raw_headers = p.get("headers", {})
        if not isinstance(raw_headers, Mapping):
            raise p.error(
                "headers", f"expected a mapping of header names to values, got {raw_headers!r}"
            )
        headers = tuple(_header(p, str(k), v) for k, v in raw_headers.items())
        json_escape = content_type == "application/json"
        return cls(status, body, content_type, headers, p["after_upstream"], parts, json_escape)

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
        elif self.body_parts:
            rid = ex.request_id
            if self.json_escape:
                rid = json.dumps(rid)[1:-1]
            body = rid.encode().join(self.body_parts)
        else:
            body = self.body
        headers = [("Content-Type", self.content_type), *self.headers]
        ex.record(self, f"status={self.status}")
        await ex.respond(self.status, body, headers)
