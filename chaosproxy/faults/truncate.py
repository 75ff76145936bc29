"""`truncate`: send the headers with the real Content-Length, then only `bytes` of the body,
then close — the client's parser sees the body end early (an incomplete payload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.config.units import parse_size
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, register


@register
@dataclass(frozen=True)
class TruncateFault(Fault):
    name = "truncate"
    order = 95

    keep: int = 0  # the `bytes` parameter

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        p = Params(params, path, ("bytes",))
        n: int = p.convert("bytes", parse_size, 0)
        return cls(n)

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.keep == 0:

            async def after_headers(ex: Exchange) -> None:
                ex.record(self.name, "bytes=0")
                await ex.flush()
                ex.close()

            ex.on_headers_sent(after_headers)
        else:
            ex.filter_body(self._cut)
        await proceed()

    async def _cut(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        left = self.keep
        async for chunk in body:
            if len(chunk) > left:
                if left:
                    yield chunk[:left]
                break
            left -= len(chunk)
            yield chunk
        else:
            return  # the body was not longer than the cut: nothing to truncate
        # The loop resumes here only once the last piece was written.
        ex.record(self.name, f"bytes={self.keep}")
        ex.close()

    def describe(self) -> str:
        return f"truncate after {self.keep} bytes"
