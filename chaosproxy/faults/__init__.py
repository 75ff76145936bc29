"""The fault library: one module per fault, each registering itself by its YAML name.

`registry()` finds them: every module of this package but `base` and `params`. The hook
pipeline that plays the hooks faults register lives with its one user, the proxy
(`chaosproxy.proxy.downstream.pipeline`).
"""

from chaosproxy.faults.base import Exchange, Fault, build, register, registry

__all__ = ["Exchange", "Fault", "build", "register", "registry"]
