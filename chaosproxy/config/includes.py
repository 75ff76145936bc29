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

from chaosproxy.config.keys import INCLUDE_REF, PRESET_REF, Table
from chaosproxy.config.located import Doc, join, suggest
from chaosproxy.config.match_spec import MatchReader
from chaosproxy.config.model import MatchSpec, RuleSpec

_MAX_INCLUDE_DEPTH = 8


def bundled_preset_dir() -> Path:
    """The network profiles `presets: [NAME]` refers to."""
    return Path(__file__).resolve().parent.parent / "data" / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in bundled_preset_dir().glob("*.yaml"))


class RuleSetReader(MatchReader):
    """Reads the `include` and `presets` of a rule block wherever one may stand: a scenario, a
    phase, or a rule-set file. The grammar of one rule list is the subclass's `rules`, that of
    a rule-set file its `ruleset`."""

    def rules(self, node: Node, path: str) -> list[RuleSpec]:
        raise NotImplementedError

    def ruleset(self, node: Node, path: str) -> list[RuleSpec]:
        """The rules of a rule-set file's root mapping (`keys.RULESET`)."""
        raise NotImplementedError

    def references(
        self, node: Node, path: str, table: Table
    ) -> Iterator[tuple[str, Node, str, tuple[Node, dict[str, Node]] | None]]:
        """The entries of an `include` or `presets` list: each a bare value or its long form,
        `table` (`{file: ..., match: {...}}`; the first key names the file or preset). Yields
        (key path, value node, value, match fields) for every well-formed entry; the broken ones
        are reported at the entry's path."""
        key = table.keys[0].name
        items = self.seq(node, path, allow_single=True)
        for i, item in enumerate(items or []):
            ipath = f"{path}[{i}]" if isinstance(node, SequenceNode) else path
            value_node, extra = item, None
            if isinstance(item, MappingNode):
                m = self.mapping(item, ipath, table.names, required=table.required)
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
        for ipath, file_node, rel, extra in self.references(node, path, INCLUDE_REF):
            target = Path(rel) if Path(rel).is_absolute() else self.doc.base_dir / rel
            shown = os.path.normpath(target) if not Path(rel).is_absolute() else rel
            rules = self.ruleset_file(Path(shown), file_node, ipath, f"included file {rel!r}")
            out += self.narrow(rules, extra)
        return out

    def presets(self, node: Node, path: str) -> list[RuleSpec]:
        out: list[RuleSpec] = []
        known = preset_names()
        for ipath, name_node, name, extra in self.references(node, path, PRESET_REF):
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
        return type(self)(self.col, doc, self.stack).ruleset(doc.root, path)

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
