"""Reading PromQL without evaluating it: how far a query reaches back (`lag_seconds`) and which
instant selectors it reads (`instant_selectors`), for the staleness and lag rules of
`prom_series.py`.

**lag**: how far the query reaches back before the second it is evaluated at — its largest
range selector (`rate(x[5s])` → 5 s; a subquery's range plus what its operand reaches back,
`max_over_time(rate(x[5s])[30s:1s])` → 35 s). Best effort by design: a lexical scan (string
literals and comments blanked), not a parser; a missed selector is only not checked.
"""

from __future__ import annotations

import math
import re

LAG_CAP = 10 * 365 * 86400.0  # seconds: a longer range is as good as "everything lags"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS["y"] = 365 * 86400.0
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.]*")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
# Words that are PromQL syntax, not metric names.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    "and", "or", "unless", "bool", "atan2", "offset", "start", "end", "inf", "nan",
}  # fmt: skip


def parse_duration(text: str) -> float | None:
    """A PromQL duration (`5s`, `1m30s`, `250ms`) or a number of seconds, in seconds; None
    when it is neither (or absurdly long)."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        value = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    else:
        try:
            value = float(text)
        except ValueError:
            return None
    return value if math.isfinite(value) and 0 <= value <= LAG_CAP else None


def lag_seconds(query: str) -> float:
    """How far `query` reaches back before the time it is evaluated at: its largest range
    selector, a subquery counting its range plus its operand's (`rate(x[5s])` → 5,
    `max_over_time(x[30s:1s])` → 30, `x` → 0). `offset` and `@` are not counted."""
    text = _blank(query)
    reach: dict[int, float] = {}  # bracket position → seconds
    for m in _BRACKET.finditer(text):
        rng, colon, _ = m.group(1).partition(":")
        d = parse_duration(rng)
        if d is None:
            continue
        inner = 0.0
        j = _skip_space_back(text, m.start() - 1)
        if colon and j >= 0 and text[j] == ")":
            opened = _match_back(text, j)
            inner = max((r for p, r in reach.items() if opened < p < j), default=0.0)
        reach[m.start()] = min(d + inner, LAG_CAP)
    return max(reach.values(), default=0.0)


def instant_selectors(query: str) -> list[str]:
    """The query's instant vector selectors, as written (`x`, `x{a="b"}`, `{__name__="x"}`,
    and the operand of a subquery), without range selectors (`x[5s]`) and without selectors
    carrying `offset` or `@` (their samples are old on purpose). Best effort: a missed selector
    is not checked for staleness; a wrongly read one matches nothing and changes nothing."""
    text = _blank(query)
    n = len(text)
    out: list[str] = []
    i = 0
    while i < n:
        c = text[i]
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            i = m.end() if m else i + 1
        elif c.isascii() and (c.isalpha() or c in "_:"):
            m = _IDENT.match(text, i)
            assert m is not None
            word, j = m.group(), m.end()
            k = _skip_space(text, j)
            nxt = text[k] if k < n else ""
            if word.lower() in _LABEL_LISTS and nxt == "(":
                i = _match_forward(text, k) + 1
            elif word.lower() in _KEYWORDS or nxt == "(":
                i = j
            else:
                stop = _match_forward(text, k) + 1 if nxt == "{" else j
                i = _take_selector(query, text, i, stop, out)
        elif c == "{":
            i = _take_selector(query, text, i, _match_forward(text, i) + 1, out)
        elif c == "[":  # a subquery's range after a parenthesis: durations, not names
            close = text.find("]", i)
            i = n if close < 0 else close + 1
        else:
            i += 1
    return list(dict.fromkeys(out))


def _take_selector(query: str, text: str, begin: int, stop: int, out: list[str]) -> int:
    """Record query[begin:stop] unless a range or a modifier follows; where to scan on."""
    k = _skip_space(text, stop)
    resume = stop
    if k < len(text) and text[k] == "[":
        close = text.find("]", k)
        close = len(text) - 1 if close < 0 else close
        resume = close + 1
        if ":" not in text[k:close]:
            return resume  # a range selector: its window excludes old samples
        k = _skip_space(text, resume)
    if text.startswith("@", k) or re.match(r"offset\b", text[k : k + 7], re.IGNORECASE):
        return resume
    out.append(query[begin:stop].strip())
    return resume


def _blank(query: str) -> str:
    """`query` with string literals' contents and comments turned to spaces (same length),
    so brackets and braces inside them are not read as syntax."""
    chars = list(query)
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in "\"'`":
            j = i + 1
            while j < n and query[j] != c:
                j += 2 if c != "`" and query[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                chars[k] = " "
            i = j + 1
        elif c == "#":
            j = query.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                chars[k] = " "
            i = j
        else:
            i += 1
    return "".join(chars)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _skip_space_back(text: str, i: int) -> int:
    while i >= 0 and text[i].isspace():
        i -= 1
    return i


def _match_forward(text: str, i: int) -> int:
    """The index of the bracket closing the one at `i` (the last index when unbalanced)."""
    close = {"(": ")", "{": "}", "[": "]"}[text[i]]
    depth = 0
    for j in range(i, len(text)):
        if text[j] == text[i]:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def _match_back(text: str, i: int) -> int:
    """The index of the `(` opening the `)` at `i` (-1 when unbalanced)."""
    depth = 0
    for j in range(i, -1, -1):
        if text[j] == ")":
            depth += 1
        elif text[j] == "(":
            depth -= 1
            if depth == 0:
                return j
    return -1
