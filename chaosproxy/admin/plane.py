"""What the admin API acts on: the control plane, without the data plane.

The runtime (the composition root) builds one `ControlPlane` and hands it to the admin app; the
admin side never sees the proxy, its upstream pool or the runtime itself. What it needs of the
data plane comes as two callables: a fresh request id, and a readiness probe that runs where the
upstream pool lives (the proxy loop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chaosproxy.common.clock import Clock
from chaosproxy.config.model import Scenario
from chaosproxy.engine.core import Engine
from chaosproxy.engine.guardrails import Guardrails

if TYPE_CHECKING:
    from chaosproxy.observe.eventlog import EventLog
    from chaosproxy.observe.stats import Stats


@dataclass(frozen=True)
class AdminAccess:
    """Who may reach the admin API: its host (a non-loopback `Host` must name it) and whether
    it was opened without a token on purpose (`--admin-insecure`)."""

    host: str = "127.0.0.1"
    insecure: bool = False
    # A `run --workers` worker's private admin: its token (the run's secret) guards writes only;
    # reads stay open, to look at one worker alone (docs/operations.md).
    open_reads: bool = False


@dataclass(eq=False)
class ControlPlane:
    """Everything an admin route reads or changes."""

    engine: Engine
    guardrails: Guardrails
    stats: Stats
    events: EventLog  # state changes behind /events, and the phase history
    clock: Clock
    instance: str  # host:pid, so a fleet's answers can be told apart
    scenario_dir: Path  # where scenarios are found by name
    exposition: Callable[[], bytes]  # the Prometheus text of /metrics
    request_id: Callable[[], str]  # a fresh id, for answers to requests that sent none
    upstream_ready: Callable[[], Awaitable[bool]]  # can the upstream be reached now?
    upstream_url: str
    access: AdminAccess = AdminAccess()
    # Scenarios sent with PUT /scenarios/{name}: kept in memory, never written to disk.
    uploads: dict[str, Scenario] = field(default_factory=dict)
