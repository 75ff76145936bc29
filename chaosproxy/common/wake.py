"""A wake-up on the event loop at an instant of `time.monotonic()`, never before it and about a
tenth of a millisecond after.

The loop's own timers cannot promise that: uvloop's count whole milliseconds from a truncated
clock and round the delay, so one ends up to 1.5 ms early or 0.5 ms late, and the loop has no
way to wait a fraction of a millisecond but to look again each iteration (a busy loop). On
Linux a `timerfd` (CLOCK_MONOTONIC, the clock of `time.monotonic()`, set to an absolute time)
becomes readable at its time, and the loop's poll wakes for it like for any socket: it is set
a quarter of a millisecond ahead (the kernel's timer slack and the poll's wake-up), and only
that last quarter is looked for iteration by iteration. Where there is no timerfd (another
system, a libc without it), the loop's timer is set 1.5 ms ahead instead.

One `WakeAt` holds one instant at a time (setting it again moves it); its callback runs on the
loop. `close` closes its file descriptor.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
# How long before the instant the wake-up is set; the rest is waited for one loop iteration
# at a time (an early wake-up is waited out; a late one cannot be undone). A timerfd's wake-up
# comes 40-250 us after its time here (the kernel's timer slack, then the loop's poll): set
# that much ahead, and an instant closer than that is looked for at once. The loop's own timer
# ends up to 0.5 ms late (uvloop): without a timerfd it is set 1.5 ms ahead.
_TIMERFD_AHEAD = 0.00025
_TIMER_AHEAD = 0.0015


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """libc's timerfd_create and timerfd_settime, or None where there are none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Itimerspec),
        ctypes.POINTER(_Itimerspec),
    ]
    settime.restype = ctypes.c_int
    return create, settime


_TIMERFD = _timerfd()


class WakeAt:
    """Calls `callback` on `loop` once `time.monotonic()` reached the instant last `set`."""

    __slots__ = ("_at", "_callback", "_fd", "_handle", "_loop", "_spec", "precise")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._at = 0.0  # the instant set (0: none)
        self._handle: asyncio.Handle | None = None  # without a timerfd: the timer, or the look
        self._fd = -1
        self._spec = _Itimerspec()
        if _TIMERFD is not None:
            fd = _TIMERFD[0](_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._readable)
        self.precise = self._fd >= 0  # a timerfd: no busy loop for the last millisecond

    def set(self, at: float) -> None:
        """Wake at `at` (`time.monotonic()`; at once if it is past), instead of any instant set
        before."""
        self._at = at
        if self._fd >= 0:
            wake = at - _TIMERFD_AHEAD
            if wake <= time.monotonic():
                self._schedule(0.0)  # closer than a timerfd can wake: looked for at once
                return
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            spec = self._spec.it_value
            sec = int(wake)
            spec.tv_sec, spec.tv_nsec = sec, max(1, int((wake - sec) * 1e9))  # 0 would disarm
            assert _TIMERFD is not None
            if _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) == 0:
                return
            self._close_fd()  # cannot be set: the loop's timer from here on
        self._schedule(at - time.monotonic() - _TIMER_AHEAD)

    def cancel(self) -> None:
        self._at = 0.0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fd >= 0:
            spec = self._spec.it_value
            spec.tv_sec = spec.tv_nsec = 0  # disarmed
            assert _TIMERFD is not None
            _TIMERFD[1](self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)

    def close(self) -> None:
        self.cancel()
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            self._loop.remove_reader(fd)
            os.close(fd)

    def _readable(self) -> None:
        try:
            os.read(self._fd, 8)  # how many expirations: one instant is all there is
        except (BlockingIOError, InterruptedError):
            return
        self._look()

    def _schedule(self, left: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = self._loop
        if left > 0:
            self._handle = loop.call_later(left, self._look)
        else:
            self._handle = loop.call_soon(self._look)

    def _look(self) -> None:
        self._handle = None
        if self._at and time.monotonic() < self._at:  # early: look again next iteration
            self._handle = self._loop.call_soon(self._look)
            return
        self._due()

    def _due(self) -> None:
        if not self._at:
            return  # cancelled meanwhile
        self._at = 0.0
        self._callback()
