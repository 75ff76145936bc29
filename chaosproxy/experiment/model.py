"""The experiment model: frozen, typed, built once from the file by `spec.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosproxy.common.errors import Problem
from chaosproxy.config.model import Loc, locate

SHAPES = ("steady", "ramp", "spike", "stages")
METRICS = (
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "throughput",
    "served",
    "retry_amplification",
    "early_retry_share",
    "blast_radius",
)
PROXY_ONLY = ("retry_amplification", "early_retry_share", "blast_radius")
SOURCES = ("client", "proxy", "prometheus")
LATENCY = ("latency_p50", "latency_p95", "latency_p99")
CONTROL_METRICS = ("error_rate", "served", *LATENCY)  # what `compare_to: control` judges
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
GRPC_KINDS = ("unary", "server_stream", "client_stream", "bidi_stream")
MAX_MESSAGES = 10_000  # request messages of one streaming call in `load.requests`
# What the default locustfile sends for `user_agent: mobile | desktop | bot`.
USER_AGENTS = {
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Safari/604.1",
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "bot": "Mozilla/5.0 (compatible; ExampleBot/2.1; +https://bot.invalid/)",
}
DEFAULT_FOR = 3.0
DEFAULT_MIN_SAMPLES = 20
DEFAULT_BASELINE_ERROR_RATE = 0.05
DEFAULT_CONFIDENCE = 0.95  # each side of every interval a check is decided on
DEFAULT_HALT_FALSE_ALARM = 0.01  # chance of a false halt over a whole phase
# `load.locustfile` names of the bundled locustfiles (chaosproxy/experiment/loadgen/), which
# take `load.requests`: HTTP requests, or unary gRPC calls (`path` the full method).
BUNDLED_LOCUSTFILES = {"default": "locustfile.py", "grpc": "grpc_locustfile.py"}


@dataclass(frozen=True)
class RequestSpec:
    """One task of the default locustfile."""

    path: str
    method: str = "GET"
    weight: int = 1
    user_agent: str | None = None  # a preset name (mobile/desktop/bot) or the header text
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    name: str | None = None  # Locust's request name (groups paths in its stats)
    kind: str = "unary"  # a gRPC call's kind (`GRPC_KINDS`): `load.locustfile: grpc` only
    messages: int = 1  # the request messages a client or bidirectional stream sends


@dataclass(frozen=True)
class Stage:
    phase: str
    users: int
    spawn_rate: float | None = None


@dataclass(frozen=True)
class LoadSpec:
    users: int = 10
    spawn_rate: float = 10.0
    shape: str = "steady"
    stages: tuple[Stage, ...] = ()
    base_users: int | None = None  # spike: users outside the phases that have rules
    wait: float = 0.1  # seconds each user waits between requests (default locustfile)
    locustfile: str = "default"  # `grpc`, or a path (resolved against the experiment file)
    requests: tuple[RequestSpec, ...] = (RequestSpec("/"),)
    settle: float = 2.0  # seconds at full warm-up load before the scenario starts
    cooldown: float = 0.0  # seconds of load after the scenario ends


@dataclass(frozen=True)
class PrometheusSpec:
    url: str
    query: str


@dataclass(frozen=True)
class CheckSpec:
    name: str
    metric: str
    source: str = "client"
    during_phase: str | None = None
    after_phase: str | None = None
    compare_to: str | None = None
    comparison: str = "below"  # below | above
    bound: float = 0.0
    within: float | None = None
    for_: float = DEFAULT_FOR
    min_samples: int = DEFAULT_MIN_SAMPLES
    halt: bool = False
    prometheus: PrometheusSpec | None = None
    path: str = ""  # key path in the file (checks[0]), for located errors

    @property
    def phase(self) -> str:
        return self.during_phase or self.after_phase or ""


@dataclass(frozen=True)
class ProxySpec:
    upstream: str
    listen: str | None = None
    args: tuple[str, ...] = ()  # extra `chaosproxy run` flags
    admin: str | None = None  # HOST:PORT of its admin API (default: loopback, a free port)


# The `chaosproxy run` flags the runner passes itself (processes.py), refused in `proxy.args`:
# flag -> what to write instead.
RUNNER_FLAGS = {
    "--upstream": "set proxy.upstream",
    "--listen": "set proxy.listen: HOST:PORT",
    "--admin": "set proxy.admin: HOST:PORT",
    "--admin-token": "off loopback the runner gives the admin API a token of its own",
    "--journal": "the runner writes the journal to journal.jsonl in the results directory",
    "--address-file": "the runner learns the proxy's ports from proxy-address.json",
    "--client-id-header": "the runner names clients by the load generator's X-Chaos-User",
    "--reload-interval": "the runner turns hot reload off",
    "--scenario-dir": "the runner sends the scenario through the admin API",
    "--scenario": "the runner starts the experiment's scenario when the load holds steady",
}
# What a Prometheus check's `metric` is: the value its query returns, nothing computed from it.
PROMETHEUS_METRIC = "value"


@dataclass(frozen=True)
class BaselineSpec:
    phase: str | None = None  # default: the phase before the first one with rules
    error_rate_above: float = DEFAULT_BASELINE_ERROR_RATE


@dataclass(frozen=True)
class Experiment:
    name: str
    scenario: str
    load: LoadSpec
    checks: tuple[CheckSpec, ...]
    description: str = ""
    seed: int | None = None
    proxy: ProxySpec | None = None
    admin: tuple[str, ...] = ()
    target: str | None = None
    baseline: BaselineSpec = BaselineSpec()
    confidence: float = DEFAULT_CONFIDENCE
    halt_false_alarm: float = DEFAULT_HALT_FALSE_ALARM
    source: str = "<input>"
    text: str = ""
    locations: dict[str, Loc] = field(default_factory=dict, compare=False, repr=False)

    def loc(self, path: str) -> Loc:
        return locate(self.locations, path, self.source)

    def problem(self, path: str, message: str) -> Problem:
        loc = self.loc(path)
        return Problem(message, path, loc.file, loc.line, loc.col)

    @property
    def base_dir(self) -> Path:
        return Path(self.source).parent if not self.source.startswith("<") else Path.cwd()


def describe_experiment(exp: Experiment) -> dict[str, Any]:
    """The experiment as it goes into results.json."""
    return {
        "name": exp.name,
        "description": exp.description,
        "file": exp.source,
        "scenario": exp.scenario,
        "target": exp.target,
        "admin": list(exp.admin),
        "load": {
            "users": exp.load.users,
            "spawn_rate": exp.load.spawn_rate,
            "shape": exp.load.shape,
            "locustfile": exp.load.locustfile,
            "wait": exp.load.wait,
        },
    }
