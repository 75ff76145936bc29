"""The registry of TCP proxies: added, changed, disabled and removed while running, from the
proxy loop or from another thread's loop (the admin API's)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from chaosproxy.tcp.registry import TcpProxyError, TcpProxyExists, TcpProxyNotFound
from tests.tcp.conftest import MakeRig, Rig, Upstream

T = TypeVar("T")


async def echo_once(rig: Rig, name: str) -> bytes:
    reader, writer = await rig.connect(name)
    writer.write(b"hi")
    got = await reader.readexactly(2)
    writer.close()
    return got


async def test_add_list_get_remove(make_rig: MakeRig, upstream: Upstream) -> None:
    rig = await make_rig()
    info = await rig.proxies.add("b", "127.0.0.1:0", upstream.address)
    await rig.proxies.add("a", "localhost:0", f"localhost:{upstream.port}")  # names resolve
    assert info.enabled and info.address is not None and info.listen == "127.0.0.1:0"
    assert [p.name for p in rig.proxies.all()] == ["a", "b"]
    assert await echo_once(rig, "a") == b"hi"
    with pytest.raises(TcpProxyExists):
        await rig.proxies.add("a", "127.0.0.1:0", upstream.address)
    await rig.proxies.remove("a")
    with pytest.raises(TcpProxyNotFound):
        rig.proxies.get("a")
    with pytest.raises(TcpProxyNotFound):
        await rig.proxies.remove("a")


async def test_a_taken_address_or_a_bad_one_is_a_clear_error(
    make_rig: MakeRig, upstream: Upstream
) -> None:
    rig = await make_rig()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TcpProxyError) as e:
            await rig.proxies.add("x", f"127.0.0.1:{port}", upstream.address)
    assert str(e.value) == f"listen 127.0.0.1:{port}: address already in use"
    with pytest.raises(TcpProxyError, match="upstream: expected HOST:PORT"):
        await rig.proxies.add("x", "127.0.0.1:0", "nowhere")
    with pytest.raises(TcpProxyError, match="a TCP proxy name is"):
        await rig.proxies.add("no spaces", "127.0.0.1:0", upstream.address)
    assert rig.proxies.all() == []


async def test_disable_closes_listener_and_connections_enable_binds_the_same_port(
    rig: Rig, upstream: Upstream
) -> None:
    before = rig.proxies.get("db").address
    assert before is not None
    reader, writer = await rig.connect("db")
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    info = await rig.proxies.update("db", enabled=False)
    assert not info.enabled and info.address is None
    assert await reader.read() == b""  # the open connection was closed
    host, port = before.rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):  # nothing listens: a true refusal
        await asyncio.open_connection(host, int(port))
    info = await rig.proxies.update("db", enabled=True)
    assert info.address == before
    assert await echo_once(rig, "db") == b"hi"
    writer.close()


async def test_reset_enables_every_proxy(rig: Rig, upstream: Upstream) -> None:
    await rig.proxies.update("db", enabled=False)
    await rig.proxies.reset()
    assert rig.proxies.get("db").enabled
    assert await echo_once(rig, "db") == b"hi"


async def test_changing_the_upstream_moves_new_connections(
    rig: Rig, upstream: Upstream, make_rig: MakeRig
) -> None:
    other = Upstream()
    from tests.tcp.conftest import echo

    server = await asyncio.start_server(lambda r, w: echo(other, r, w), "127.0.0.1", 0)
    other.port = server.sockets[0].getsockname()[1]
    await rig.proxies.update("db", upstream=other.address)
    assert await echo_once(rig, "db") == b"hi"
    assert (upstream.accepted, other.accepted) == (0, 1)
    info = await rig.proxies.update("db", listen="127.0.0.1:0")
    assert info.address is not None
    assert await echo_once(rig, "db") == b"hi"
    server.close()


async def test_the_coroutines_work_from_another_thread_s_loop(rig: Rig, upstream: Upstream) -> None:
    """The admin API calls from its own thread and loop: the work hops to the proxy loop."""
    done: list[Any] = []

    def elsewhere(coro: Coroutine[Any, Any, T]) -> None:
        done.append(asyncio.run(coro))

    thread = threading.Thread(
        target=elsewhere, args=(rig.proxies.add("t", "127.0.0.1:0", upstream.address),)
    )
    thread.start()
    while thread.is_alive():  # the proxy loop must keep running for the hop to complete
        await asyncio.to_thread(thread.join)
    assert done and done[0].name == "t"
    assert await echo_once(rig, "t") == b"hi"
