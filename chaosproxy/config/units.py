"""Moved to `chaosproxy.units` (a leaf module); this name stays for existing imports."""

from chaosproxy.units import parse_duration, parse_rate, parse_size

__all__ = ["parse_duration", "parse_rate", "parse_size"]
