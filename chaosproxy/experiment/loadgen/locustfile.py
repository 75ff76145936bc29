"""The bundled locustfile: the `load.requests` of an experiment, weighted, as FastHttpUsers.

The runner passes the requests as JSON (`--chaos-requests`) and the pause between a user's
requests (`--chaos-wait`, seconds). Each user sends `X-Chaos-User: <n>` so the proxy can tell
the virtual users apart (they share one address) when it grades retries after `Retry-After`,
and puts the same id in each request's context (`chaos_user`), from which the plugin labels the
user's cohort when the scenario has a control group.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

from locust import FastHttpUser, events, task

_ids = itertools.count(1)


def _options(parser: Any) -> None:
    parser.add_argument("--chaos-requests", default="[]", help="chaosproxy: requests (JSON)")
    parser.add_argument("--chaos-wait", type=float, default=0.1, help="chaosproxy: pause (s)")


events.init_command_line_parser.add_listener(_options)


class ExperimentUser(FastHttpUser):
    """Sends one of the experiment's requests, chosen by weight, then pauses."""

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self._requests: list[dict[str, Any]] = json.loads(opts.chaos_requests) or [{"path": "/"}]
        self._weights = [int(r.get("weight", 1)) for r in self._requests]
        self._pause = float(opts.chaos_wait)
        self._user = f"u{next(_ids)}"

    def wait_time(self) -> float:
        return self._pause

    def context(self) -> dict[str, Any]:
        """The user's id on every request's event, so the plugin can label its cohort."""
        return {"chaos_user": getattr(self, "_user", None)}

    @task
    def one_request(self) -> None:
        r = random.choices(self._requests, self._weights)[0]
        headers = {"X-Chaos-User": self._user, **r.get("headers", {})}
        body = r.get("body")
        self.client.request(
            r.get("method", "GET"),
            r["path"],
            headers=headers,
            data=body.encode() if body is not None else None,
            name=r.get("name") or r["path"],
        )
