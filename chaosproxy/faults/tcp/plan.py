"""What the TCP faults in force ask of one connection: a `Plan`, with a `Flow` per direction.

Faults never touch sockets: each fault file adds its wish to the plan (`TcpFault.shape`), and
the relay (`relay.py`, `pump.py`) carries the plan out. So the mechanisms (timers, pacing, flow
control) live once, and a fault stays a small declaration of parameters and intent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

UPSTREAM = "upstream"  # client → server bytes
DOWNSTREAM = "downstream"  # server → client bytes
BOTH = "both"
DIRECTIONS = (UPSTREAM, DOWNSTREAM, BOTH)

Sampler = Callable[[random.Random], float]


@dataclass(slots=True)
class Flow:
    """One direction's shaping, in the order the pump applies it: hold everything (`stall`),
    delay each chunk (the sum of `latency` samples), cut chunks into slices, pace to `rate`,
    close once `limit` bytes went through; `close_delay` holds the end-of-stream back."""

    stall: bool = False
    latency: list[Sampler] = field(default_factory=list)
    slices: tuple[int, int, float] | None = None  # average size, variation, delay between
    rate: float | None = None  # bytes per second
    limit: int | None = None  # bytes, then the connection is closed
    close_delay: float = 0.0  # seconds between the end of stream and passing it on

    @property
    def idle(self) -> bool:
        """Nothing to do: the bytes take the fast path."""
        return not (
            self.stall
            or self.latency
            or self.slices is not None
            or self.rate is not None
            or self.limit is not None
            or self.close_delay
        )


@dataclass(slots=True)
class Plan:
    """Everything the faults in force ask of one connection."""

    up: Flow = field(default_factory=Flow)
    down: Flow = field(default_factory=Flow)
    refuse: bool = False  # RST the client now (at accept: before any upstream connection)
    half_open: bool = False  # never connect upstream (a live connection: forward nothing)
    reset_after: float | None = None  # RST both sides this many seconds after the plan applies
    close_after: float | None = None  # close both sides this many seconds after it applies

    def flows(self, direction: str) -> tuple[Flow, ...]:
        if direction == UPSTREAM:
            return (self.up,)
        if direction == DOWNSTREAM:
            return (self.down,)
        return (self.up, self.down)

    @property
    def idle(self) -> bool:
        return (
            self.up.idle
            and self.down.idle
            and not self.refuse
            and not self.half_open
            and self.reset_after is None
            and self.close_after is None
        )
