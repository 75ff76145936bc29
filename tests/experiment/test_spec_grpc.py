"""`load.requests` of a gRPC load (`locustfile: grpc`): `kind` (unary or streaming) and
`messages` (what a client or bidirectional stream sends), read as the other request keys are,
with located errors; the runner hands them to the bundled gRPC locustfile."""

from __future__ import annotations

import json

from chaosproxy.experiment.processes import requests_json
from chaosproxy.experiment.schema import experiment_schema
from chaosproxy.experiment.spec import load_experiment_text
from tests.experiment.support_spec import GOOD, problems

CALLS = """  locustfile: grpc
  requests:
    - {path: /demo.Items/Get, body: "7"}
    - {path: /demo.Items/Watch, kind: server_stream, body: "3"}
    - {path: /demo.Items/Put, kind: client_stream, body: "x", messages: 4, weight: 2}
    - {path: /demo.Items/Sync, kind: bidi_stream, messages: 2}
"""
REQUESTS = """  requests:
    - {path: /api/items, weight: 5}
    - {path: /api/items/1, weight: 2, user_agent: mobile, method: GET}
"""


def grpc_load(calls: str = CALLS) -> str:
    assert REQUESTS in GOOD
    return GOOD.replace(REQUESTS, calls)


def test_streaming_calls_reach_the_locustfile_as_json() -> None:
    exp = load_experiment_text(grpc_load(), "exp.yaml")
    kinds = [(r.kind, r.messages) for r in exp.load.requests]
    assert kinds == [("unary", 1), ("server_stream", 1), ("client_stream", 4), ("bidi_stream", 2)]
    sent = json.loads(requests_json(exp))
    assert "kind" not in sent[0]  # a unary call's JSON is as before
    assert [(c.get("kind"), c.get("messages")) for c in sent[1:]] == [
        ("server_stream", 1),
        ("client_stream", 4),
        ("bidi_stream", 2),
    ]


def test_bad_kinds_and_messages_are_located_errors() -> None:
    found = problems(
        grpc_load(
            """  locustfile: grpc
  requests:
    - {path: /a.B/C, kind: streaming}
    - {path: /a.B/C, messages: 3}
    - {path: /a.B/C, kind: bidi_stream, messages: 0}
    - {path: /a.B/C, kind: client_stream, messages: 20000}
"""
        )
    )
    assert any("load.requests[0].kind" in p and "streaming" in p for p in found), found
    assert any(
        "load.requests[1].messages: messages is for kind: client_stream or bidi_stream" in p
        for p in found
    ), found
    assert any("load.requests[2].messages: must be ≥ 1, got 0" in p for p in found), found
    assert any("load.requests[3].messages: must be ≤ 10000, got 20000" in p for p in found), found
    assert all(p.startswith("exp.yaml:") for p in found)


def test_kind_is_for_grpc_load_only() -> None:
    found = problems(GOOD.replace("{path: /api/items, weight: 5}", "{path: /x, kind: unary}"))
    assert any(
        "load.requests[0].kind: kind is for gRPC calls (locustfile: grpc)" in p for p in found
    ), found


def test_the_schema_declares_both_keys() -> None:
    load = experiment_schema()["properties"]["load"]["properties"]
    request = load["requests"]["items"]["properties"]
    assert request["kind"]["enum"] == ["unary", "server_stream", "client_stream", "bidi_stream"]
    assert (request["messages"]["minimum"], request["messages"]["maximum"]) == (1, 10000)
