"""A toxic becomes an ad-hoc TCP rule of the engine: never a second engine.

Toxiproxy's units become chaosproxy's (milliseconds and microseconds to duration strings,
KB/s to bytes per second), `toxicity` becomes the rule's probability (rolled per connection,
as Toxiproxy rolls it per connection), and the rule carries where it came from
(`{"toxiproxy": "PROXY/TOXIC"}`), so `/status`, the metrics and the journal show it like any
rule. Two toxics need no rule: `noop`, and `bandwidth` at rate 0 (Toxiproxy passes bytes
through unthrottled then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chaosproxy.common.errors import ConfigError
from chaosproxy.engine.adhoc import TooManyRules
from chaosproxy.engine.core import Engine
from chaosproxy.tcp.rules import tcp_rule
from chaosproxy.toxiproxy.errors import ToxiproxyError, bad_body
from chaosproxy.toxiproxy.model import Toxic

Install = Callable[[], list[str]]


def _ms(value: int) -> str:
    return f"{value}ms"


def rule_params(toxic: Toxic) -> tuple[str, dict[str, Any]] | None:
    """The TCP fault and its parameters a toxic means; None when it means nothing."""
    a = dict(toxic.attributes)
    direction = {"direction": toxic.direction}
    match toxic.type:
        case "latency":
            # Toxiproxy takes a jitter over the latency (a delay below 0 is no delay); the TCP
            # fault wants latency ± jitter to stay >= 0, so the jitter is capped there.
            return "latency", {
                "latency": _ms(a["latency"]),
                "jitter": _ms(min(a["jitter"], a["latency"])),
                **direction,
            }
        case "bandwidth":
            if a["rate"] == 0:
                return None
            return "bandwidth", {"rate": a["rate"] * 1000, **direction}  # KB/s, K = 1000
        case "slow_close":
            return "slow_close", {"delay": _ms(a["delay"]), **direction}
        case "timeout":
            return "timeout", {"timeout": _ms(a["timeout"]), **direction}
        case "reset_peer":
            return "reset", {"timeout": _ms(a["timeout"])}
        case "slicer":
            # Toxiproxy asks for a variation under the average size without enforcing it; a
            # slice has at least one byte here, so the variation is capped at average - 1.
            return "slicer", {
                "average_size": a["average_size"],
                "size_variation": min(a["size_variation"], max(a["average_size"] - 1, 0)),
                "delay": f"{a['delay']}us",
                **direction,
            }
        case "limit_data":
            return "limit_data", {"bytes": a["bytes"], **direction}
    return None  # noop


def _problem(e: ConfigError) -> str:
    """A refused parameter in the client's terms: the attribute, not the rule key."""
    return "; ".join(p.message if not p.path else f"{p.path}: {p.message}" for p in e.problems)


class EngineRules:
    """Toxics as the engine's ad-hoc rules (the `Rules` that `state.Proxies` uses)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prepare(self, proxy: str, toxic: Toxic) -> Install:
        """Compile the toxic's rule now (ToxiproxyError 400 when refused); the returned call
        puts it in force and returns its rule ids."""
        meaning = rule_params(toxic)
        if meaning is None:
            return list
        fault, params = meaning
        try:
            rule = tcp_rule(proxy=proxy, fault=fault, params=params, probability=toxic.toxicity)
        except ConfigError as e:
            raise bad_body(f"toxic {toxic.name}: {_problem(e)}") from None
        source = {"toxiproxy": f"{proxy}/{toxic.name}", "toxic": toxic.to_json()}

        def install() -> list[str]:
            try:
                return [self.engine.add_compiled_rule(rule, None, source=source).id]
            except TooManyRules as e:
                raise ToxiproxyError(409, str(e)) from None

        return install

    def remove(self, ids: Sequence[str]) -> None:
        for rule_id in ids:
            self.engine.remove_rule(rule_id)

    def alive(self) -> set[str]:
        """Rule ids in force now: a toxic whose rule went (DELETE /rules on the admin API)
        is gone too."""
        return {r.id for r in self.engine.adhoc_rules()}
