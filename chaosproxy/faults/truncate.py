"""`truncate`: send the headers with the real Content-Length, then only `bytes` of the body,
then close — the client's parser sees the body end early (an incomplete payload).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Params, Proceed, cut_body, register


@register
@dataclass(frozen=True)
class TruncateFault(Fault):
    name = "truncate"
    order = 95

    params = (P.size("bytes", 0),)

    keep: int = 0  # the `bytes` parameter

    @classmethod
    def from_params(cls, params: Any, path: str) -> Self:
        return cls(Params(params, path, cls.params)["bytes"])

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        if self.keep == 0:

            async def after_headers(ex: Exchange) -> None:
                ex.record(self, "bytes=0")
                await ex.flush()
                ex.close()

            ex.on_headers_sent(after_headers)
        else:
            ex.filter_body(self._cut)
        await proceed()

    def _cut(self, ex: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass `bytes` bytes, then close (FIN) once they were written."""

        async def close() -> None:
            ex.record(self, f"bytes={self.keep}")
            ex.close()

        return cut_body(body, self.keep, close)
