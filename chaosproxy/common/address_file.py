"""`run --address-file FILE`: where each listener is bound, written once they all are.

A listener asked for port 0 gets a port the kernel picks; whoever started the proxy learns it
here instead of choosing a "free" port beforehand and racing every other program for it
between the check and the bind (Envoy's admin `address_path` serves the same purpose). The
file is one JSON object, written whole (a temporary file renamed over it, so a reader never
sees half of it) and removed when the proxy stops, so a file left behind names no live proxy:

    {"pid": 4242, "listen": "127.0.0.1:40113", "admin": "127.0.0.1:39001",
     "toxiproxy_api": null, "tcp": {"cache": "127.0.0.1:41877"}}
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Addresses:
    """Bound HOST:PORT of each listener of one proxy (a host as the listener was given it)."""

    listen: str
    admin: str
    toxiproxy_api: str | None = None
    tcp: dict[str, str] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "listen": self.listen,
            "admin": self.admin,
            "toxiproxy_api": self.toxiproxy_api,
            "tcp": dict(self.tcp),
        }


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write(path: str, addresses: Addresses) -> None:
    """Write the file whole: a reader sees no file or the complete one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(addresses.to_json(), f)
        f.write("\n")
    os.replace(tmp, path)


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def read(path: str) -> Addresses | None:
    """The addresses, or None while the file is not there yet (or is not one of ours)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    listen, admin = data.get("listen"), data.get("admin")
    if not isinstance(listen, str) or not isinstance(admin, str):
        return None
    tox = data.get("toxiproxy_api")
    tcp = data.get("tcp")
    pid = data.get("pid")
    return Addresses(
        listen=listen,
        admin=admin,
        toxiproxy_api=tox if isinstance(tox, str) else None,
        tcp={str(k): str(v) for k, v in tcp.items()} if isinstance(tcp, dict) else {},
        pid=pid if isinstance(pid, int) else 0,
    )


def split(address: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[V6]:PORT`) as written above, back into host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
