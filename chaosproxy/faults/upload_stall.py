"""`upload_stall`: the proxy stops taking the request body, so the client's sends block — the
flow-control starvation of a server that stopped reading.

On HTTP/2 the proxy stops reading the stream's DATA once `after_bytes` of it went upstream: it
acknowledges none, so no WINDOW_UPDATE reopens the client's window; the client sends what the
window still allows (the proxy's stream window, 256 KiB), then its sends block — a gRPC client
streaming messages or uploading a large one sees its writes wait. After `duration` the proxy
reads again and the window reopens; without one the stall lasts until the client gives up (its
deadline, a cancel). Other streams of the connection go on.

On HTTP/1.1 the honest equivalent is TCP backpressure: the request is held before it is
forwarded, the listener buffers up to 256 KiB of its body and then stops reading the socket,
so the client's sends block in the kernel's buffers. `after_bytes` does not apply there (the
stall starts with the body).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chaosproxy.faults import params as P
from chaosproxy.faults.base import Exchange, Fault, Proceed, register


@runtime_checkable
class StallableUpload(Protocol):
    """An exchange that can stop reading its request body part-way (an HTTP/2 stream)."""

    def stall_upload(
        self, after_bytes: int, seconds: float | None, on_stall: Callable[[], None]
    ) -> None: ...


@register
@dataclass(frozen=True)
class UploadStallFault(Fault):
    name = "upload_stall"
    order = 35  # request side, after latency: the body stalls once the request goes on

    params = (P.duration("duration"), P.size("after_bytes", 0))

    duration: float | None = None  # None: until the client gives up
    after_bytes: int = 0

    async def apply(self, ex: Exchange, proceed: Proceed) -> None:
        until = "client gives up" if self.duration is None else f"{self.duration:g}s"
        if isinstance(ex, StallableUpload):
            # counted when the stall begins: a body shorter than after_bytes never stalls
            outcome = f"after_bytes={self.after_bytes} for {until}"
            ex.stall_upload(self.after_bytes, self.duration, lambda: ex.record(self, outcome))
            await proceed()
            return
        ex.record(self, f"http/1.1 hold for {until}")
        if self.duration is None:
            await asyncio.get_running_loop().create_future()  # cancelled when the client leaves
        else:
            await ex.sleep(self.duration)
        await proceed()

    def describe(self) -> str:
        return f"upload_stall after {self.after_bytes} bytes"
