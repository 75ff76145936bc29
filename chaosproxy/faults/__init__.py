"""The fault library: one module per fault, each registering itself by its YAML name."""

from chaosproxy.faults import error  # noqa: F401
from chaosproxy.faults.base import Exchange, Fault, build, register, registry

__all__ = ["Exchange", "Fault", "build", "register", "registry"]
