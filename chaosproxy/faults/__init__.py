"""The fault library: one module per fault, each registering itself by its YAML name."""

from chaosproxy.faults import (  # noqa: F401
    error,
    hang,
    latency,
    malformed,
    pool_exhaustion,
    rate_limit,
    reset,
    stale_error,
    throttle,
    truncate,
    upstream_down,
)
from chaosproxy.faults.base import Exchange, Fault, build, register, registry

__all__ = ["Exchange", "Fault", "build", "register", "registry"]
