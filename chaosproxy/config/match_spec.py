"""The `match:` grammar of a rule (and of an include's or preset's narrowing `match`), read
from located YAML nodes into a `MatchSpec`: methods, path glob or regex, host, header and query
conditions, user-agent presets, client CIDRs, a cohort of clients. Every problem is located;
nothing raises.

A scenario has at most one cohort spec (`scenario_cohort`): every rule's `cohort` names the same
share and `by`, so each request of the run is `fault` or `control` whatever phase it falls in
(`engine/compile.py` refuses a second, different spec with a located problem)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaosproxy.common.errors import Problem
from chaosproxy.config.located import Reader, describe, join, suggest
from chaosproxy.config.model import (
    CohortSpec,
    FieldCond,
    GrpcMatch,
    MatchSpec,
    RuleSpec,
    Scenario,
)

MATCH_KEYS = (
    "method",
    "methods",
    "path",
    "path_regex",
    "host",
    "headers",
    "query",
    "user_agent",
    "client_ip",
    "cohort",
    "tcp",
    "grpc",
)
# What a connection of a TCP proxy has: no method, path, host, headers or user agent.
TCP_MATCH_KEYS = ("tcp", "client_ip", "cohort")
_TCP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
COHORT_KEYS = ("share", "by")
GRPC_KEYS = ("service", "method")
COHORT_BY = ("client", "address", "header")
# A header name: an RFC 9110 token.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
COHORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "share": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "the share of clients in the cohort, in (0, 1]",
        },
        "by": {
            "type": "string",
            "pattern": r"^(client|address|header [!#$%&'*+.^_`|~0-9A-Za-z-]+)$",
            "description": "client (--client-id-header, else the address; default), address, "
            "or header NAME",
        },
    },
    "required": ["share"],
    "additionalProperties": False,
    "description": "a share of the clients, the same ones on every proxy and replay; a "
    "scenario has one cohort spec",
}
FIELD_KEYS = ("equals", "regex", "present")
USER_AGENT_PRESETS = ("mobile", "desktop", "bot")
# A bare user_agent value spelt like a preset name: lowercase letters only.
_PLAIN_WORD = re.compile(r"^[a-z]+\Z")
_UA_SYNONYMS = {
    **dict.fromkeys(
        ("tablet", "phone", "smartphone", "android", "ios", "iphone", "ipad", "app"), "mobile"
    ),
    **dict.fromkeys(("crawler", "spider", "robot", "script", "headless"), "bot"),
    **dict.fromkeys(("browser", "pc", "web", "laptop", "windows", "mac", "linux"), "desktop"),
}

_METHOD = re.compile(r"^[A-Za-z]+$")


class MatchReader(Reader):
    """Reads `match:` mappings."""

    def match_fields(self, node: Node, path: str) -> tuple[Node, dict[str, Node]] | None:
        m = self.mapping(node, path, MATCH_KEYS)
        return None if m is None else (node, {k: v for k, v in m.items()})

    def match_spec(self, m: dict[str, Node], path: str) -> MatchSpec:
        methods: list[str] = []
        if "method" in m and "methods" in m:
            self.problem(m["methods"], join(path, "methods"), "use either method or methods")
        for key in ("method", "methods"):
            if key not in m:
                continue
            items = self.seq(m[key], join(path, key), allow_single=True) or []
            for i, item in enumerate(items):
                ipath = join(path, key) if len(items) == 1 else f"{join(path, key)}[{i}]"
                v = self.text(item, ipath)
                if v is not None and not _METHOD.match(v):
                    self.problem(item, ipath, f"{v!r} is not an HTTP method")
                elif v is not None:
                    methods.append(v.upper())
        glob = None
        if "path" in m:
            glob = self.text(m["path"], join(path, "path"))
            if glob is not None and not glob.startswith("/"):
                self.problem(
                    m["path"], join(path, "path"), f"a path glob starts with '/', got {glob!r}"
                )
                glob = None
        path_regex = (
            self.regex(m["path_regex"], join(path, "path_regex")) if "path_regex" in m else None
        )
        host = self.text(m["host"], join(path, "host")) if "host" in m else None
        headers = self.conditions(m["headers"], join(path, "headers")) if "headers" in m else ()
        query = self.conditions(m["query"], join(path, "query")) if "query" in m else ()
        ua = (
            self.user_agent(m["user_agent"], join(path, "user_agent"))
            if "user_agent" in m
            else None
        )
        cidrs: list[str] = []
        if "client_ip" in m:
            items = self.seq(m["client_ip"], join(path, "client_ip"), allow_single=True) or []
            for i, item in enumerate(items):
                ipath = (
                    f"{join(path, 'client_ip')}[{i}]"
                    if isinstance(m["client_ip"], SequenceNode)
                    else join(path, "client_ip")
                )
                v = self.text(item, ipath)
                if v is None:
                    continue
                try:
                    ipaddress.ip_network(v, strict=True)
                except ValueError as e:
                    hint = ""
                    with contextlib.suppress(ValueError):
                        hint = f"; did you mean {ipaddress.ip_network(v, strict=False)}?"
                    self.problem(item, ipath, f"invalid CIDR: {e}{hint}")
                    continue
                cidrs.append(v)
        cohort = self.cohort(m["cohort"], join(path, "cohort")) if "cohort" in m else None
        return MatchSpec(
            methods=tuple(methods),
            path=glob,
            path_regex=path_regex,
            host=host,
            headers=headers,
            query=query,
            user_agent=ua,
            client_ip=tuple(cidrs),
            cohort=cohort,
            tcp=self.tcp_name(m, path) if "tcp" in m else None,
            grpc=self.grpc(m["grpc"], join(path, "grpc")) if "grpc" in m else None,
        )

    def grpc(self, node: Node, path: str) -> GrpcMatch | None:
        """`{service: pkg.Service, method: Get}` (either may be left out, not both)."""
        m = self.mapping(node, path, GRPC_KEYS, what="{service: ..., method: ...}")
        if m is None:
            return None
        if not m:
            self.problem(node, path, "give service, method, or both")
            return None
        parts: dict[str, str | None] = {"service": None, "method": None}
        for key, value in m.items():
            text = self.text(value, join(path, key))
            if text is not None and (not text or "/" in text):
                self.problem(value, join(path, key), f"a gRPC {key} name has no '/', got {text!r}")
                return None
            parts[key] = text
        return GrpcMatch(parts["service"], parts["method"])

    def tcp_name(self, m: dict[str, Node], path: str) -> str | None:
        """`tcp: NAME`: the rule acts on that TCP proxy's connections, which carry none of an
        HTTP request's fields (a key about them is a located problem)."""
        name = self.text(m["tcp"], join(path, "tcp"))
        if name is not None and not _TCP_NAME.match(name):
            self.problem(
                m["tcp"],
                join(path, "tcp"),
                f"a TCP proxy name is 1-64 of A-Za-z0-9_.-, got {name[:80]!r}",
            )
            return None
        for key, node in m.items():
            if key not in TCP_MATCH_KEYS:
                self.problem(
                    node,
                    join(path, key),
                    f"{key} does not apply to a TCP connection (match: {{tcp: ...}} takes "
                    f"{', '.join(k for k in TCP_MATCH_KEYS if k != 'tcp')})",
                )
        return name

    def check_cohorts(self, rules: Iterable[RuleSpec]) -> None:
        """The scenario's rules (wide ones first, then each phase's) have one cohort spec; a
        rule that differs is a problem located at its `cohort` (in whichever file it came)."""
        for p in one_cohort(_cohorts(rules)):
            loc = self.col.locations.get(p.path)
            if loc is None:
                self.col.problems.append(p)
            else:
                self.col.problems.append(Problem(p.message, p.path, loc.file, loc.line, loc.col))

    def cohort(self, node: Node, path: str) -> CohortSpec | None:
        """`{share: 0.25, by: header X-Chaos-User}`: share in (0, 1], `by` defaults to client."""
        m = self.mapping(node, path, COHORT_KEYS, ("share",), what="{share: ..., by: ...}")
        if m is None or "share" not in m:
            return None
        share = self.number(m["share"], join(path, "share"), hi=1.0)
        if share is not None and share <= 0:
            self.problem(m["share"], join(path, "share"), f"must be > 0, got {share:g}")
            share = None
        by = "client"
        if "by" in m:
            bpath = join(path, "by")
            text = self.text(m["by"], bpath)
            if text is None:
                return None
            kind, _, name = text.strip().partition(" ")
            name = name.strip()
            if kind not in COHORT_BY:
                hint = suggest(kind, COHORT_BY)
                self.problem(
                    m["by"],
                    bpath,
                    f"unknown {kind!r}{hint} (by: client, address, or header NAME)",
                )
                return None
            if kind == "header" and not _TOKEN.match(name):
                got = f"got {name[:40]!r}" if name else "no name given"
                self.problem(m["by"], bpath, f"by: header needs a header name, {got}")
                return None
            if kind != "header" and name:
                self.problem(m["by"], bpath, f"by: {kind} takes no name, got {name[:40]!r}")
                return None
            by = f"header {name}" if kind == "header" else kind
        return None if share is None else CohortSpec(share, by)

    def user_agent(self, node: Node, path: str) -> str | None:
        """A preset name, `{regex: ...}`, or a bare regex. A bare lowercase word that is not a
        preset (`tablet`, `mobil`) is taken for a misspelt preset rather than a regex."""
        if isinstance(node, MappingNode):
            m = self.mapping(node, path, ("regex",), ("regex",), what="{regex: ...}")
            if m is None or "regex" not in m:
                return None
            rx = self.regex(m["regex"], join(path, "regex"))
            # A regex spelt like a preset stays a regex: the group keeps it from reading as one.
            return f"(?:{rx})" if rx in USER_AGENT_PRESETS else rx
        if isinstance(node, ScalarNode) and node.value in USER_AGENT_PRESETS:
            return str(node.value)
        if isinstance(node, ScalarNode) and _PLAIN_WORD.match(str(node.value)):
            word = str(node.value)
            hint = suggest(word, USER_AGENT_PRESETS) or (
                f"; did you mean {_UA_SYNONYMS[word]}?" if word in _UA_SYNONYMS else ""
            )
            self.problem(
                node,
                path,
                f"unknown preset {word!r}{hint} (presets: {', '.join(USER_AGENT_PRESETS)}; "
                f'for a regular expression write {{regex: "{word}"}})',
            )
            return None
        return self.regex(node, path)

    def conditions(self, node: Node, path: str) -> tuple[FieldCond, ...]:
        m = self.mapping(node, path, None, what="a mapping of names to conditions")
        if m is None:
            return ()
        out = []
        for name, vnode in m.items():
            fpath = join(path, name)
            if isinstance(vnode, MappingNode):
                c = self.mapping(vnode, fpath, FIELD_KEYS)
                if c is None:
                    continue
                if len(c) != 1:
                    self.problem(vnode, fpath, "needs exactly one of equals, regex or present")
                    continue
                if "equals" in c:
                    v = self.scalar_text(c["equals"], f"{fpath}.equals")
                    if v is not None:
                        out.append(FieldCond(name, equals=v))
                elif "regex" in c:
                    r = self.regex(c["regex"], f"{fpath}.regex")
                    if r is not None:
                        out.append(FieldCond(name, regex=r))
                else:
                    b = self.boolean(c["present"], f"{fpath}.present")
                    if b is not None:
                        out.append(FieldCond(name, present=b))
                continue
            v = self.scalar_text(vnode, fpath)
            if v is not None:
                out.append(FieldCond(name, equals=v))
        return tuple(out)

    def scalar_text(self, node: Node, path: str) -> str | None:
        """An exact value: text or a number (header values are text on the wire)."""
        if isinstance(node, ScalarNode) and node.tag in (
            "tag:yaml.org,2002:str",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            return str(node.value)
        self.problem(node, path, f"expected text (quote it), got {describe(node)}")
        return None


def cohorts(scenario: Scenario) -> list[tuple[CohortSpec, str]]:
    """Every rule's cohort spec with its rule's key path, in file order (wide rules first)."""
    return _cohorts([*scenario.rules, *(r for ph in scenario.phases for r in ph.rules)])


def _cohorts(rules: Iterable[RuleSpec]) -> list[tuple[CohortSpec, str]]:
    return [(r.match.cohort, r.path) for r in rules if r.match.cohort is not None]


def one_cohort(specs: list[tuple[CohortSpec, str]]) -> list[Problem]:
    """A scenario splits its clients once: a rule whose cohort differs from the first one's is a
    problem (phase-varying shares would move clients between fault and control mid-run; they
    are a possible later extension). Problems carry key paths, not yet positions."""
    if not specs:
        return []
    first, where = specs[0]
    return [
        Problem(
            f"a scenario has one cohort spec: {where} has share {first.share:g} by "
            f"{first.by}, this rule share {spec.share:g} by {spec.by} (give every cohort "
            "rule the same share and by)",
            f"{path}.match.cohort",
        )
        for spec, path in specs[1:]
        if spec != first
    ]


def scenario_cohort(scenario: Scenario) -> CohortSpec | None:
    """The scenario's one cohort spec (its first, when a bad file names several), or None."""
    found = cohorts(scenario)
    return found[0][0] if found else None
