"""What one HTTP/2 client may make the proxy do: the bounds the HTTP/1.1 listener has for sizes
and times, and those HTTP/2 adds because one connection multiplexes many requests and frames
that cost the proxy work (or a reply) without carrying a request.

- Streams reset by the client, or refused by the proxy (CVE-2023-44487, "Rapid Reset"): a
  client that opens streams and cancels them at once makes the server start work that the
  stream cap never sees (a reset stream no longer counts as open). Counted per connection in a
  token bucket as nghttp2 counts them (a burst of 1000, then 33 a second); past it, GOAWAY
  with ENHANCE_YOUR_CALM and the connection closes.
- Frames that cost the proxy a reply or work but carry no request (PING and SETTINGS, each
  acknowledged; PRIORITY; unknown frame types; DATA without payload nor END_STREAM): a burst of
  1000, then 100 a second. gRPC's BDP and keepalive pings stay far below.
- Replies queued to a client that does not read (Envoy's `max_outbound_control_frames`): once
  the connection's output is past its high-water mark, at most 1000 more frames needing a reply
  are taken; then GOAWAY and the connection is aborted (a close would wait for it to read).
- A header block: h2 collects HEADERS and CONTINUATION frames until END_HEADERS (at most 64 of
  them, each up to our frame size): the block waiting for its end is bounded to
  `MAX_HEADER_BLOCK` encoded, and HPACK decodes at most that much (an HPACK bomb, tiny encoded
  and huge decoded, stops there). A request whose decoded list is past `MAX_HEADER_LIST` (what
  SETTINGS_MAX_HEADER_LIST_SIZE announces) or holds more than `MAX_HEADERS` fields is answered
  431, as over HTTP/1.1; the connection goes on (the block was decoded, so HPACK's table is
  in step).

- A request body that stops (`BodyWatch`): `--body-timeout`, as over HTTP/1.1, except on gRPC
  calls (their deadline bounds them; a quiet client stream is how a gRPC stream lives).

Per frame the accounting is a type test and, for the frames above only, a clock read and some
float arithmetic: no allocation. The counts of connections ended this way are the handler's
`calmed` (by reason).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaosproxy.proxy.h2.stream import Stream

RESET_BURST = 1000  # streams reset by the client or refused, at once (nghttp2's default)
RESET_RATE = 33.0  # ... and per second after (nghttp2's default)
CONTROL_BURST = 1000  # frames needing a reply or carrying nothing, at once
CONTROL_RATE = 100.0  # ... and per second after
QUEUED_REPLIES = 1000  # replies taken while the client reads nothing (Envoy's default)
MAX_HEADER_LIST = 64 * 1024  # decoded, as HPACK counts (name, value, 32): the 64 KiB of HTTP/1.1
MAX_HEADER_BLOCK = 4 * MAX_HEADER_LIST  # encoded and decoded: past it, a connection error
MAX_HEADERS = 128  # regular fields, as over HTTP/1.1

ENHANCE_YOUR_CALM = 0xB
# How long a connection past a bound may take to read its GOAWAY before it is cut (as the
# listener's refused connections: `downstream/limits.py`)
CLOSE_LINGER = 2.0


class Budget:
    """A token bucket: `burst` at once, then `rate` a second."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.tokens = float(burst)
        self.last = now

    def spend(self, now: float) -> bool:
        """Take one; False when there was none left (the bound is reached)."""
        tokens = self.tokens
        if tokens < self.burst:
            tokens = min(self.burst, tokens + (now - self.last) * self.rate)
        self.last = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class Calm:
    """One connection's budgets; `reason` names the bound it went past (then GOAWAY)."""

    __slots__ = ("control", "queued", "reason", "resets")

    def __init__(self, now: float) -> None:
        self.resets = Budget(RESET_BURST, RESET_RATE, now)
        self.control = Budget(CONTROL_BURST, CONTROL_RATE, now)
        self.queued = 0  # replies taken since the output went past its high-water mark
        self.reason = ""

    def reset(self, now: float) -> bool:
        """A stream reset by the client or refused; False past the bound."""
        if self.resets.spend(now):
            return True
        self.reason = "resets"
        return False

    def frame(self, now: float, reply: bool, paused: bool) -> bool:
        """A frame that carries no request (`reply`: it needs one written); `paused`: the
        client reads nothing now. False past either bound."""
        if not self.control.spend(now):
            self.reason = "control"
            return False
        if reply and paused:
            self.queued += 1
            if self.queued > QUEUED_REPLIES:
                self.reason = "queued"
                return False
        return True


REASONS = {
    "resets": "streams reset by the client or refused, past {burst} at once and {rate:g} a second",
    "control": "frames without a request (PING, SETTINGS, PRIORITY, empty DATA, unknown) past "
    "{cburst} at once and {crate:g} a second",
    "queued": "replies to a client that reads nothing past {queued}",
    "headers": "a header block past {block} bytes",
}


def why(reason: str) -> str:
    """The log line's words for a bound."""
    return REASONS.get(reason, reason).format(
        burst=RESET_BURST,
        rate=RESET_RATE,
        cburst=CONTROL_BURST,
        crate=CONTROL_RATE,
        queued=QUEUED_REPLIES,
        block=MAX_HEADER_BLOCK,
    )


def header_refusal(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why a request's decoded header list is refused (431), or None. Counted as HPACK
    counts it (RFC 9113 §6.5.2): name, value and 32 bytes a field."""
    size = 0
    regular = 0
    for k, v in headers:
        size += len(k) + len(v) + 32
        if not k.startswith(b":"):
            regular += 1
    if size > MAX_HEADER_LIST:
        return f"request headers too large: {size} bytes, at most {MAX_HEADER_LIST}"
    if regular > MAX_HEADERS:
        return f"too many request headers: {regular}, at most {MAX_HEADERS}"
    return None


class BodyWatch:
    """`--body-timeout` on a stream's request DATA, as over HTTP/1.1: the time the proxy waits
    for DATA that does not come. Checked every half timeout, never per frame: the stream's
    reader waiting on the same wake-up at three checks in a row waited a whole timeout with
    nothing arriving; then the stream's task is cancelled and `expired` says why (cut between
    one and one and a half timeouts). Time the proxy itself stops reading (its upstream is
    slow, a fault holds the body) is not the client's and does not count: the reader is not
    waiting then."""

    __slots__ = ("_handle", "_interval", "_seen", "_silent", "_stream", "_task", "expired")

    def __init__(self, stream: Stream, timeout: float, task: asyncio.Task[Any]) -> None:
        self._stream = stream
        self._task = task
        self._interval = timeout / 2
        self._seen: object = None
        self._silent = 0
        self.expired = False
        self._handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self._interval, self._check
        )

    def _check(self) -> None:
        s = self._stream
        self._handle = None
        if s.ended or s.reset_code is not None:
            return
        waiting = s._waiter
        if waiting is not None and waiting is self._seen:
            self._silent += 1
            if self._silent >= 2:
                self.expired = True
                self._task.cancel()
                return
        else:
            self._seen = waiting
            self._silent = 0
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
