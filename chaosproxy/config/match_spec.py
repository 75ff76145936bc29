"""The `match:` grammar of a rule (and of an include's or preset's narrowing `match`), read
from located YAML nodes into a `MatchSpec`: methods, path glob or regex, host, header and query
conditions, user-agent presets, client CIDRs. Every problem is located; nothing raises."""

from __future__ import annotations

import contextlib
import ipaddress
import re

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaosproxy.config.located import Reader, describe, join, suggest
from chaosproxy.config.model import FieldCond, MatchSpec

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
)
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
        return MatchSpec(
            methods=tuple(methods),
            path=glob,
            path_regex=path_regex,
            host=host,
            headers=headers,
            query=query,
            user_agent=ua,
            client_ip=tuple(cidrs),
        )

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
