"""chaosproxy: a fault-injection HTTP proxy driven by named YAML scenarios."""

from chaosproxy import native

__version__ = "0.1.0"

native.install()  # the compiled per-request path when it was built from these sources
