"""The fault library: one module per fault, each registering itself by its YAML name.

`registry()` finds them: every module of this package but `base`, `params` and `pipeline`.
"""

from chaosproxy.faults.base import Exchange, Fault, build, register, registry

__all__ = ["Exchange", "Fault", "build", "register", "registry"]
