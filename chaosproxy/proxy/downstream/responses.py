"""Bytes of the answers the proxy writes itself: a status line and headers as given, the one
JSON error body, and whether a response may carry a body at all. Shared by the exchange, the
listener's rejections and the connection cap's 503 (and the fault tests' fake exchange)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus

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
