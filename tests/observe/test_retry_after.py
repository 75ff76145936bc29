"""Per-client Retry-After memory: early retries and retries after waiting, per client."""

from __future__ import annotations

import aiohttp

from chaosproxy.common.events import RequestDone
from chaosproxy.faults import build
from chaosproxy.observe.retry_after import Retry, RetryAfterWatch
from tests.conftest import StartProxy


def done(client: str, t: float, retry_after: float | None = None) -> RequestDone:
    return RequestDone(
        t=t,
        method="GET",
        status=429 if retry_after is not None else 200,
        duration=0.0,
        upstream_duration=None,
        upstream_error=None,
        injected=retry_after is not None,
        client=client,
        retry_after=retry_after,
    )


def test_a_client_back_before_retry_after_is_early() -> None:
    w = RetryAfterWatch()
    assert w.observe(done("a", 100.0, retry_after=2)) is None
    assert w.observe(done("a", 101.0)) is Retry.EARLY


def test_a_client_back_after_waiting_has_waited() -> None:
    w = RetryAfterWatch()
    w.observe(done("a", 100.0, retry_after=2))
    assert w.observe(done("a", 102.5)) is Retry.WAITED


def test_clients_are_told_apart_and_judged_once() -> None:
    w = RetryAfterWatch()
    w.observe(done("a", 100.0, retry_after=5))
    assert w.observe(done("b", 100.1)) is None
    assert w.observe(done("a", 100.2)) is Retry.EARLY
    assert w.observe(done("a", 100.3)) is None  # already judged


def test_memory_is_bounded() -> None:
    w = RetryAfterWatch(limit=100)
    for i in range(1000):
        w.observe(done(f"c{i}", 100.0 + i, retry_after=1))
    assert len(w) <= 100


def test_long_client_ids_are_kept_as_fixed_size_hashes_and_still_told_apart() -> None:
    """8 KB ids from 16,000 clients used to be kept whole (+129 MiB): an id over MAX_ID
    characters is kept as a 33-character hash of itself, one client per distinct id."""
    from chaosproxy.observe.retry_after import MAX_ID

    w = RetryAfterWatch()
    ids = [f"{i:05d}" + "x" * 8 * 1024 for i in range(16_000)]
    for i, client in enumerate(ids):
        w.observe(done(client, 100.0 + i / 1000, retry_after=60))
    assert len(w) == 16_000
    assert max(len(k) for k in w.until) <= MAX_ID
    assert sum(len(k) for k in w.until) < 1_000_000  # was 131 million characters
    assert w.observe(done(ids[7], 101.0)) is Retry.EARLY  # the same client, recognised
    assert w.observe(done(ids[8][:-1] + "y", 101.0)) is None  # one character off: another


def test_the_clients_remembered_are_bounded_by_default() -> None:
    from chaosproxy.observe.retry_after import MAX_CLIENTS

    w = RetryAfterWatch()
    for i in range(MAX_CLIENTS + 500):
        w.observe(done(f"c{i}", 100.0, retry_after=600))
    assert len(w) <= MAX_CLIENTS <= 20_000


async def test_timeseries_counts_early_retries_after_a_429(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream, client_id_header="X-Client-Id")
    rt.engine.add_rule([build("rate_limit", {"rps": 1, "burst": 1}, "fault")])
    async with aiohttp.ClientSession() as s:
        for client in ("impatient", "impatient", "impatient", "other"):
            async with s.get(rt.proxy_url + "/api/items", headers={"X-Client-Id": client}) as r:
                await r.read()
    rows = rt.stats.series(rt.clock.wall() + 1, 5)
    assert sum(r["retry_after"] for r in rows) >= 2  # the 429s told clients to wait
    assert sum(r["retried_early"] for r in rows) >= 1  # "impatient" came straight back
