"""The `slicer` fault: the body re-cut into pieces of `size` ± `variation`, `delay` apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from chaosproxy.common.clock import FakeClock
from chaosproxy.common.errors import ConfigError
from chaosproxy.config.schema import scenario_schema
from chaosproxy.faults import build
from chaosproxy.faults.base import Reply
from chaosproxy.faults.slicer import SlicerFault
from tests.faults.conftest import StartProxy, Upstream, pattern
from tests.faults.fakes import FakeExchange, run


def slicer(params: dict[str, Any]) -> SlicerFault:
    fault = build("slicer", params, "fault")
    assert isinstance(fault, SlicerFault)
    return fault


def schema_accepts(params: dict[str, Any]) -> bool:
    rule = {"fault": {"slicer": params}}
    doc = {"name": "s", "phases": [{"name": "p", "duration": "1s", "rules": [rule]}]}
    return jsonschema.Draft202012Validator(scenario_schema()).is_valid(doc)


async def pieces(fault: SlicerFault, ex: FakeExchange, chunks: list[bytes]) -> list[bytes]:
    """The pieces the fault's body filter yields for `chunks`, its pauses stepped through on
    the exchange's fake clock."""

    async def body() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    async def collect() -> list[bytes]:
        return [p async for p in fault.slice(ex, body())]

    task = asyncio.create_task(collect())
    while not task.done():
        sleeping = asyncio.ensure_future(ex.clock.wait_sleepers(1))
        await asyncio.wait({task, sleeping}, return_when=asyncio.FIRST_COMPLETED)
        sleeping.cancel()
        if not task.done():
            assert isinstance(ex.clock, FakeClock)
            ex.clock.advance(fault.delay)
    return task.result()


def test_defaults_and_units() -> None:
    assert (slicer({}).size, slicer({}).variation, slicer({}).delay) == (64, 0, 0.01)
    f = slicer({"size": "1KiB", "variation": 100, "delay": "250ms"})
    assert (f.size, f.variation, f.delay) == (1024, 100, 0.25)


@pytest.mark.parametrize(
    "params",
    [{"size": 0}, {"size": 8, "variation": 8}, {"delay": "soon"}, {"sizes": 8}],
    ids=["empty-piece", "variation-reaches-size", "bad-delay", "unknown-key"],
)
def test_bad_parameters_are_refused_naming_the_key(params: dict[str, Any]) -> None:
    key = next(iter(params)) if "variation" not in params else "variation"
    with pytest.raises(ConfigError, match=rf"fault\.slicer\.{key}"):
        slicer(params)


def test_the_schema_agrees_with_the_loader_on_each_key() -> None:
    assert schema_accepts({"size": "16", "variation": 4, "delay": "5ms"})
    assert not schema_accepts({"size": 0})
    assert not schema_accepts({"delay": "soon"})
    assert not schema_accepts({"sizes": 8})


async def test_pieces_are_size_bytes_each_a_delay_after_the_last() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, upstream=(Reply(200, "OK", []), [pattern(35)]))
    task = asyncio.create_task(run(slicer({"size": 10, "delay": "1s"}), ex))
    start, seen = clock.monotonic(), []
    for _ in range(3):
        await clock.wait_sleepers(1)  # the pause before the next piece
        seen.append((clock.monotonic() - start, len(ex.sent_body)))
        clock.advance(1.0)
    await task
    assert seen == [(0.0, 10), (1.0, 20), (2.0, 30)]
    assert (ex.sent_body, ex.how_ended, ex.events) == (
        pattern(35),
        "eof",
        [("slicer", "size=10±0")],
    )


async def test_piece_sizes_vary_within_the_bounds_and_the_bytes_are_unchanged() -> None:
    body = pattern(2000)
    got = await pieces(slicer({"size": 16, "variation": 12}), FakeExchange(seed=7), [body])
    assert b"".join(got) == body
    assert all(4 <= len(p) <= 28 for p in got[:-1])  # the last takes what is left
    assert len({len(p) for p in got}) > 5  # uneven: many different sizes


async def test_a_piece_never_waits_for_the_next_upstream_chunk() -> None:
    got = await pieces(slicer({"size": 10}), FakeExchange(), [b"a" * 15, b"b" * 15])
    assert got == [b"a" * 10, b"a" * 5, b"b" * 10, b"b" * 5]


async def test_a_seed_replays_the_same_cuts() -> None:
    body = [pattern(500)]
    f = slicer({"size": 10, "variation": 9})
    first = await pieces(f, FakeExchange(seed=3), body)
    again = await pieces(f, FakeExchange(seed=3), body)
    other = await pieces(f, FakeExchange(seed=4), body)
    assert [len(p) for p in first] == [len(p) for p in again] != [len(p) for p in other]


# ---------------------------------------------------------------- through the real proxy


async def test_a_client_receives_one_piece_per_step_of_the_proxys_clock(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    """With the proxy's clock standing still, exactly one piece has left: the next waits."""
    clock = FakeClock()
    rt = await start_proxy(upstream.url, clock=clock)
    rt.engine.add_rule([slicer({"size": 10, "delay": "1s"})])
    async with aiohttp.ClientSession() as s, s.get(rt.proxy_url + "/bytes?n=30") as r:
        assert r.status == 200 and r.headers["Content-Length"] == "30"
        for i in range(3):
            assert await r.content.readexactly(10) == pattern(30)[i * 10 : i * 10 + 10]
            if i < 2:
                await clock.wait_sleepers(1, until=clock.monotonic() + 1.0)
                assert r.content.total_bytes == 10 * (i + 1)  # nothing more left the proxy
                clock.advance(1.0)
        assert await r.read() == b""


async def test_a_sliced_body_arrives_whole_and_no_sooner_than_its_pauses(
    upstream: Upstream, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(upstream.url)
    rt.engine.add_rule([slicer({"size": 8, "variation": 4, "delay": "20ms"})])
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(rt.proxy_url + "/bytes?n=120") as r:
            body = await r.read()
        took = time.monotonic() - t0
    assert body == pattern(120)
    # At most 12 bytes a piece: at least 10 pieces, 9 pauses of 20 ms. No upper bound.
    assert took >= 9 * 0.020
