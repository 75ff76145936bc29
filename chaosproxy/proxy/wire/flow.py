"""Write flow control of an asyncio protocol, shared by the client and upstream connections:
the transport's pause/resume_writing, and a `drain` that waits for room (or the end)."""

from __future__ import annotations

import asyncio


class WriteFlow:
    """Mixed into an `asyncio.Protocol` (before it) whose `connection_lost` sets `closed` and
    calls `wake_drain`; `drain` raises `ConnectionResetError(lost_message)` once closed."""

    closed: bool
    lost_message = "the connection closed"
    _write_paused = False
    _drain: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self.wake_drain()

    def wake_drain(self) -> None:
        d = self._drain
        if d is not None and not d.done():
            d.set_result(None)

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.closed:
            raise ConnectionResetError(self.lost_message)
