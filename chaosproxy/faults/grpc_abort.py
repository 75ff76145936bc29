"""`grpc_abort`: fail a gRPC call with a gRPC status, as Envoy's and Istio's fault abort does.

The answer is gRPC's trailers-only response: one HEADERS frame, `:status 200`,
`content-type: application/grpc`, `grpc-status` and `grpc-message`, END_STREAM; the upstream is
never called. `code` is a gRPC status by name (`UNAVAILABLE`, as Istio's `grpcStatus`) or number
(`14`, as Envoy's `grpc_status`). `pushback` adds `grpc-retry-pushback-ms`: a client with a
retry policy waits that long before it retries.

An `error` fault on a gRPC request is answered the same way, its HTTP status mapped to a gRPC
status (503 → UNAVAILABLE): what Envoy does for an `http_status` abort of a gRPC call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register

# gRPC status codes by name (grpc/doc/statuscodes.md).
GRPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def grpc_code(v: Any) -> int:
    """A gRPC error status (1-16) from its name (any case) or number."""
    if isinstance(v, str) and v.upper() in GRPC_CODES:
        code = GRPC_CODES[v.upper()]
    elif isinstance(v, int) and not isinstance(v, bool):
        code = v
    else:
        raise ValueError(f"expected a gRPC status name (e.g. UNAVAILABLE) or 1-16, got {v!r}")
    if not 1 <= code <= 16:
        raise ValueError(f"must be a gRPC error status (1-16, not OK), got {v!r}")
    return code


def percent_encoded(text: str) -> str:
    """A `grpc-message` value: UTF-8, percent-encoded outside printable ASCII (and `%`)."""
    out = []
    for b in text.encode("utf-8"):
        out.append(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}")
    return "".join(out)


@register
@dataclass(frozen=True)
class GrpcAbortFault(Fault):
    name = "grpc_abort"
    order = 80  # as `error`: an answer instead of the upstream's

    params = (
        P.anything(
            "code",
            {
                "anyOf": [
                    {"enum": sorted(set(GRPC_CODES) - {"OK"})},
                    {"type": "integer", "minimum": 1, "maximum": 16},
                ]
            },
            grpc_code,
        ),
        P.anything("message", {"type": "string"}, str),
        P.duration("pushback"),
    )

    code: int = 14
    message: str = "injected by chaosproxy"
    pushback: float | None = None

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, cls.params)
        code = p["code"] if p.has("code") else 14
        message = p["message"] if p.has("message") else cls.message
        return cls(code, message, p["pushback"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        headers = [
            ("content-type", "application/grpc"),
            ("grpc-status", str(self.code)),
            ("grpc-message", percent_encoded(self.message)),
        ]
        if self.pushback is not None:
            headers.append(("grpc-retry-pushback-ms", str(round(self.pushback * 1000))))
        ex.record(self, f"grpc-status={self.code}")
        await ex.respond(200, b"", headers)

    def describe(self) -> str:
        return f"grpc_abort {self.code}"
