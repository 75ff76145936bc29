"""The hook pipeline the proxy and the fakes share: its one order of play."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chaosproxy.common.errors import UpstreamError
from chaosproxy.faults.base import BodyFilter, Exchange, Reply
from tests.faults.fakes import FakeExchange


async def test_hooks_play_in_order_reply_head_headers_body_end() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"ab", b"cd"]))
    seen: list[str] = []

    async def on_reply(_: Exchange, reply: Reply) -> Reply:
        seen.append(f"reply {reply.status} sent={ex.sent_status}")
        return Reply(203, "Changed", reply.headers)

    async def on_headers(_: Exchange) -> None:
        seen.append(f"headers sent={ex.sent_status} body={ex.sent_body!r}")

    def upper(_: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            async for chunk in body:
                yield chunk.upper()

        return gen()

    ex.on_reply(on_reply)
    ex.on_headers_sent(on_headers)
    ex.filter_body(upper)
    await ex.proceed_upstream()
    assert seen == ["reply 200 sent=None", "headers sent=203 body=b''"]
    assert (ex.sent_status, ex.sent_body, ex.how_ended) == (203, b"ABCD", "eof")


async def test_a_reply_hook_that_answers_ends_the_pipeline() -> None:
    ex = FakeExchange()
    later: list[str] = []

    async def answer(e: Exchange, _: Reply) -> None:
        await e.respond(418, b"teapot")

    async def never(_: Exchange, reply: Reply) -> Reply:
        later.append("ran")
        return reply

    ex.on_reply(answer)
    ex.on_reply(never)
    await ex.proceed_upstream()
    assert (ex.sent_status, ex.sent_body, later) == (418, b"teapot", [])
    assert ex.answer is not None and ex.answer.released  # the upstream's answer is given up


async def test_body_filters_chain_in_registration_order_and_are_closed() -> None:
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"x"]))
    closed: list[str] = []

    def tag(name: str) -> BodyFilter:
        def f(_: Exchange, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            async def gen() -> AsyncIterator[bytes]:
                try:
                    async for chunk in body:
                        yield chunk + name.encode()
                finally:
                    closed.append(name)

            return gen()

        return f

    ex.filter_body(tag("1"))
    ex.filter_body(tag("2"))
    await ex.proceed_upstream()
    assert ex.sent_body == b"x12"
    assert sorted(closed) == ["1", "2"]


async def test_respond_hooks_see_every_whole_response() -> None:
    ex = FakeExchange()
    seen: list[tuple[int, bytes, list[tuple[str, str]]]] = []
    ex.on_respond(lambda status, body, headers: seen.append((status, body, headers)))
    await ex.respond(503, b"down", [("Retry-After", "1")])
    assert seen == [(503, b"down", [("Retry-After", "1")])]


async def test_an_upstream_breaking_off_mid_body_closes_the_client_after_what_arrived() -> None:
    broken = UpstreamError("reset", "the upstream broke off the body")
    ex = FakeExchange(upstream=(Reply(200, "OK", []), [b"ab", broken]))
    await ex.proceed_upstream()
    assert (ex.sent_body, ex.how_ended, ex.upstream_error) == (b"ab", "close", broken)


async def test_a_reply_that_may_not_carry_a_body_ends_after_its_head() -> None:
    ex = FakeExchange(upstream=(Reply(204, "No Content", []), [b"never"]))
    seen: list[int | None] = []

    async def look(e: Exchange) -> None:  # a hook: the reply takes the hooked way
        seen.append(e.response_status)

    ex.on_headers_sent(look)
    await ex.proceed_upstream()
    assert (ex.sent_status, ex.sent_body, ex.how_ended, seen) == (204, b"", "eof", [])
