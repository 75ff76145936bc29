"""Toxiproxy's JSON shapes: a proxy and a toxic as its clients send and read them, checked.

Everything here is pure: a parsed request body goes in, a frozen value or a Toxiproxy-shaped
`ToxiproxyError` comes out. Toxiproxy's rules are kept where a client could notice (defaults,
a toxic's default name `<type>_<stream>` with the stream as written, attribute merging on
update, unknown keys ignored); where Toxiproxy accepts nonsense (a negative latency, a toxicity
of 7, an upstream without a port) this answers 400 instead: docs/toxiproxy.md lists each case.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chaosproxy.toxiproxy.errors import (
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    MISSING_FIELD,
    ToxiproxyError,
    bad_body,
)

STREAMS = ("upstream", "downstream")
MAX_NAME = 256  # a toxic's name, in characters
# A proxy's name is also a TCP proxy's name in chaosproxy (status, metrics labels, journal).
PROXY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_ATTRIBUTE = 2**53 - 1  # whole numbers a JSON reader anywhere keeps exactly
DEFAULT_LISTEN = "127.0.0.1:0"  # Toxiproxy binds every interface; chaosproxy only loopback

# Each toxic type's attributes (all whole numbers, default 0) and their units, as Toxiproxy
# names them. `noop` passes bytes through unchanged.
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),  # ms
    "bandwidth": ("rate",),  # KB/s
    "slow_close": ("delay",),  # ms
    "timeout": ("timeout",),  # ms; 0: never closes
    "reset_peer": ("timeout",),  # ms
    "slicer": ("average_size", "size_variation", "delay"),  # bytes, bytes, µs
    "limit_data": ("bytes",),  # bytes
    "noop": (),
}


@dataclass(frozen=True)
class Toxic:
    """One toxic as the API shows it. `stream` keeps the client's spelling (Toxiproxy echoes
    `UPSTREAM` as sent); `direction` is what it means."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: tuple[tuple[str, int], ...]

    @property
    def direction(self) -> str:
        return self.stream.lower()

    def attribute(self, key: str) -> int:
        return dict(self.attributes)[key]

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": _number(self.toxicity),
        }


@dataclass(frozen=True)
class Address:
    """HOST:PORT as parsed; `text` is how the client wrote it."""

    host: str
    port: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ProxySpec:
    """What a client asks a proxy to be: POST /proxies, one entry of /populate, an update."""

    name: str
    listen: Address
    upstream: Address
    enabled: bool


def _number(value: float) -> float | int:
    """Toxiproxy prints a toxicity of 1 as `1`, not `1.0`."""
    return int(value) if float(value).is_integer() else value


def _object(body: Any, what: str = "a JSON object") -> Mapping[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_body(f"expected {what}, got {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _string(body: Mapping[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_body(f"{key} must be a string, got {_kind(value)}")
    return value


def _name(body: Mapping[str, Any], key: str = "name", default: str = "") -> str:
    name = _string(body, key, default)
    if len(name) > MAX_NAME:
        raise bad_body(f"{key} is longer than {MAX_NAME} characters")
    return name


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(f"{key} must be a whole number, got {_kind(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise bad_body(f"{key} must be a whole number, got {value}")
    whole = int(value)
    if not 0 <= whole <= MAX_ATTRIBUTE:
        raise bad_body(f"{key} must be between 0 and {MAX_ATTRIBUTE}, got {whole}")
    return whole


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body(f"toxicity must be a number, got {_kind(value)}")
    if not 0.0 <= value <= 1.0:
        raise bad_body(f"toxicity must be between 0 and 1, got {value}")
    return float(value)


def _attributes(
    kind: str, raw: Any, current: Mapping[str, int] | None = None
) -> tuple[tuple[str, int], ...]:
    """The type's attributes: given ones checked, the rest from `current` (update) or 0.
    Keys the type does not have are ignored, as Toxiproxy ignores them."""
    given = _object(raw, "attributes to be an object")
    values = dict(current) if current is not None else {}
    for key in TOXIC_ATTRIBUTES[kind]:
        if key in given and given[key] is not None:
            values[key] = _whole(given[key], f"attributes.{key}")
        values.setdefault(key, 0)
    return tuple((key, values[key]) for key in TOXIC_ATTRIBUTES[kind])


def new_toxic(body: Any) -> Toxic:
    """POST /proxies/{proxy}/toxics: defaults downstream, toxicity 1, name `<type>_<stream>`."""
    data = _object(body)
    stream = _string(data, "stream", "downstream")
    kind = _string(data, "type")
    name = _name(data)
    toxicity = _toxicity(data["toxicity"]) if data.get("toxicity") is not None else 1.0
    if stream.lower() not in STREAMS:
        raise INVALID_STREAM
    if kind not in TOXIC_ATTRIBUTES:
        raise INVALID_TOXIC_TYPE
    name = name or f"{kind}_{stream}"
    if len(name) > MAX_NAME:
        raise bad_body(f"name is longer than {MAX_NAME} characters")
    return Toxic(name, kind, stream, toxicity, _attributes(kind, data.get("attributes")))


def updated_toxic(toxic: Toxic, body: Any) -> Toxic:
    """POST/PATCH /proxies/{proxy}/toxics/{toxic}: `attributes` merged into the current ones,
    `toxicity` replaced when given; name, type and stream never change (Toxiproxy ignores
    them here too)."""
    data = _object(body)
    attributes = _attributes(toxic.type, data.get("attributes"), dict(toxic.attributes))
    toxicity = toxic.toxicity
    if data.get("toxicity") is not None:
        toxicity = _toxicity(data["toxicity"])
    return replace(toxic, attributes=attributes, toxicity=toxicity)


def parse_address(text: str, key: str, default_host: str | None = None) -> Address:
    """HOST:PORT, [V6]:PORT or (listen only, `default_host` given) :PORT."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise bad_body(f"{key} must be HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad_body(f"{key} has a bad IPv6 address: {text!r}") from None
    elif ":" in host:
        raise bad_body(f"{key}: an IPv6 address goes in brackets, [ADDR]:PORT, got {text!r}")
    if not host:
        if default_host is None:
            raise bad_body(f"{key} must name a host: HOST:PORT, got {text!r}")
        host = default_host
    if not port_text.isdigit() or int(port_text) > 65535:
        raise bad_body(f"{key} has a bad port: {text!r} (0-65535)")
    port = int(port_text)
    if port == 0 and default_host is None:
        raise bad_body(f"{key} needs a port other than 0: {text!r}")
    return Address(host, port, text)


def _proxy_fields(
    data: Mapping[str, Any], listen: str, upstream: str, enabled: Any, where: str = ""
) -> ProxySpec:
    name = _name(data)
    if not name:
        raise MISSING_FIELD.joined(f"name{where}")
    if not PROXY_NAME.fullmatch(name):
        raise bad_body(f"name {name[:80]!r}: letters, digits, '_', '.' and '-', at most 64")
    upstream = _string(data, "upstream", upstream)
    if not upstream:
        raise MISSING_FIELD.joined(f"upstream{where}")
    listen = _string(data, "listen", listen) or DEFAULT_LISTEN
    enabled = data.get("enabled", enabled)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise bad_body(f"enabled must be true or false, got {_kind(enabled)}")
    return ProxySpec(
        name,
        parse_address(listen, "listen", default_host="0.0.0.0"),
        parse_address(upstream, "upstream"),
        enabled,
    )


def new_proxy(body: Any) -> ProxySpec:
    """POST /proxies: name and upstream required; enabled by default."""
    return _proxy_fields(_object(body), "", "", True)


def updated_proxy(current: ProxySpec, body: Any) -> ProxySpec:
    """POST/PATCH /proxies/{proxy}: fields not given keep their value; the name never
    changes (Toxiproxy ignores a new one)."""
    data = dict(_object(body))
    data["name"] = current.name
    return _proxy_fields(data, str(current.listen), str(current.upstream), current.enabled)


MAX_POPULATE = 256  # proxies one /populate call may name


def populate(body: Any) -> list[ProxySpec]:
    """POST /populate: every entry checked before any proxy is touched, as Toxiproxy does."""
    if not isinstance(body, list):
        raise bad_body(f"expected an array of proxies, got {_kind(body)}")
    if len(body) > MAX_POPULATE:
        raise bad_body(f"at most {MAX_POPULATE} proxies in one call, got {len(body)}")
    specs = []
    for i, entry in enumerate(body, start=1):
        try:
            specs.append(_proxy_fields(_object(entry), "", "", True, f" at proxy {i}"))
        except ToxiproxyError as e:
            if e.status == 400 and e.message.startswith("bad request body"):
                raise bad_body(f"proxy {i}: {e.message.partition(': ')[2]}") from None
            raise
    return specs
