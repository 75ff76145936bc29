"""Request matching: a `MatchSpec` compiled once into a predicate over a request view.

Globs, regexes and CIDRs are compiled when a scenario loads; per request the predicate runs a
flat list of checks, cheapest first (method, path, host, headers, query, user agent, client IP),
and stops at the first that fails.

Semantics, as documented for scenario authors:
- `path` glob: `*` matches within one segment, `**` any depth (`/api/**` also matches `/api`).
- `path_regex`, header/query `regex` and a `user_agent` regex are searched anywhere in the value
  (anchor with `^`/`$` to match the whole value). Matching is on the decoded path. Regexes and
  globs run on RE2 (`config/regex.py`): linear time in the text, whatever the pattern.
- `host` glob is matched case-insensitively on the Host header without its port; `*` is one
  DNS label, `**` any number of labels.
- `user_agent` presets: `mobile` (phones and tablets: Android, iPhone/iPad/iPod, "Mobi", Windows
  Phone, and native app clients okhttp, CFNetwork, Dalvik), `bot` (self-declared crawlers such as
  Googlebot and bingbot, and scripted clients: curl, Wget, python-requests, httpx, aiohttp,
  Go-http-client, headless Chrome) and `desktop` (a Windows, macOS, Linux or ChromeOS browser
  that is neither mobile nor bot; iPadOS in "desktop mode" reports macOS and counts as desktop).
- `client_ip`: CIDRs or single addresses; IPv4-mapped IPv6 peers match IPv4 networks.
- `grpc`: gRPC calls (content type `application/grpc*`) whose path `/pkg.Service/Method` has the
  `service` and `method` globs given (`*`: any run of characters; an absent one matches any).
- `cohort`: the clients whose position (`common/cohort.py`, a hash of the run's seed and the
  client's value) is below `share`. The seed is only known when a run starts, so the spec is
  compiled into a `CohortGate` per run (`cohort_gate`), not into the rule's predicate; a
  request without the value (header absent or empty) is in no cohort.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import parse_qsl

from chaosproxy.common.cohort import CONTROL, FAULT, position
from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.model import CohortSpec, FieldCond, MatchSpec
from chaosproxy.config.regex import Regex


class RequestView(Protocol):
    """What matching may look at: the proxy's exchange satisfies it."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def client_ip(self) -> str: ...


Predicate = Callable[[RequestView], bool]

MOBILE_RE = re.compile(
    r"Mobi|Android|iPhone|iPad|iPod|Windows Phone|BlackBerry|BB10|Opera Mini|IEMobile"
    r"|okhttp/|CFNetwork/|Dalvik/"
)
BOT_RE = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|Googlebot|bingbot|DuckDuckBot"
    r"|curl/|Wget/|python-requests/|python-httpx/|aiohttp/|Go-http-client/|HeadlessChrome",
    re.IGNORECASE,
)
_DESKTOP_OS_RE = re.compile(r"Windows NT|Macintosh|X11|Linux x86_64|CrOS")


def is_mobile(ua: str) -> bool:
    return MOBILE_RE.search(ua) is not None and BOT_RE.search(ua) is None


def is_bot(ua: str) -> bool:
    return BOT_RE.search(ua) is not None


def is_desktop(ua: str) -> bool:
    return (
        _DESKTOP_OS_RE.search(ua) is not None
        and MOBILE_RE.search(ua) is None
        and BOT_RE.search(ua) is None
    )


_PRESET_FNS: dict[str, Callable[[str], bool]] = {
    "mobile": is_mobile,
    "desktop": is_desktop,
    "bot": is_bot,
}


def glob_to_regex(pattern: str, sep: str = "/") -> str:
    """Translate a glob: `*` stays within one `sep`-separated part, `**` crosses parts."""
    s = re.escape(sep)
    one = f"[^{s}]*"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**", i):
            prev_sep = i > 0 and pattern[i - 1] == sep
            i += 2
            if prev_sep and (i == n or pattern[i] == sep):
                # `/**/` or trailing `/**`: zero or more whole parts, including none.
                out.pop()  # the separator before `**`
                out.append(f"(?:{s}.*)?")
            else:
                out.append(".*")
        elif pattern[i] == "*":
            out.append(one)
            i += 1
        elif pattern[i] == "?":
            out.append(f"[^{s}]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def compile_glob(pattern: str, sep: str = "/", ignore_case: bool = False) -> Regex:
    """A glob as a whole-text test (RE2: `/**a**a**b` cannot backtrack on a long path)."""
    return Regex(glob_to_regex(pattern, sep), ignore_case=ignore_case)


def _path_check(pattern: str) -> Predicate:
    """The commonest globs need no regex: a literal path, or a literal prefix and `/**`."""
    if not any(c in pattern for c in "*?[]{}"):
        return lambda v: v.path == pattern
    head, tail = pattern[:-3], pattern[-3:]
    if tail == "/**" and head and not any(c in head for c in "*?[]{}"):
        prefix = head + "/"
        return lambda v: v.path.startswith(prefix) or v.path == head
    glob = compile_glob(pattern)
    return lambda v: glob.fullmatch(v.path)


def compile_match(spec: MatchSpec, path: str = "match") -> Predicate | None:
    """Compile `spec` once; None means "matches every request" (the cheapest predicate)."""
    problems: list[Problem] = []
    checks: list[Predicate] = []

    def regex(pattern: str, key: str) -> Regex | None:
        try:
            return Regex(pattern)
        except ValueError as e:
            problems.append(Problem(f"regex {pattern[:100]!r}: {e}", f"{path}.{key}"))
            return None

    if spec.methods:
        methods = frozenset(m.upper() for m in spec.methods)
        checks.append(lambda v: v.method in methods)
    if spec.path is not None:
        checks.append(_path_check(spec.path))
    if spec.path_regex is not None:
        rx = regex(spec.path_regex, "path_regex")
        if rx is not None:
            prx = rx
            checks.append(lambda v: prx.search(v.path))
    if spec.host is not None:
        hglob = compile_glob(spec.host.lower(), ".", ignore_case=True)
        checks.append(lambda v: hglob.fullmatch(_host_only(v.headers.get("Host", ""))))
    for i, cond in enumerate(spec.headers):
        check = _field_check(cond, f"headers[{i}]", regex)
        if check is not None:
            checks.append(check)
    if spec.query:
        qchecks = [
            c
            for i, cond in enumerate(spec.query)
            if (c := _query_check(cond, f"query[{i}]", regex)) is not None
        ]
        if qchecks:
            checks.append(_all_query(qchecks))
    if spec.user_agent is not None:
        preset = _PRESET_FNS.get(spec.user_agent)
        if preset is not None:
            fn = preset
            checks.append(lambda v: fn(v.headers.get("User-Agent", "")))
        else:
            urx = regex(spec.user_agent, "user_agent")
            if urx is not None:
                ua_rx = urx
                checks.append(lambda v: ua_rx.search(v.headers.get("User-Agent", "")))
    if spec.grpc is not None:
        checks.append(_grpc_check(spec.grpc.service, spec.grpc.method))
    if spec.client_ip:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for i, cidr in enumerate(spec.client_ip):
            try:
                nets.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as e:
                problems.append(Problem(f"invalid CIDR {cidr!r}: {e}", f"{path}.client_ip[{i}]"))
        if nets:
            checks.append(_ip_check(tuple(nets)))

    if problems:
        raise ConfigError(problems)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    chain = tuple(checks)

    def match(view: RequestView) -> bool:
        for check in chain:  # noqa: SIM110  (a plain loop: no generator on the hot path)
            if not check(view):
                return False
        return True

    return match


def _grpc_check(service: str | None, method: str | None) -> Predicate:
    """A gRPC call (content-type application/grpc*) whose path `/pkg.Service/Method` has
    the service and method given (globs: `*` any run of characters)."""
    srx = None if service is None else compile_glob(service, "/")
    mrx = None if method is None else compile_glob(method, "/")

    def check(v: RequestView) -> bool:
        if not v.headers.get("Content-Type", "").lower().startswith("application/grpc"):
            return False
        service, sep, method = v.path[1:].partition("/")
        if not sep or not service or not method or "/" in method:
            return False
        return (srx is None or srx.fullmatch(service)) and (mrx is None or mrx.fullmatch(method))

    return check


def _host_only(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[1:end] if end > 0 else host
    colon = host.rfind(":")
    if colon > 0 and host.count(":") == 1:
        host = host[:colon]
    return host.rstrip(".").lower()


RegexFn = Callable[[str, str], "Regex | None"]


def _value_test(cond: FieldCond, key: str, regex: RegexFn) -> Callable[[str], bool] | None:
    """Test on one present value; None when the condition is only about presence."""
    if cond.equals is not None:
        want = cond.equals
        return lambda value: value == want
    if cond.regex is not None:
        rx = regex(cond.regex, f"{key}.regex")
        return None if rx is None else rx.search
    return None


def _field_check(cond: FieldCond, key: str, regex: RegexFn) -> Predicate | None:
    name = cond.name
    if cond.present is False:
        return lambda v: name not in v.headers
    test = _value_test(cond, key, regex)
    if test is None:
        if cond.equals is None and cond.regex is None:
            return lambda v: name in v.headers
        return None  # invalid regex: already reported
    fn = test

    def check(v: RequestView) -> bool:
        value = v.headers.get(name)
        return value is not None and fn(value)

    return check


QueryCheck = Callable[[dict[str, list[str]]], bool]


def _query_check(cond: FieldCond, key: str, regex: RegexFn) -> QueryCheck | None:
    name = cond.name
    if cond.present is False:
        return lambda q: name not in q
    test = _value_test(cond, key, regex)
    if test is None:
        if cond.equals is None and cond.regex is None:
            return lambda q: name in q
        return None
    fn = test
    return lambda q: any(fn(value) for value in q.get(name, ()))


def _all_query(checks: list[QueryCheck]) -> Predicate:
    chain = tuple(checks)

    def check(v: RequestView) -> bool:
        parsed: dict[str, list[str]] = {}
        for k, value in parse_qsl(v.query_string, keep_blank_values=True):
            parsed.setdefault(k, []).append(value)
        return all(c(parsed) for c in chain)

    return check


def _ip_check(nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> Predicate:
    def check(v: RequestView) -> bool:
        try:
            ip = ipaddress.ip_address(v.client_ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            return any(mapped in n for n in nets) or any(ip in n for n in nets)
        return any(ip in n for n in nets)

    return check


# Client values whose membership a gate remembers (a dict lookup instead of a hash per
# request); values longer than MEMO_VALUE are hashed every time, so memory stays bounded.
MEMO_SIZE = 65_536
MEMO_VALUE = 256


class CohortGate:
    """A run's cohort spec, bound to the run's seed and the proxy's client identity: which
    requests are in the cohort (`member`) and the label each request carries (`label`)."""

    __slots__ = ("_memo", "_value", "seed", "share", "spec")

    def __init__(self, spec: CohortSpec, seed: int, client_header: str | None = None) -> None:
        self.spec = spec
        self.share = spec.share
        self.seed = seed
        self._memo: dict[str, bool] = {}
        header = spec.header
        if spec.by == "address" or (spec.by == "client" and not client_header):
            self._value: Callable[[RequestView], str | None] = _address
        elif header is not None:
            self._value = lambda v: v.headers.get(header)
        else:  # client, with --client-id-header: its value, else the address
            name = client_header or ""
            self._value = lambda v: v.headers.get(name) or v.client_ip

    def member(self, view: RequestView) -> bool:
        value = self._value(view)
        if not value:
            return False  # no header: control traffic
        memo = self._memo
        known = memo.get(value)
        if known is not None:
            return known
        inside = position(self.seed, value) < self.share
        if len(value) <= MEMO_VALUE:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[value] = inside
        return inside

    def label(self, view: RequestView) -> str:
        return FAULT if self.member(view) else CONTROL


def _address(view: RequestView) -> str | None:
    return view.client_ip


def cohort_gate(
    spec: CohortSpec | None, seed: int | None, client_header: str | None
) -> CohortGate | None:
    """The gate of a run (seed None: unseeded, 0), or None when it has no cohort spec."""
    return None if spec is None else CohortGate(spec, seed or 0, client_header)
