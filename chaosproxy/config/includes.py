"""Rule sets from other files: `include` (a rule-set file, relative to the including one) and
`presets` (the bundled network profiles), each optionally narrowed by its own `match`.

Key paths continue under the reference (`include[0].rules[1]`) while positions point into the
file the rule came from; cycles and nesting deeper than 8 are reported, not followed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from yaml.nodes import MappingNode, Node, SequenceNode

from chaosproxy.config.located import Doc, join, suggest
from chaosproxy.config.match_spec import MatchReader
from chaosproxy.config.model import MatchSpec, RuleSpec

RULESET_KEYS = ("name", "description", "rules", "include", "presets")
INCLUDE_KEYS = ("file", "match")
PRESET_REF_KEYS = ("preset", "match")
_MAX_INCLUDE_DEPTH = 8


def bundled_preset_dir() -> Path:
    """The network profiles `presets: [NAME]` refers to."""
    return Path(__file__).resolve().parent.parent / "data" / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in bundled_preset_dir().glob("*.yaml"))


class RuleSetReader(MatchReader):
    """Reads a rule block (`rules`, `include`, `presets`) wherever one may stand: a scenario,
    a phase, or a rule-set file. The grammar of one rule list is the subclass's `rules`."""

    def rules(self, node: Node, path: str) -> list[RuleSpec]:
        raise NotImplementedError

    def rule_block(self, m: dict[str, Node], path: str) -> list[RuleSpec]:
        """`rules`, then the rules of each `include`, then those of each preset."""
        rules: list[RuleSpec] = []
        if "rules" in m:
            rules += self.rules(m["rules"], join(path, "rules"))
        if "include" in m:
            rules += self.includes(m["include"], join(path, "include"))
        if "presets" in m:
            rules += self.presets(m["presets"], join(path, "presets"))
        return rules

    def references(
        self, node: Node, path: str, keys: tuple[str, ...], key: str
    ) -> Iterator[tuple[str, Node, str, tuple[Node, dict[str, Node]] | None]]:
        """The entries of an `include` or `presets` list: each a bare value or
        `{<key>: value, match: {...}}`. Yields (key path, value node, value, match fields) for
        every well-formed entry; the broken ones are reported."""
        items = self.seq(node, path, allow_single=True)
        for i, item in enumerate(items or []):
            ipath = f"{path}[{i}]" if isinstance(node, SequenceNode) else path
            value_node, extra = item, None
            if isinstance(item, MappingNode):
                m = self.mapping(item, ipath, keys, required=(key,))
                if m is None or key not in m:
                    continue
                value_node = m[key]
                if "match" in m:
                    extra = self.match_fields(m["match"], join(ipath, "match"))
            value = self.text(value_node, ipath)
            if value is not None:
                yield ipath, value_node, value, extra

    def includes(self, node: Node, path: str) -> list[RuleSpec]:
        out: list[RuleSpec] = []
        for ipath, file_node, rel, extra in self.references(node, path, INCLUDE_KEYS, "file"):
            target = Path(rel) if Path(rel).is_absolute() else self.doc.base_dir / rel
            shown = os.path.normpath(target) if not Path(rel).is_absolute() else rel
            rules = self.ruleset_file(Path(shown), file_node, ipath, f"included file {rel!r}")
            out += self.narrow(rules, extra)
        return out

    def presets(self, node: Node, path: str) -> list[RuleSpec]:
        out: list[RuleSpec] = []
        known = preset_names()
        for ipath, name_node, name, extra in self.references(node, path, PRESET_REF_KEYS, "preset"):
            if name not in known:
                hint = suggest(name, known)
                self.problem(
                    name_node,
                    ipath,
                    f"unknown preset {name!r}{hint}; available: {', '.join(known) or 'none'}",
                )
                continue
            file = bundled_preset_dir() / f"{name}.yaml"
            rules = self.ruleset_file(file, name_node, ipath, f"preset {name!r}")
            out += self.narrow(rules, extra)
        return out

    def ruleset_file(self, file: Path, at: Node, path: str, what: str) -> list[RuleSpec]:
        """Rules of an included rule-set file; key paths continue under `path` (e.g.
        `include[0].rules[1]`) while positions point into that file."""
        if str(file.resolve()) in self.stack:
            self.problem(at, path, f"{what} includes itself (cycle)")
            return []
        if len(self.stack) > _MAX_INCLUDE_DEPTH:
            self.problem(at, path, f"{what}: includes nested too deeply")
            return []
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            self.problem(at, path, f"cannot read {what}: {reason or e}")
            return []
        doc = Doc.parse(text, str(file), self.col)
        if doc is None:
            return []
        sub = type(self)(self.col, doc, self.stack)
        m = sub.mapping(doc.root, path, RULESET_KEYS, what="a rule set mapping (rules: [...])")
        if m is None:
            return []
        if "name" in m:
            sub.text(m["name"], join(path, "name"))
        if "description" in m:
            sub.text(m["description"], join(path, "description"), nonempty=False)
        return sub.rule_block(m, path)

    def narrow(
        self, rules: list[RuleSpec], extra: tuple[Node, dict[str, Node]] | None
    ) -> list[RuleSpec]:
        """An include's or preset's own `match`: each condition it names replaces the same
        condition of every rule it brings in; the rules' other conditions stay."""
        if extra is None:
            return rules
        _node, fields = extra
        spec = self.match_spec(fields, "")
        overrides = {
            f.name: getattr(spec, f.name)
            for f in dataclasses.fields(MatchSpec)
            if getattr(spec, f.name) != getattr(MatchSpec(), f.name)
        }
        return [
            dataclasses.replace(r, match=dataclasses.replace(r.match, **overrides)) for r in rules
        ]
