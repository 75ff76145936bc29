"""The TCP faults: one module per fault, each registering itself by its YAML name
(`base.registry()` finds them: every module of this package but `base`)."""

from chaosproxy.faults.tcp.base import TcpFault, build, register, registry

__all__ = ["TcpFault", "build", "register", "registry"]
