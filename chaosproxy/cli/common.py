"""Argument types shared by subcommands: each raises argparse errors with one clear line."""

from __future__ import annotations

import argparse

import yarl

from chaosproxy.common.units import parse_duration, parse_size


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "0.0.0.0", value
    try:
        p = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return host.strip("[]") or "0.0.0.0", p


def http_url(value: str) -> yarl.URL:
    try:
        url = yarl.URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL with a host, got {value!r}"
        )
    return url


def duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value!r}")
    return n


def size(value: str) -> int:
    """Bytes: `512`, `16KiB`, `100MiB` (binary) or `1MB` (decimal)."""
    try:
        return parse_size(value.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends `(default: …)` to a flag's help unless the help already speaks of its default.

    Flags without a value (on/off switches) show `(default: off)`; a flag whose default is None
    says what none means in its own help.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0:
            return f"{text} (default: off)".strip()
        if action.default is None:
            return text
        value = action.default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{text} (default: {str(value).replace('%', '%%')})".strip()
