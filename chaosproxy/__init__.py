"""chaosproxy: a fault-injection HTTP proxy driven by named YAML scenarios."""

__version__ = "0.1.0"
