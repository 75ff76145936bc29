"""Matching: each matcher, the user-agent presets and CIDRs, over a plain request view."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDict

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.model import FieldCond, MatchSpec
from chaosproxy.engine.matching import compile_match, is_bot, is_desktop, is_mobile

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
OKHTTP = "okhttp/4.12.0"
IOS_APP = "MyApp/3.1 CFNetwork/1494.0.7 Darwin/23.4.0"
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT_MOBILE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
CURL = "curl/8.5.0"


@dataclass
class View:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    client_ip: str = "127.0.0.1"


def ua(agent: str) -> View:
    return View(headers=CIMultiDict({"User-Agent": agent}))


def matches(spec: MatchSpec, view: View) -> bool:
    pred = compile_match(spec)
    return pred is None or pred(view)


def test_empty_spec_compiles_to_no_predicate() -> None:
    assert compile_match(MatchSpec()) is None


def test_methods_match_any_listed() -> None:
    spec = MatchSpec(methods=("POST", "PUT"))
    assert matches(spec, View(method="PUT"))
    assert not matches(spec, View(method="GET"))


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("/api/*", "/api/items", True),
        ("/api/*", "/api/items/3", False),
        ("/api/*/detail", "/api/7/detail", True),
        ("/api/**", "/api", True),
        ("/api/**", "/api/items/3/parts", True),
        ("/api/**", "/apix/items", False),
        ("/api/**/edit", "/api/a/b/edit", True),
        ("/api/**/edit", "/api/edit", True),
        ("/static/*.css", "/static/site.css", True),
        ("/static/*.css", "/static/site.js", False),
        ("/health", "/health/deep", False),
        ("**", "/anything/at/all", True),
    ],
)
def test_path_glob(glob: str, path: str, expected: bool) -> None:
    assert matches(MatchSpec(path=glob), View(path=path)) is expected


def test_path_glob_matches_decoded_path_literally() -> None:
    assert matches(MatchSpec(path="/files/a b+(1).txt"), View(path="/files/a b+(1).txt"))


def test_path_regex_is_searched() -> None:
    spec = MatchSpec(path_regex=r"/items/\d+$")
    assert matches(spec, View(path="/api/items/42"))
    assert not matches(spec, View(path="/api/items/new"))


def test_host_glob_ignores_port_and_case() -> None:
    spec = MatchSpec(host="*.example.com")
    assert matches(spec, View(headers=CIMultiDict({"Host": "API.Example.com:8443"})))
    assert not matches(spec, View(headers=CIMultiDict({"Host": "a.b.example.com"})))
    assert not matches(spec, View(headers=CIMultiDict({"Host": "example.org"})))


def test_header_exact_value() -> None:
    spec = MatchSpec(headers=(FieldCond("X-Tenant", equals="blue"),))
    assert matches(spec, View(headers=CIMultiDict({"x-tenant": "blue"})))
    assert not matches(spec, View(headers=CIMultiDict({"X-Tenant": "green"})))
    assert not matches(spec, View())


def test_header_regex() -> None:
    spec = MatchSpec(headers=(FieldCond("Accept", regex=r"json"),))
    assert matches(spec, View(headers=CIMultiDict({"Accept": "application/json"})))
    assert not matches(spec, View(headers=CIMultiDict({"Accept": "text/html"})))


def test_header_present_and_absent() -> None:
    present = MatchSpec(headers=(FieldCond("Authorization", present=True),))
    absent = MatchSpec(headers=(FieldCond("Authorization", present=False),))
    authed = View(headers=CIMultiDict({"Authorization": "Bearer x"}))
    assert matches(present, authed) and not matches(present, View())
    assert matches(absent, View()) and not matches(absent, authed)


def test_query_conditions() -> None:
    spec = MatchSpec(
        query=(
            FieldCond("page", regex=r"^\d+$"),
            FieldCond("debug", present=False),
            FieldCond("tag", equals="b"),
        )
    )
    assert matches(spec, View(query_string="page=2&tag=a&tag=b"))
    assert not matches(spec, View(query_string="page=2&tag=b&debug"))
    assert not matches(spec, View(query_string="page=x&tag=b"))
    assert not matches(spec, View(query_string="tag=b"))


def test_query_values_are_decoded() -> None:
    spec = MatchSpec(query=(FieldCond("q", equals="a b"),))
    assert matches(spec, View(query_string="q=a%20b"))


@pytest.mark.parametrize("agent", [IPHONE, ANDROID, IPAD, OKHTTP, IOS_APP])
def test_mobile_preset_matches_phones_tablets_and_app_clients(agent: str) -> None:
    assert is_mobile(agent)
    assert matches(MatchSpec(user_agent="mobile"), ua(agent))
    assert not matches(MatchSpec(user_agent="desktop"), ua(agent))


@pytest.mark.parametrize("agent", [WINDOWS_CHROME, MAC_SAFARI, LINUX_FIREFOX])
def test_desktop_preset_matches_desktop_browsers_only(agent: str) -> None:
    assert is_desktop(agent)
    assert not is_mobile(agent) and not is_bot(agent)
    assert matches(MatchSpec(user_agent="desktop"), ua(agent))


@pytest.mark.parametrize("agent", [GOOGLEBOT_MOBILE, BINGBOT, CURL])
def test_bot_preset_matches_crawlers_and_scripts_never_mobile(agent: str) -> None:
    assert matches(MatchSpec(user_agent="bot"), ua(agent))
    assert not matches(MatchSpec(user_agent="mobile"), ua(agent))
    assert not matches(MatchSpec(user_agent="desktop"), ua(agent))


def test_missing_user_agent_matches_no_preset() -> None:
    for preset in ("mobile", "desktop", "bot"):
        assert not matches(MatchSpec(user_agent=preset), View())


def test_user_agent_regex() -> None:
    spec = MatchSpec(user_agent=r"^MyApp/3\.")
    assert matches(spec, ua(IOS_APP))
    assert not matches(spec, ua("MyApp/2.0"))


def test_client_ip_cidrs_and_single_addresses() -> None:
    spec = MatchSpec(client_ip=("10.0.0.0/8", "192.168.1.7", "2001:db8::/32"))
    assert matches(spec, View(client_ip="10.20.30.40"))
    assert matches(spec, View(client_ip="192.168.1.7"))
    assert matches(spec, View(client_ip="2001:db8::1"))
    assert not matches(spec, View(client_ip="192.168.1.8"))
    assert not matches(spec, View(client_ip=""))


def test_client_ip_ipv4_mapped_ipv6_peer_matches_ipv4_network() -> None:
    assert matches(MatchSpec(client_ip=("127.0.0.0/8",)), View(client_ip="::ffff:127.0.0.1"))


def test_all_conditions_must_hold() -> None:
    spec = MatchSpec(methods=("GET",), path="/api/**", user_agent="mobile")
    assert matches(spec, View(path="/api/x", headers=CIMultiDict({"User-Agent": IPHONE})))
    assert not matches(
        spec, View(method="POST", path="/api/x", headers=CIMultiDict({"User-Agent": IPHONE}))
    )
    assert not matches(spec, View(path="/api/x", headers=CIMultiDict({"User-Agent": CURL})))


def test_bad_regexes_and_cidrs_are_all_reported_with_their_keys() -> None:
    spec = MatchSpec(
        path_regex="(",
        headers=(FieldCond("X", regex="["),),
        client_ip=("10.0.0.0/33",),
    )
    with pytest.raises(ConfigError) as e:
        compile_match(spec, "rules[0].match")
    paths = [p.path for p in e.value.problems]
    assert paths == [
        "rules[0].match.path_regex",
        "rules[0].match.headers[0].regex",
        "rules[0].match.client_ip[0]",
    ]


def test_literal_and_prefix_paths_match_exactly_like_the_glob() -> None:
    """Literal paths and `prefix/**` skip the regex; they must agree with it everywhere."""
    from chaosproxy.engine.matching import _path_check, compile_glob

    patterns = ["/api/**", "/api", "/api/", "/a.b/**", "/a/b/**", "/api/items/*", "/**"]
    paths = ["/api", "/api/", "/api/x", "/api/x/y", "/apix", "/", "/a.b", "/a.b/c", "/aXb/c"]
    for pattern in patterns:
        glob, check = compile_glob(pattern), _path_check(pattern)
        for p in paths:
            assert check(View(path=p)) == glob.fullmatch(p), (pattern, p)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("(a|aa)+$", "/" + "a" * 43 + "!", False),  # Python's re: minutes on this path
        ("(a|aa)+$", "/" + "a" * 44, True),
        ("^/(a+)+$", "/" + "a" * 43 + "!", False),
        ("^/(\\w+\\s?)*$", "/" + "word " * 9 + "!", False),
    ],
)
def test_a_backtracking_regex_answers_right_on_an_adversarial_path(
    pattern: str, path: str, expected: bool
) -> None:
    """Rule regexes run on RE2: a pattern that backtracks exponentially in Python's `re` is
    matched in linear time, so the test completes (no timing bound needed) and is right."""
    assert len(path) == 45 or "word" in path  # a 45-character adversarial path
    assert matches(MatchSpec(path_regex=pattern), View(path=path)) is expected


def test_python_end_of_text_anchor_and_non_ascii_text_work_on_re2() -> None:
    assert matches(MatchSpec(path_regex=r"/items/\d+\Z"), View(path="/items/42"))
    assert not matches(MatchSpec(path_regex=r"/items/\d+\Z"), View(path="/items/42/x"))
    spec = MatchSpec(headers=(FieldCond("X-Name", regex="^caf[eé]$"),))
    assert matches(spec, View(headers=CIMultiDict({"X-Name": "café"})))
    lone = "\udcff"  # a surrogate escape (undecodable byte): no match, no error
    assert not matches(MatchSpec(path_regex="^/x$"), View(path="/" + lone))


def test_a_glob_with_many_stars_is_matched_in_linear_time() -> None:
    """`/**a**a**a**b` would be a polynomial backtracking regex in Python's `re`."""
    glob = "/**a**a**a**a**a**b"
    assert not matches(MatchSpec(path=glob), View(path="/" + "a" * 4000 + "c"))
    assert matches(MatchSpec(path=glob), View(path="/" + "a" * 4000 + "b"))
