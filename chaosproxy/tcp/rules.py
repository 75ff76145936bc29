"""Ad-hoc TCP rules built in code (the Toxiproxy-compatible API, tests): one TCP fault for one
proxy, with a probability rolled per connection, as a rule the engine holds like any other."""

from __future__ import annotations

from typing import Any

from chaosproxy.config.model import FaultSpec, MatchSpec, Outcome, RuleSpec
from chaosproxy.engine.compile import CompiledRule, compile_rule
from chaosproxy.tcp.address import AddressError, check_name


def tcp_rule(
    proxy: str,
    fault: str,
    params: dict[str, Any] | None = None,
    probability: float = 1.0,
    client_ip: tuple[str, ...] = (),
) -> CompiledRule:
    """A rule for `proxy`'s connections with one fault; ConfigError (located at the fault's
    key, `fault.latency.jitter`) when the fault or a parameter is wrong. It is compiled with
    `continue: true`, so every such rule of a proxy applies together (Toxiproxy's toxics)."""
    try:
        check_name(proxy)
    except AddressError as e:
        from chaosproxy.common.errors import ConfigError, Problem

        raise ConfigError(Problem(str(e), "match.tcp")) from None
    spec = RuleSpec(
        id="adhoc",
        path="rule",
        match=MatchSpec(tcp=proxy, client_ip=client_ip),
        probability=probability,
        outcomes=(Outcome(1.0, (FaultSpec(fault, params or {}, "fault"),)),),
        continue_=True,
    )
    return compile_rule(spec)
