"""A stream's inbound DATA: acknowledged only once the reader moved past it, all of it given
back when the stream is given up."""

from __future__ import annotations

import asyncio

import pytest

from chaosproxy.proxy.h2.stream import CANCEL, Stream, StreamReset


class Acks(list[tuple[int, int]]):
    def __call__(self, stream_id: int, n: int) -> None:
        self.append((stream_id, n))


async def test_data_is_acknowledged_when_the_reader_asks_for_more() -> None:
    acks = Acks()
    s = Stream(3, acks)
    s.feed(b"abc", 3)
    assert await s.read() == b"abc"
    assert acks == []  # handed out, not yet forwarded
    s.feed(b"de", 12)  # padded: the flow-controlled length counts
    s.feed(b"f", 1)
    assert await s.read() == b"def"  # what arrived meanwhile, in one piece
    assert acks == [(3, 3)]
    s.feed_eof()
    assert await s.read() is None
    assert acks == [(3, 3), (3, 13)]


async def test_a_reader_waits_for_data() -> None:
    s = Stream(1, Acks())
    reading = asyncio.ensure_future(s.read())
    s.feed(b"late", 4)
    assert await reading == b"late"


async def test_giving_up_returns_every_unread_byte() -> None:
    acks = Acks()
    s = Stream(5, acks)
    s.feed(b"x" * 10, 10)
    assert await s.read() == b"x" * 10
    s.feed(b"y" * 5, 5)
    s.fail(CANCEL)
    assert sum(n for _, n in acks) == 15
    with pytest.raises(StreamReset) as err:
        await s.read()
    assert err.value.code == CANCEL
    s.feed(b"late", 4)  # DATA already in flight when the reset went out
    assert acks[-1] == (5, 4)
