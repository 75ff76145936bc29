"""Reading YAML with every value located: the base of the scenario and experiment file formats.

PyYAML's node tree keeps each key's and value's position; `Reader` turns nodes into typed values
and records a `Problem` (`file:line:col: key.path: message`, with a "did you mean" for misspelt
keys) instead of raising, so a file's every mistake is reported at once.

Over 400 lines on purpose: the typed readers are one toolbox both file formats (scenarios and
experiments) subclass; the guard at the end (`_bounded`: alias bombs, nesting, tags, numbers too
long to convert) belongs to `Doc.parse`. Regexes are checked by RE2 (`config/regex.py`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.common.units import parse_duration
from chaosproxy.config.model import Loc
from chaosproxy.config.regex import check as regex_problem

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_TEXT = 1024 * 1024  # characters of YAML in one file
MAX_NODES = 100_000  # nodes the document expands to, aliases followed (a YAML "billion laughs")
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NAME = 128  # characters in a scenario, phase, rule or check name
MAX_REGEX = 1000  # characters in a regular expression
# Characters in a number: Python refuses to convert an integer of more than 4300 digits (a
# ValueError deep inside the YAML constructor), and no setting needs more than a few dozen.
MAX_NUMBER = 100
MAX_SHOWN = 40  # characters of a value quoted back in a problem (the file may not be config)


def problem_order(p: Problem) -> tuple[str, int, int]:
    return (p.file, p.line, p.col)


def suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=2, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(close) + "?"


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def read_file(path: str) -> str:
    """A configuration file's text; ConfigError (naming the file) when it cannot be read."""
    too_large = Problem(f"file too large: more than {MAX_TEXT} characters", file=path)
    try:
        # Only a regular file is read. Opened without blocking, so a FIFO (whose open waits for
        # a writer) is refused at once instead of hanging the reader, a reload worker, forever;
        # a pipe, device or socket could also stream without end.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(Problem("cannot read: not a regular file", file=path))
            if st.st_size > MAX_TEXT * 4:  # UTF-8: at most 4 bytes a character
                raise ConfigError(too_large)
            os.set_blocking(fd, True)
            data = f.read(MAX_TEXT * 4 + 1)  # the file may have grown since
    except OSError as e:
        raise ConfigError(Problem(f"cannot read: {e.strerror or e}", file=path)) from None
    if len(data) > MAX_TEXT * 4:
        raise ConfigError(too_large)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = position(data, e.start)
        message = f"not UTF-8 text: {e.reason} (byte 0x{data[e.start]:02x})"
        raise ConfigError(Problem(message, file=path, line=line, col=col)) from None


def position(text: str | bytes, index: int) -> tuple[int, int]:
    """1-based line and column of `index` in `text`."""
    if isinstance(text, bytes):
        return position(text[:index].decode("latin-1"), index)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


class Collector:
    """Problems and key positions shared by a scenario file and the files it includes."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.locations: dict[str, Loc] = {}


class Doc:
    """One parsed YAML file: its node tree and a constructor for scalar and raw values."""

    def __init__(self, source: str, loader: yaml.SafeLoader, root: Node) -> None:
        self.source = source
        self.loader = loader
        self.root = root
        base = Path(source).parent if not source.startswith("<") else Path.cwd()
        self.base_dir = base

    @classmethod
    def parse(cls, text: str, source: str, col: Collector) -> Doc | None:
        """The node tree, or None with a located problem: invalid YAML, or a document larger
        than the limits (size, expanded nodes, depth) — hostile input is refused before any
        value is built from it."""
        if len(text) > MAX_TEXT:
            col.problems.append(
                Problem(f"file too large: {len(text)} characters, at most {MAX_TEXT}", "", source)
            )
            return None
        loader: yaml.SafeLoader | None = None
        try:
            loader = yaml.SafeLoader(text)
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            msg = " ".join(str(x) for x in (e.context, e.problem) if x)
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            col.problems.append(Problem(f"invalid YAML: {msg}", "", source, line, column))
            return None
        except yaml.reader.ReaderError as e:  # a control character: binary, not YAML text
            line, column = position(text, e.position)
            char = e.character if isinstance(e.character, int) else ord(e.character)
            message = f"not YAML text: control character #x{char:02x} (a binary file?)"
            col.problems.append(Problem(message, "", source, line, column))
            return None
        except yaml.YAMLError as e:
            col.problems.append(Problem(f"invalid YAML: {e}", "", source))
            return None
        except RecursionError:  # the composer recurses per level, far past MAX_DEPTH
            mark = loader.get_mark() if loader is not None else None
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            message = f"nested too deeply: more than {MAX_DEPTH} levels"
            col.problems.append(Problem(message, "", source, line, column))
            return None
        finally:
            if loader is not None:
                loader.dispose()
        if root is None:
            col.problems.append(Problem("empty file: expected a mapping", "", source, 1, 1))
            return None
        too_big = _bounded(root)
        if too_big is not None:
            node, message, key = too_big
            mark = node.start_mark
            col.problems.append(Problem(message, key, source, mark.line + 1, mark.column + 1))
            return None
        return cls(source, loader, root)

    def loc(self, node: Node) -> Loc:
        return Loc(self.source, node.start_mark.line + 1, node.start_mark.column + 1)

    def value(self, node: Node) -> Any:
        """The plain value of `node`; None when it cannot be built (a bad date, a number out
        of range): the typed readers then report it where it stands."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError):
            return None


_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "text",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "nothing (null)",
}


def describe(node: Node, *, quote: bool = True) -> str:
    """What a node is, for a problem: its kind, and its value cut to MAX_SHOWN characters
    (`quote=False`: the kind alone, for a file that may be no configuration at all)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, ScalarNode)
    kind = _TYPE_NAMES.get(node.tag, "a value")
    if node.tag == "tag:yaml.org,2002:null":
        return kind
    if not quote:
        return f"{kind} ({len(node.value)} characters)"
    value = str(node.value)
    shown = repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…")
    return f"{kind} {shown}" if kind != "text" else shown


class Reader:
    """Typed readers over one file's nodes: each records a located problem and returns None
    instead of raising, so a file's every mistake is reported in one pass."""

    def __init__(self, col: Collector, doc: Doc, stack: tuple[str, ...] = ()) -> None:
        self.col = col
        self.doc = doc
        self.stack = (*stack, str(Path(doc.source).resolve()))

    # ---------------- problems and positions

    def problem(self, node: Node, path: str, message: str) -> None:
        loc = self.doc.loc(node)
        self.col.problems.append(Problem(message, path, loc.file, loc.line, loc.col))

    def mark(self, path: str, node: Node) -> None:
        self.col.locations.setdefault(path, self.doc.loc(node))

    def record_tree(self, node: Node, path: str) -> None:
        """Positions of every key under a raw value (fault parameters), for later errors."""
        self.mark(path, node)
        if isinstance(node, MappingNode):
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    self.mark(join(path, str(k.value)), k)
                    self.record_tree(v, join(path, str(k.value)))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.record_tree(item, f"{path}[{i}]")

    # ---------------- shapes

    def mapping(
        self,
        node: Node,
        path: str,
        known: tuple[str, ...] | None,
        required: tuple[str, ...] = (),
        what: str = "a mapping",
    ) -> dict[str, Node] | None:
        """Key → value node; unknown keys (when `known` is given) and duplicates are problems."""
        if not isinstance(node, MappingNode):
            # The whole document not a mapping: likely no configuration at all (a `.env`, a
            # key): say what it is, never what it holds.
            got = describe(node, quote=node is not self.doc.root)
            self.problem(node, path, f"expected {what}, got {got}")
            return None
        own = {id(k) for k, _ in node.value}
        try:
            self.doc.loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as e:
            self.problem(node, path, f"bad merge key: {e}")
            return None
        out: dict[str, Node] = {}
        merged: set[str] = set()  # keys that came from a merge: the mapping's own keys win
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode) or knode.tag == "tag:yaml.org,2002:null":
                self.problem(knode, path, f"keys must be plain names, got {describe(knode)}")
                continue
            key = str(knode.value)
            kpath = join(path, key)
            if key in out and key not in merged:
                self.problem(knode, kpath, "duplicate key")
                continue
            if id(knode) not in own:
                merged.add(key)
            elif key in merged:
                merged.discard(key)
                self.col.locations.pop(kpath, None)
            if known is not None and key not in known:
                hint = suggest(key, known)
                tail = hint or f"; known keys: {', '.join(known)}"
                self.problem(knode, kpath, f"unknown key{tail}")
                continue
            self.mark(kpath, knode)
            out[key] = vnode
        for key in required:
            if key not in out:
                self.problem(node, path or "<top>", f"missing required key {key!r}")
        return out

    def seq(self, node: Node, path: str, *, allow_single: bool = False) -> list[Node] | None:
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.mark(f"{path}[{i}]", item)
            return list(node.value)
        if allow_single and isinstance(node, ScalarNode | MappingNode):
            return [node]
        self.problem(node, path, f"expected a list, got {describe(node)}")
        return None

    def text(self, node: Node, path: str, *, nonempty: bool = True) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.problem(node, path, f"expected text, got {describe(node)}")
            return None
        if nonempty and not node.value.strip():
            self.problem(node, path, "must not be empty")
            return None
        return str(node.value)

    def label(self, node: Node, path: str, limit: int = 200) -> str | None:
        """Free text that names something in every output (a terminal, XML, JSON): printable
        characters only — no control or format characters (escape codes, bidi overrides), no
        lone surrogates — and at most `limit` of them."""
        value = self.text(node, path)
        if value is None:
            return None
        if len(value) > limit:
            self.problem(node, path, f"at most {limit} characters, got {len(value)}")
            return None
        for i, ch in enumerate(value):
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
                self.problem(
                    node,
                    path,
                    f"character {i + 1} is U+{ord(ch):04X}, which is not printable text",
                )
                return None
        return value

    def name(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and len(value) > MAX_NAME:
            self.problem(node, path, f"a name may be at most {MAX_NAME} characters")
            return None
        if value is not None and not NAME.match(value):
            self.problem(
                node, path, f"{value!r} is not a valid name (letters, digits, '.', '_', '-')"
            )
            return None
        return value

    def integer(self, node: Node, path: str, lo: int | None = None) -> int | None:
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(node, path, f"expected an integer, got {describe(node)}")
            return None
        if lo is not None and v < lo:
            self.problem(node, path, f"must be ≥ {lo}, got {v}")
            return None
        return v

    def number(
        self, node: Node, path: str, lo: float | None = None, hi: float | None = None
    ) -> float | None:
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.problem(node, path, f"expected a finite number, got {describe(node)}")
            return None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = f"between {lo:g} and {hi:g}" if lo is not None and hi is not None else ""
            if not bounds:
                bounds = f"≥ {lo:g}" if lo is not None else f"≤ {hi:g}"
            self.problem(node, path, f"must be {bounds}, got {v:g}")
            return None
        return float(v)

    def positive_number(self, node: Node, path: str) -> float | None:
        v = self.number(node, path)
        if v is not None and v <= 0:
            self.problem(node, path, f"must be > 0, got {v:g}")
            return None
        return v

    def boolean(self, node: Node, path: str) -> bool | None:
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        if not isinstance(v, bool):
            self.problem(node, path, f"expected true or false, got {describe(node)}")
            return None
        return v

    def duration(self, node: Node, path: str, *, positive: bool = True) -> float | None:
        v = self.doc.value(node) if isinstance(node, ScalarNode) else None
        raw = node.value if isinstance(node, ScalarNode) else None
        if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
            self.problem(node, path, f"duration must not be negative, got {raw}")
            return None
        if isinstance(v, str) and v.strip().startswith("-"):
            self.problem(node, path, f"duration must not be negative, got {raw}")
            return None
        try:
            seconds = parse_duration(v)
        except ValueError as e:
            message = str(e)
            if "too large" not in message:  # the value's own description reads better
                message = f"expected a duration like 250ms, 1.5s or 2m, got {describe(node)}"
            self.problem(node, path, message)
            return None
        if positive and seconds <= 0:
            self.problem(node, path, f"must be longer than 0, got {raw}")
            return None
        return seconds

    def regex(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        if len(value) > MAX_REGEX:
            self.problem(node, path, f"a regular expression may be at most {MAX_REGEX} characters")
            return None
        why = regex_problem(value)
        if why is not None:
            self.problem(node, path, why)
            return None
        return value


_CORE = "tag:yaml.org,2002:"
# What a configuration file may hold: the implicitly resolved plain values, lists and mappings.
# An explicit tag for anything else (`!!python/object/apply:...`, `!!binary`, `!!set`, a local
# `!tag`) is refused where it stands: nothing would be built from it, and ignoring it would
# silently drop the value it carries.
ALLOWED_TAGS = frozenset(
    _CORE + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp", "value")
)


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


_NUMBERS = frozenset({_CORE + "int", _CORE + "float"})
_PLAIN = "configuration holds plain text, numbers, true/false, lists and mappings"


def _children(node: Node, path: str) -> list[tuple[Node, str]]:
    """A node's children, each with its key path (a key stands at its mapping's path)."""
    if isinstance(node, MappingNode):
        out: list[tuple[Node, str]] = []
        for k, v in node.value:
            name = str(k.value)[:MAX_SHOWN] if isinstance(k, ScalarNode) else "?"
            out += [(k, path), (v, join(path, name))]
        return out
    if isinstance(node, SequenceNode):
        return [(c, f"{path}[{i}]") for i, c in enumerate(node.value)]
    return []


def _bounded(root: Node) -> tuple[Node, str, str] | None:
    """The node where the document outgrows MAX_NODES (aliases counted every time they are
    used) or MAX_DEPTH, carries a tag outside ALLOWED_TAGS or a number over MAX_NUMBER
    characters, with why (and, for a number, its key path); None when it fits. Each distinct
    node is sized once, so a bomb is measured in the time its text takes to read, not the time
    it would take to expand."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[Node, bool, str]] = [(root, False, "")]
    while stack:
        node, done, path = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node, path)
        if not done:
            if key in depths:  # an alias cycle: on the stack already
                return node, "a YAML alias refers to itself", ""
            if node.tag not in ALLOWED_TAGS:
                tag = _tag_name(node.tag)[:100]
                return node, f"YAML tag {tag!r} is not allowed: {_PLAIN}", ""
            if node.tag in _NUMBERS and len(node.value) > MAX_NUMBER:
                message = f"number too long: {len(node.value)} characters, at most {MAX_NUMBER}"
                return node, message, path
            depths[key] = -1
            stack.append((node, True, path))
            stack.extend((c, False, p) for c, p in children if id(c) not in sizes)
            continue
        size = 1 + sum(sizes[id(c)] for c, _ in children)
        depth = 1 + max((depths[id(c)] for c, _ in children), default=0)
        if size > MAX_NODES:
            message = f"too large: aliases expand this document to more than {MAX_NODES} values"
            return node, message, ""
        if depth > MAX_DEPTH:
            return node, f"nested too deeply: more than {MAX_DEPTH} levels", ""
        sizes[key] = size
        depths[key] = depth
    return None
