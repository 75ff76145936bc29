"""`stream_reset`: reset one HTTP/2 stream (RST_STREAM) with a chosen error code.

Where `reset` cuts an HTTP/1.1 connection with a TCP RST, this resets only the request's stream
of a multiplexed connection, with the code a client reacts to: `CANCEL` (gRPC: CANCELLED),
`REFUSED_STREAM` (not processed: clients may retry it transparently — gRPC does), `INTERNAL_ERROR`
(gRPC: INTERNAL), `ENHANCE_YOUR_CALM`... `at: request` before forwarding, `at: headers` once the
answer's head left, `after_bytes: N` after N bytes of its body. On an HTTP/1.1 request, which
has no streams, it acts as `reset` (a TCP RST).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, cut_body, register

# HTTP/2 error codes (RFC 9113 §7).
H2_ERRORS = {
    "NO_ERROR": 0x0,
    "PROTOCOL_ERROR": 0x1,
    "INTERNAL_ERROR": 0x2,
    "FLOW_CONTROL_ERROR": 0x3,
    "SETTINGS_TIMEOUT": 0x4,
    "STREAM_CLOSED": 0x5,
    "FRAME_SIZE_ERROR": 0x6,
    "REFUSED_STREAM": 0x7,
    "CANCEL": 0x8,
    "COMPRESSION_ERROR": 0x9,
    "CONNECT_ERROR": 0xA,
    "ENHANCE_YOUR_CALM": 0xB,
    "INADEQUATE_SECURITY": 0xC,
    "HTTP_1_1_REQUIRED": 0xD,
}


@runtime_checkable
class StreamExchange(Protocol):
    """An exchange that is one stream of a multiplexed connection (the HTTP/2 one)."""

    def reset_stream(self, code: int) -> None: ...


def h2_error_code(v: Any) -> int:
    """An HTTP/2 error code from its name (any case) or number."""
    if isinstance(v, str) and v.upper() in H2_ERRORS:
        return H2_ERRORS[v.upper()]
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFFFFFF:
        return v
    raise ValueError(f"expected an HTTP/2 error code name (e.g. CANCEL) or number, got {v!r}")


@register
@dataclass(frozen=True)
class StreamResetFault(Fault):
    name = "stream_reset"
    order = 96  # as `reset`: last, after request-side delays and body-shaping faults

    params = (
        P.anything(
            "code",
            {"anyOf": [{"enum": sorted(H2_ERRORS)}, {"type": "integer", "minimum": 0}]},
            h2_error_code,
        ),
        P.choice("at", ("request", "headers"), "request"),
        P.size("after_bytes"),
    )

    code: int = H2_ERRORS["INTERNAL_ERROR"]
    at: str = "request"  # request | headers | body
    after_bytes: int = 0

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        code = p["code"] if p.has("code") else cls.code
        if p.has("after_bytes"):
            if p.has("at"):
                raise p.error("at", "give either at or after_bytes, not both")
            n: int = p["after_bytes"]
            return cls(code, "body", n) if n > 0 else cls(code, "headers")
        return cls(code, p["at"])

    def _reset(self, ex: Exchange, outcome: str) -> None:
        ex.record(self, f"{outcome} code={self.code}")
        if isinstance(ex, StreamExchange):
            ex.reset_stream(self.code)
        else:
            ex.reset()

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.at == "request":
            self._reset(ex, "at=request")
            return
        if self.at == "headers":

            async def after_headers(ex: Exchange) -> None:
                await ex.flush()
                self._reset(ex, "at=headers")

            ex.on_headers_sent(after_headers)
        else:
            ex.filter_body(self._cut)
        await proceed()

    def _cut(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async def reset() -> None:
            await ex.flush()
            self._reset(ex, f"after_bytes={self.after_bytes}")

        return cut_body(body, self.after_bytes, reset)

    def describe(self) -> str:
        return f"stream_reset code={self.code} at {self.at}"
