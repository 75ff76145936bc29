"""Rule regular expressions on RE2: matching takes time linear in the text, whatever the pattern.

Every regex a rule carries (`path_regex`, header and query `regex`, `user_agent` regexes) and
every glob (`path`, `host`) is matched on the proxy loop for each request. Python's `re`
backtracks: `(a|aa)+$` against 45 `a`s and a `!` runs for minutes and stalls every connection.
RE2 (`google-re2`) compiles to automata instead, so no pattern can do that; the price is the
constructs that need backtracking: backreferences (`\\1`, `(?P=name)`), lookaround
(`(?=`, `(?!`, `(?<=`, `(?<!`), atomic groups, possessive quantifiers and conditionals. Those are
refused with a message that says so (`check`), where the pattern stands in its file.

`\\Z` (Python's "end of text") is RE2's `\\z` and is rewritten; the rest of the syntax a rule
author writes for `re` means the same (differences: `\\d`, `\\w` are ASCII-only, and `$` does
not also match before a final newline).
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

# Memory one compiled regex may use (RE2's `max_mem`: the program and its DFA cache, after
# which RE2 falls back to a slower, still linear, automaton). A pattern whose program does not
# fit is refused as too complex. Rule regexes are at most 1000 characters (`located.MAX_REGEX`).
MAX_MEM = 1 << 20


def _options(ignore_case: bool) -> Any:
    opts = re2.Options()
    opts.log_errors = False  # a refused pattern is a located problem, not a line on stderr
    opts.max_mem = MAX_MEM
    if ignore_case:
        opts.case_sensitive = False
    return opts


def translate(pattern: str) -> str:
    """`pattern` with Python's `\\Z` written as RE2's `\\z` (an escaped backslash stays)."""
    if "\\Z" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            out.append("\\z" if nxt == "Z" else c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


_GROUPS = (
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?P=", "a named backreference"),
    ("(?>", "an atomic group"),
    ("(?(", "a conditional group"),
)
_WHY = "rule regexes run on RE2, which matches in linear time and never backtracks"


def _backtracking_construct(pattern: str) -> str | None:
    """The first construct of `pattern` that only a backtracking engine has, described."""
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not in_class and nxt.isdigit() and nxt != "0":
                return f"a backreference (\\{nxt}) is not supported: {_WHY}"
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # `[]…]`: the `]` is a member
                i += 1
        elif c == "(":
            for token, what in _GROUPS:
                if pattern.startswith(token, i):
                    return f"{what} ({token}…) is not supported: {_WHY}"
        elif c in "*+?}" and pattern[i + 1 : i + 2] == "+":
            return f"possessive quantifiers ({c}+) are not supported: {_WHY} (drop the +)"
        i += 1
    return None


def _explain(pattern: str, error: str) -> str:
    """RE2's parse error in words a rule author acts on."""
    construct = _backtracking_construct(pattern)
    if construct is not None:
        return construct
    if "pattern too large" in error:
        return "too complex: its compiled form exceeds the 1 MiB each rule regex may use"
    return f"invalid regular expression (RE2 syntax): {error}"


try:  # the binding's low-level RE2 object (see `Regex`); absent in some future binding
    _ANCHOR: Any = re2._re2.RE2.Anchor
except AttributeError:  # pragma: no cover - the public API below still answers
    _ANCHOR = None


class Regex:
    """A compiled RE2 pattern, used as a yes/no test on a request's text."""

    __slots__ = ("_low", "_rx", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        self.pattern = pattern
        try:
            self._rx = re2.compile(translate(pattern), _options(ignore_case))
        except re2.error as e:
            raw = e.args[0] if e.args else e
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise ValueError(_explain(pattern, text)) from None
        # The binding's own `search` builds a match object per call (~3 µs); a yes/no answer
        # needs only the low-level RE2 call (~0.4 µs), when this version of the binding has it.
        low = getattr(self._rx, "_regexp", None)
        self._low = low if _ANCHOR is not None and hasattr(low, "Match") else None

    def _test(self, text: str, whole: bool) -> bool:
        low = self._low
        if low is not None:
            data = text.encode("utf-8", "surrogatepass")
            anchor = _ANCHOR.ANCHOR_BOTH if whole else _ANCHOR.UNANCHORED
            return bool(low.Match(anchor, data, 0, len(data))[0][0] != -1)
        safe = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
        return (self._rx.fullmatch(safe) if whole else self._rx.search(safe)) is not None

    def search(self, text: str) -> bool:
        """Found anywhere in `text`."""
        return self._test(text, False)

    def fullmatch(self, text: str) -> bool:
        """`text` matches as a whole."""
        return self._test(text, True)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def check(pattern: str) -> str | None:
    """Why `pattern` cannot be a rule regex, or None when it can."""
    try:
        Regex(pattern)
    except ValueError as e:
        return str(e)
    return None
