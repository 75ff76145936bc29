"""Rule regexes on RE2: a pattern a backtracking engine needs is refused in words that say
what to change; the rest means what it means in Python's `re`, in linear time."""

from __future__ import annotations

import pytest

from chaosproxy.config.regex import Regex, check, translate


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        (r"(a)\1", "backreference (\\1)"),
        ("(?P<x>a)(?P=x)", "named backreference"),
        ("foo(?=bar)", "lookahead"),
        ("foo(?!bar)", "negative lookahead"),
        ("(?<=/)api", "lookbehind"),
        ("(?<!/)api", "negative lookbehind"),
        ("a++", "possessive quantifiers (++)"),
    ],
)
def test_a_backtracking_construct_is_refused_by_name(pattern: str, named: str) -> None:
    why = check(pattern)
    assert why is not None
    assert named in why and "RE2" in why


def test_lookalikes_inside_a_class_or_escaped_are_fine() -> None:
    assert check(r"[(?=]x") is None
    assert check(r"\(\?=") is None
    assert check(r"[\d(]+") is None
    assert check(r"\0") is None


def test_a_syntax_error_says_it_is_invalid() -> None:
    why = check("(unclosed")
    assert why is not None and why.startswith("invalid regular expression (RE2 syntax)")


def test_a_pattern_too_large_for_its_memory_is_refused_as_too_complex() -> None:
    why = check("(" + "|".join(f"word{i}x{i}" for i in range(3000)) + "){20}")
    assert why is not None and "too complex" in why


def test_python_end_of_text_is_rewritten_and_an_escaped_backslash_is_kept() -> None:
    assert translate(r"/api\Z") == r"/api\z"
    assert translate(r"a\\Z") == r"a\\Z"
    rx = Regex(r"/api\Z")
    assert rx.search("/v1/api") and not rx.search("/api/x")


def test_search_fullmatch_and_ignore_case() -> None:
    rx = Regex(r"/users/\d+")
    assert rx.search("/v1/users/42/orders")
    assert not rx.fullmatch("/v1/users/42/orders")
    assert rx.fullmatch("/users/42")
    assert not Regex("bot").search("GoogleBOT")
    assert Regex("bot", ignore_case=True).search("GoogleBOT")


def test_text_that_is_not_valid_unicode_is_matched_not_raised_on() -> None:
    rx = Regex("x")
    assert rx.search("a\udcffx")
    assert not rx.fullmatch("\udcff")


def test_an_adversarial_text_for_backtracking_gets_its_answer() -> None:
    assert not Regex("(a|aa)+$").search("a" * 5000 + "!")
