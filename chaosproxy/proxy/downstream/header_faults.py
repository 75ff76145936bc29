"""Per-request faults chosen by the request's own headers (opt-in: `--allow-header-faults`).

Envoy's fault-filter header names, so tests written against Envoy work unchanged:
`x-envoy-fault-abort-request` (HTTP status), `x-envoy-fault-abort-request-percentage`,
`x-envoy-fault-delay-request` (milliseconds), `x-envoy-fault-delay-request-percentage`,
`x-envoy-fault-throughput-response` (KiB/s), plus `x-chaos-fault: reset | hang[=MS] |
truncate[=BYTES]` for the failures Envoy cannot produce. A value that does not parse means "no
fault" (untrusted input degrades, never crashes); a percentage header can only lower the
configured cap, and without one the cap applies (as in Envoy). These headers are never forwarded
upstream, whether or not the feature is enabled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from chaosproxy.common.errors import ConfigError
from chaosproxy.faults.base import Exchange, Fault, build

log = logging.getLogger("chaosproxy.proxy")

ABORT = "x-envoy-fault-abort-request"
ABORT_PCT = "x-envoy-fault-abort-request-percentage"
DELAY = "x-envoy-fault-delay-request"
DELAY_PCT = "x-envoy-fault-delay-request-percentage"
THROUGHPUT = "x-envoy-fault-throughput-response"
CHAOS = "x-chaos-fault"
FAULT_HEADERS = frozenset({ABORT, ABORT_PCT, DELAY, DELAY_PCT, THROUGHPUT, CHAOS})
_TRIGGERS = (ABORT, DELAY, THROUGHPUT, CHAOS)
_CACHE_MAX = 256


class HeaderFaults:
    """Turns fault headers into fault objects; built faults are cached by their parameters."""

    def __init__(self, max_percentage: float = 100.0) -> None:
        self.max_percentage = max(0.0, min(100.0, max_percentage))
        self._cache: dict[tuple[str, Any], Fault | None] = {}

    def of_request(self, ex: Exchange) -> tuple[Fault, ...] | None:
        """The faults a request's headers ask for (`ProxyCore`'s per-request hook)."""
        return self.faults(ex.headers, ex.rng)

    def faults(self, headers: Mapping[str, str], rng: random.Random) -> tuple[Fault, ...] | None:
        """The faults these headers ask for, after the percentage rolls; None for none."""
        if not any(h in headers for h in _TRIGGERS):
            return None
        out: list[Fault] = []
        status = _int(headers.get(ABORT))
        if status is not None and 400 <= status <= 599 and self._roll(headers.get(ABORT_PCT), rng):
            self._add(out, "error", ("status", status))
        delay_ms = _int(headers.get(DELAY))
        if delay_ms is not None and delay_ms > 0 and self._roll(headers.get(DELAY_PCT), rng):
            self._add(out, "latency", ("delay", delay_ms / 1000))
        kib = _int(headers.get(THROUGHPUT))
        if kib is not None and kib > 0:
            self._add(out, "throttle", ("rate", kib * 1024))
        chaos = headers.get(CHAOS)
        if chaos is not None:
            self._chaos(out, chaos.strip().lower())
        if not out:
            return None
        out.sort(key=lambda f: f.order)
        return tuple(out)

    def _chaos(self, out: list[Fault], value: str) -> None:
        name, _, arg = value.partition("=")
        name = name.strip()
        n = _int(arg) if arg else None
        if arg and (n is None or n < 0):
            return
        if name == "reset":
            self._add(out, "reset", None)
        elif name == "hang":
            self._add(out, "hang", None if n is None else ("duration", n / 1000))
        elif name == "truncate":
            self._add(out, "truncate", ("bytes", 0 if n is None else n))

    def _roll(self, raw_pct: str | None, rng: random.Random) -> bool:
        pct = self.max_percentage
        if raw_pct is not None:
            asked = _int(raw_pct)
            if asked is None or asked < 0:
                return False
            pct = min(float(asked), pct)
        if pct >= 100.0:
            return True
        return rng.random() * 100.0 < pct

    def _add(self, out: list[Fault], name: str, param: tuple[str, Any] | None) -> None:
        key = (name, param)
        if key in self._cache:
            fault = self._cache[key]
        else:
            try:
                fault = build(name, dict([param]) if param else {}, f"header.{name}")
            except ConfigError as e:
                log.debug("header fault %s ignored: %s", name, e)
                fault = None
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = fault
        if fault is not None:
            out.append(fault)


def _int(raw: str | None) -> int | None:
    if raw is None:
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        return None
    return int(raw)
