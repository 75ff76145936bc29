"""A stream's inbound DATA: acknowledged only once the reader moved past it, all of it given
back when the stream is given up."""

from __future__ import annotations

import pytest

from chaosproxy.proxy.h2.stream import CANCEL, Stream, StreamReset


class Acks(list[tuple[int, int]]):
    def __call__(self, stream_id: int, n: int) -> None:
        self.append((stream_id, n))


async def test_a_chunk_is_acknowledged_when_the_next_is_asked_for() -> None:
    acks = Acks()
    s = Stream(3, acks)
    s.feed(b"abc", 3)
    s.feed(b"de", 12)  # padded: the flow-controlled length counts
    assert await s.read() == b"abc"
    assert acks == []  # handed out, not yet forwarded
    assert await s.read() == b"de"
    assert acks == [(3, 3)]
    s.feed_eof()
    assert await s.read() is None
    assert acks == [(3, 3), (3, 12)]


async def test_giving_up_returns_every_unread_byte() -> None:
    acks = Acks()
    s = Stream(5, acks)
    s.feed(b"x" * 10, 10)
    s.feed(b"y" * 5, 5)
    assert await s.read() == b"x" * 10
    s.fail(CANCEL)
    assert sum(n for _, n in acks) == 15
    with pytest.raises(StreamReset) as err:
        await s.read()
    assert err.value.code == CANCEL
    s.feed(b"late", 4)  # DATA already in flight when the reset went out
    assert acks[-1] == (5, 4)
