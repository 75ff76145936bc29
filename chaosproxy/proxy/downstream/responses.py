"""Bytes of the answers the proxy writes itself: a status line and headers as given, the one
JSON error body, and whether a response may carry a body at all. Shared by the exchange, the
listener's rejections and the connection cap's 503 (and the fault tests' fake exchange)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaosproxy.proxy.downstream.request import RequestHead
    from chaosproxy.proxy.upstream.interface import UpstreamResponse

# Statuses whose responses never carry a body (RFC 9110 §6.4.1).
_NO_BODY = frozenset({204, 304})


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_json(status: int, request_id: str, details: str, message: str | None = None) -> bytes:
    """The one JSON error shape of every proxy-made or injected error."""
    msg = message or reason_phrase(status)
    return json.dumps(
        {"error": {"code": status, "message": msg, "details": details, "requestId": request_id}}
    ).encode()


def response_head(status: int, reason: str | None, headers: Iterable[tuple[str, str]]) -> bytes:
    """A status line and headers, as given: nothing added, case and order kept."""
    parts = [f"HTTP/1.1 {status} {reason_phrase(status) if reason is None else reason}\r\n"]
    parts.extend(f"{k}: {v}\r\n" for k, v in headers)
    parts.append("\r\n")
    text = "".join(parts)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def body_allowed(method: str, status: int) -> bool:
    return not (method == "HEAD" or status < 200 or status in _NO_BODY)


def answer_head(
    resp: UpstreamResponse, req: RequestHead, request_id: str, mark: str | None
) -> tuple[bytes, bool, bool]:
    """The head of an upstream answer no fault looks at, for the client: its header lines as
    received, never decoded, plus `X-Request-Id` when absent, the opt-in mark, and the framing
    the client needs (chunked for an HTTP/1.1 client of a body without a length; an HTTP/1.0
    one loses keep-alive instead). Returns the bytes, whether a body may follow, and whether it
    goes chunked. One builder for the awaited path and the relay."""
    extra = b"" if resp.has_id else b"X-Request-Id: %s\r\n" % request_id.encode("latin-1")
    if mark is not None:
        extra += b"X-Chaos-Injected: %s\r\n" % mark.encode("latin-1", "replace")
    allowed = body_allowed(req.method, resp.status)
    chunked = False
    if allowed and not resp.has_length:
        if req.version == "1.1":
            chunked = True
            extra += b"Transfer-Encoding: chunked\r\n"
        else:
            req.keep_alive = False  # the body ends with the connection
    if req.version == "1.0" and req.keep_alive:
        extra += b"Connection: keep-alive\r\n"  # HTTP/1.0 closes unless told otherwise
    data = b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (resp.status, resp.reason_bytes, resp.head_lines, extra)
    return data, allowed, chunked
