"""The bundled gRPC locustfile in a real `locust` subprocess (headless) against a real grpc.aio
server in this process: every kind of `load.requests` call — unary, server, client and
bidirectional streaming — reaches the service as the experiment wrote it (`messages` request
messages, the metadata), and Locust counts each call once, a failed stream by its status."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

import chaosproxy.experiment.loadgen as loadgen

LOCUSTFILE = Path(loadgen.__file__).parent / "grpc_locustfile.py"
CALLS = [
    {"path": "/t.S/Get", "body": "7"},
    {"path": "/t.S/Watch", "kind": "server_stream", "body": "3", "name": "watch"},
    {"path": "/t.S/Put", "kind": "client_stream", "body": "ab", "messages": 4},
    {"path": "/t.S/Sync", "kind": "bidi_stream", "body": "x", "messages": 2},
    {"path": "/t.S/Broken", "kind": "server_stream", "body": "2"},
]


async def test_every_kind_of_call_from_the_requests(tmp_path: Path) -> None:
    """Ten seconds of two users: on a busy machine Locust's start takes a few of them, and
    each of the five calls must still be drawn at least once."""
    seen: dict[str, list[Any]] = {}

    def note(name: str, what: Any, ctx: Any) -> None:
        md = dict(ctx.invocation_metadata())
        seen.setdefault(name, []).append((what, md.get("x-chaos-user", "")))

    async def get(request: bytes, ctx: Any) -> bytes:
        note("Get", request, ctx)
        return b"item " + request

    async def watch(request: bytes, ctx: Any) -> Any:
        note("Watch", request, ctx)
        for i in range(int(request)):
            yield b"%d" % i

    async def put(requests: Any, ctx: Any) -> bytes:
        got = [m async for m in requests]
        note("Put", got, ctx)
        return b"ok"

    async def sync(requests: Any, ctx: Any) -> Any:
        got = []
        async for m in requests:
            got.append(m)
            yield m
        note("Sync", got, ctx)

    async def broken(request: bytes, ctx: Any) -> Any:
        note("Broken", request, ctx)
        yield b"one"
        await ctx.abort(grpc.StatusCode.UNAVAILABLE, "primary draining")

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S",
                {
                    "Get": grpc.unary_unary_rpc_method_handler(get),
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
    args = [
        "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2",
        "--run-time", "10s", "--host", f"http://127.0.0.1:{port}", "--only-summary",
        "--csv", str(tmp_path / "run"), "--chaos-requests", json.dumps(CALLS),
        "--chaos-wait", "0.05",
    ]  # fmt: skip
    try:
        # Output to files: pipes read by this loop stall beside grpc.aio's own poller.
        with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=out, stderr=err
            )
            code = await proc.wait()
    finally:
        await server.stop(None)
    assert code in (0, 1), (tmp_path / "err").read_text()  # 1: some calls failed, as meant
    assert seen.keys() == {"Get", "Watch", "Put", "Sync", "Broken"}
    assert {what for what, _ in seen["Get"]} == {b"7"}
    # every call sent its `messages`; one cut by the end of the run may have sent fewer
    puts = {tuple(what) for what, _ in seen["Put"]}
    assert (b"ab",) * 4 in puts and puts <= {(b"ab",) * k for k in range(5)}
    syncs = {tuple(what) for what, _ in seen["Sync"]}
    assert (b"x", b"x") in syncs and syncs <= {(), (b"x",), (b"x", b"x")}
    assert all(user.startswith("u") for calls in seen.values() for _, user in calls)

    with (tmp_path / "run_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f) if r["Type"] == "grpc"}
    assert rows.keys() == {"/t.S/Get", "watch", "/t.S/Put", "/t.S/Sync", "/t.S/Broken"}
    served = {"/t.S/Get": "Get", "watch": "Watch", "/t.S/Put": "Put", "/t.S/Sync": "Sync"}
    for name, method in served.items():  # each call counted once, at its end, none failed
        assert int(rows[name]["Failure Count"]) == 0
        assert 0 < int(rows[name]["Request Count"]) <= len(seen[method])
    broken = rows["/t.S/Broken"]
    assert int(broken["Failure Count"]) == int(broken["Request Count"]) > 0
    assert int(broken["Request Count"]) <= len(seen["Broken"])
    with (tmp_path / "run_failures.csv").open() as f:
        failures = list(csv.DictReader(f))
    assert [(r["Name"], r["Error"]) for r in failures] == [
        ("/t.S/Broken", "UNAVAILABLE: primary draining")
    ]
