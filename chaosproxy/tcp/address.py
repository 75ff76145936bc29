"""The addresses of TCP proxies as written: `HOST:PORT` (`[::1]:5432` for IPv6), and the
`--tcp NAME=LISTEN:UPSTREAM` declaration (`pg=127.0.0.1:6432:127.0.0.1:5432`; a bare port for
LISTEN listens on every address, like `--listen`: `pg=6432:db:5432`)."""

from __future__ import annotations

import re
from typing import NamedTuple

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.%\w]+\]|[^:\[\]\s]+):(\d{1,5})")


class AddressError(ValueError):
    """A name or address that cannot be read; the message says what was expected."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AddressError(
            f"a TCP proxy name is 1-64 letters, digits, '_', '.' or '-', got {name[:80]!r}"
        )
    return name


def _take(text: str, what: str) -> tuple[tuple[str, int], str]:
    m = _HOST_PORT.match(text)
    if m is None:
        raise AddressError(f"{what}: expected HOST:PORT, got {text[:80]!r}")
    host, port = m.group(1), int(m.group(2))
    if port > 65535:
        raise AddressError(f"{what}: port {port} is above 65535")
    return (host.strip("[]"), port), text[m.end() :]


def parse_host_port(text: str, what: str = "address") -> tuple[str, int]:
    """`HOST:PORT` → (host, port); AddressError naming `what` otherwise."""
    addr, rest = _take(text.strip(), what)
    if rest:
        raise AddressError(f"{what}: expected HOST:PORT, got {text[:80]!r}")
    return addr


def parse_spec(text: str) -> tuple[str, tuple[str, int], tuple[str, int]]:
    """`NAME=LISTEN:UPSTREAM` → (name, listen, upstream)."""
    name, eq, rest = text.strip().partition("=")
    if not eq:
        raise AddressError(
            f"expected NAME=LISTEN:UPSTREAM (e.g. pg=127.0.0.1:6432:127.0.0.1:5432), "
            f"got {text[:80]!r}"
        )
    check_name(name.strip())
    port_only = re.match(r"^(\d{1,5}):", rest)
    if port_only and _HOST_PORT.match(rest[port_only.end() :]):
        try:  # `6432:db:5432`: a bare listening port, then HOST:PORT
            upstream = parse_host_port(rest[port_only.end() :], "upstream")
            listen = ("0.0.0.0", int(port_only.group(1)))
            if listen[1] > 65535:
                raise AddressError(f"listen: port {listen[1]} is above 65535")
            return name.strip(), listen, upstream
        except AddressError:
            pass
    try:
        listen, tail = _take(rest, "listen")
        if not tail.startswith(":"):
            raise AddressError("no upstream")
        return name.strip(), listen, parse_host_port(tail[1:], "upstream")
    except AddressError as e:
        if "above 65535" in str(e):
            raise
        raise AddressError(
            f"expected NAME=LISTEN:UPSTREAM, each HOST:PORT (e.g. "
            f"pg=127.0.0.1:6432:127.0.0.1:5432), got {text.strip()[:80]!r}"
        ) from None


def shown(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TcpSpec(NamedTuple):
    """One `--tcp` declaration."""

    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]


def tcp_specs(value: str) -> tuple[TcpSpec, ...]:
    """`--tcp` (repeatable) and CHAOSPROXY_TCP (comma-separated): `NAME=LISTEN:UPSTREAM`, one
    or several separated by commas; ValueError (AddressError) on a bad one or a repeated name."""
    out: list[TcpSpec] = []
    for part in value.split(","):
        if part.strip():
            out.append(TcpSpec(*parse_spec(part)))
    if not out:
        raise AddressError("expected NAME=LISTEN:UPSTREAM (e.g. pg=127.0.0.1:6432:127.0.0.1:5432)")
    return tuple(out)
