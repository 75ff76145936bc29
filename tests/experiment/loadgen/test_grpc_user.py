"""`GrpcUser` in a real Locust environment (a subprocess: importing Locust patches the process
with gevent) against a real grpc.aio server: each call fires one `request` event the plugin
counts like an HTTP request (type `grpc`, the method as name, a failure when the status is not
OK, named by it), and carries the user's and the run's ids as metadata."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

# Never imported here: grpc_user.py makes grpcio cooperative with gevent, process-wide, which
# would stall this process's grpc.aio server.
SCRIPT = """
import argparse, json, sys
from locust.env import Environment
from chaosproxy.experiment.loadgen.grpc_user import GrpcUser, channel_target

class U(GrpcUser):
    host = sys.argv[1]

env = Environment(user_classes=[U])
env.parsed_options = argparse.Namespace(chaos_run_id="run42")
seen = []
env.events.request.add_listener(lambda **kw: seen.append({
    "type": kw["request_type"], "name": kw["name"], "length": kw["response_length"],
    "ms": kw["response_time"], "error": None if kw["exception"] is None else str(kw["exception"]),
    "status": kw["context"]["grpc_status"], "user": kw["context"]["chaos_user"]}))
u = U(env)
answers = [u.call("/t.S/Echo", b"hello"), u.call("/t.S/Fail", b"x", name="failing")]
u.on_stop()
hosts = ["http://127.0.0.1:5000", "https://api.test", "http://[::1]:7", "127.0.0.1:9"]
print(json.dumps({"seen": seen, "answers": [a.decode() if a else None for a in answers],
                  "targets": [channel_target(h) for h in hosts]}))
"""


async def test_calls_are_locust_requests_with_status_names_and_the_chaos_metadata(
    tmp_path: Path,
) -> None:
    metadata: list[dict[str, str]] = []

    async def echo(request: bytes, context: Any) -> bytes:
        metadata.append(dict(context.invocation_metadata()))
        return request

    async def fail(request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down for maintenance")
        raise AssertionError

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S",
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(echo),
                    "Fail": grpc.unary_unary_rpc_method_handler(fail),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        # Output to files: pipes read by this loop stall beside grpc.aio's own poller.
        with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCRIPT, f"http://127.0.0.1:{port}", stdout=out, stderr=err
            )
            code = await proc.wait()
    finally:
        await server.stop(None)
    assert code == 0, (tmp_path / "err").read_text()
    doc = json.loads((tmp_path / "out").read_text().strip().splitlines()[-1])
    assert doc["answers"] == ["hello", None]
    ok, failed = doc["seen"]
    assert ok["type"] == failed["type"] == "grpc"
    assert (ok["name"], ok["length"], ok["error"], ok["status"]) == ("/t.S/Echo", 5, None, "OK")
    assert ok["ms"] > 0
    assert failed["name"] == "failing" and failed["status"] == "UNAVAILABLE"
    assert failed["error"] == "UNAVAILABLE: down for maintenance"
    assert ok["user"] == failed["user"] and ok["user"].startswith("u")
    assert metadata[0]["x-chaos-run"] == "run42"
    assert metadata[0]["x-chaos-user"] == ok["user"]

    assert doc["targets"] == [
        ["127.0.0.1:5000", False],
        ["api.test:443", True],
        ["[::1]:7", False],
        ["127.0.0.1:9", False],
    ]


STREAMS = """
import argparse, json, sys
from locust.env import Environment
from chaosproxy.experiment.loadgen.grpc_user import GrpcUser

class U(GrpcUser):
    host = sys.argv[1]

env = Environment(user_classes=[U])
env.parsed_options = argparse.Namespace(chaos_run_id="run7")
seen = []
env.events.request.add_listener(lambda **kw: seen.append({
    "name": kw["name"], "length": kw["response_length"], "ms": kw["response_time"],
    "error": None if kw["exception"] is None else str(kw["exception"]),
    "status": kw["context"]["grpc_status"], "user": kw["context"]["chaos_user"]}))
u = U(env)
answers = [
    u.server_stream("/t.S/Watch", b"3"),
    u.client_stream("/t.S/Put", [b"ab", b"cd", b"e"]),
    u.bidi_stream("/t.S/Sync", [b"x", b"yy"], name="sync"),
    u.server_stream("/t.S/Broken", b"2"),
]
# generated-stub style, on the intercepted channel: a stream read in part, then cancelled
partial = u.channel.unary_stream("/t.S/Watch")(b"50")
first = next(partial)
before = len(seen)
partial.cancel()
u.on_stop()
def text(a):
    return None if a is None else [a.decode()] if isinstance(a, bytes) else [m.decode() for m in a]
print(json.dumps({"seen": seen, "before_cancel": before, "first": first.decode(),
                  "answers": [text(a) for a in answers]}))
"""


async def test_streaming_calls_are_one_request_each_when_they_end(tmp_path: Path) -> None:
    """Server, client and bidirectional streaming: one `request` event per call, timed to its
    final status, with the bytes received, the status name first in a failure's text, and the
    chaos metadata on every call; a stream cancelled by the task counts as CANCELLED."""
    metadata: list[dict[str, str]] = []

    async def watch(request: bytes, context: Any) -> Any:
        metadata.append(dict(context.invocation_metadata()))
        for i in range(int(request)):
            yield b"item-%d" % i

    async def put(requests: Any, context: Any) -> bytes:
        metadata.append(dict(context.invocation_metadata()))
        return b"+".join([m async for m in requests])

    async def sync(requests: Any, context: Any) -> Any:
        metadata.append(dict(context.invocation_metadata()))
        async for m in requests:
            yield m * 2

    async def broken(request: bytes, context: Any) -> Any:
        metadata.append(dict(context.invocation_metadata()))
        for i in range(int(request)):
            yield b"part-%d" % i
        await context.abort(grpc.StatusCode.UNAVAILABLE, "primary draining")

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S",
                {
                    "Watch": grpc.unary_stream_rpc_method_handler(watch),
                    "Put": grpc.stream_unary_rpc_method_handler(put),
                    "Sync": grpc.stream_stream_rpc_method_handler(sync),
                    "Broken": grpc.unary_stream_rpc_method_handler(broken),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", STREAMS, f"http://127.0.0.1:{port}", stdout=out, stderr=err
            )
            code = await proc.wait()
    finally:
        await server.stop(None)
    assert code == 0, (tmp_path / "err").read_text()
    doc = json.loads((tmp_path / "out").read_text().strip().splitlines()[-1])
    assert doc["answers"] == [
        ["item-0", "item-1", "item-2"],
        ["ab+cd+e"],
        ["xx", "yyyy"],
        None,
    ]
    got = [(s["name"], s["length"], s["status"], s["error"]) for s in doc["seen"]]
    assert got == [
        ("/t.S/Watch", 18, "OK", None),
        ("/t.S/Put", 7, "OK", None),
        ("sync", 6, "OK", None),
        ("/t.S/Broken", 12, "UNAVAILABLE", "UNAVAILABLE: primary draining"),
        ("/t.S/Watch", 6, "CANCELLED", "CANCELLED: cancelled by the task"),
    ]
    assert doc["first"] == "item-0" and doc["before_cancel"] == 4  # counted at its end
    assert all(s["ms"] > 0 for s in doc["seen"])
    users = {s["user"] for s in doc["seen"]}
    assert len(users) == 1 and len(metadata) == 5
    assert all(
        (m["x-chaos-user"], m["x-chaos-run"]) == (next(iter(users)), "run7") for m in metadata
    )
