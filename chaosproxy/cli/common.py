"""Argument types shared by subcommands: each raises argparse errors with one clear line."""

from __future__ import annotations

import argparse

import yarl

from chaosproxy.config.units import parse_duration, parse_size


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
