"""`malformed`: bytes no HTTP parser accepts — the crashed or confused server.

`garbage` sends random bytes instead of a response, `bad_status_line` a status line that is not
HTTP, and `bad_chunk` forwards the real reply as a chunked body whose second chunk is corrupt.
Each then closes the connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, Reply, register

GARBAGE_SIZE = 512
BAD_STATUS_LINE = b"HTTP/1.1 OK 200 maybe\r\nContent-Length: 0\r\n\r\n"
# A chunk-size line that is not hexadecimal: every chunked decoder rejects it.
BAD_CHUNK = b"zz; corrupt\r\n\x00\xff\xfe\r\n"


@register
@dataclass(frozen=True)
class MalformedFault(Fault):
    name = "malformed"
    order = 85

    params = (P.choice("kind", ("garbage", "bad_status_line", "bad_chunk"), "garbage"),)

    kind: str = "garbage"  # garbage | bad_status_line | bad_chunk

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        return cls(Params(params, path, cls.params)["kind"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.kind == "bad_chunk":
            ex.on_reply(_chunked)
            ex.on_headers_sent(_head_sent)
            ex.filter_body(self._corrupt)
            await proceed()
            return
        ex.record(self, self.kind)
        data = ex.rng.randbytes(GARBAGE_SIZE) if self.kind == "garbage" else BAD_STATUS_LINE
        with contextlib.suppress(ConnectionError):
            await ex.write_raw(data)
        ex.close()

    async def _corrupt(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """One good chunk of the real body, then a corrupt one, then close."""
        async for chunk in body:
            if chunk:
                yield chunk
                break
        ex.record(self, self.kind)
        await ex.write_raw(BAD_CHUNK)
        ex.close()

    def describe(self) -> str:
        return f"malformed {self.kind}"


async def _chunked(ex: Exchange, reply: Reply) -> Reply:
    """Without a Content-Length the reply goes out chunked."""
    headers = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
    return Reply(reply.status, reply.reason, headers)


async def _head_sent(ex: Exchange) -> None:
    """Registered so the head leaves on its own, before the raw corrupt chunk."""
