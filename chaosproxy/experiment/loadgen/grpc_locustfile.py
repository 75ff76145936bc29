"""The bundled gRPC locustfile (`load.locustfile: grpc`): the `load.requests` of an experiment as
gRPC calls, weighted, by `GrpcUser`s.

Each request's `path` is the full method (`/demo.Items/Get`), its `body` the request message's
bytes (UTF-8 text, sent as is: no generated code, no schema), its `headers` the call's metadata
(names lower-cased, as gRPC wants them), its `name` Locust's, its `kind` unary (the default),
`server_stream` (the answers read to the end), `client_stream` or `bidi_stream` (`body` sent
`messages` times). The runner passes them as JSON (`--chaos-requests`) with the pause between a
user's calls (`--chaos-wait`, seconds).
"""

from __future__ import annotations

import json
import random
from typing import Any

from locust import events, task

from chaosproxy.experiment.loadgen.grpc_user import GrpcUser


def _options(parser: Any) -> None:
    parser.add_argument("--chaos-requests", default="[]", help="chaosproxy: calls (JSON)")
    parser.add_argument("--chaos-wait", type=float, default=0.1, help="chaosproxy: pause (s)")


events.init_command_line_parser.add_listener(_options)


class ExperimentGrpcUser(GrpcUser):
    """Makes one of the experiment's calls, chosen by weight, then pauses."""

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        calls: list[dict[str, Any]] = json.loads(opts.chaos_requests) or []
        if not calls:
            raise ValueError("load.requests: a gRPC load needs at least one method (path)")
        self._calls = [
            (
                c["path"],
                (c.get("body") or "").encode(),
                tuple((k.lower(), str(v)) for k, v in (c.get("headers") or {}).items()),
                c.get("name") or c["path"],
                str(c.get("kind") or "unary"),
                int(c.get("messages") or 1),
            )
            for c in calls
        ]
        self._weights = [int(c.get("weight", 1)) for c in calls]
        self._pause = float(opts.chaos_wait)

    def wait_time(self) -> float:
        return self._pause

    @task
    def one_call(self) -> None:
        method, body, metadata, name, kind, messages = random.choices(self._calls, self._weights)[0]
        if kind == "server_stream":
            self.server_stream(method, body, metadata=metadata, name=name)
        elif kind == "client_stream":
            self.client_stream(method, [body] * messages, metadata=metadata, name=name)
        elif kind == "bidi_stream":
            self.bidi_stream(method, [body] * messages, metadata=metadata, name=name)
        else:
            self.call(method, body, metadata=metadata, name=name)
