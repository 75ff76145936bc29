"""TCP proxy addresses as a user writes them on `--tcp` and CHAOSPROXY_TCP: what is read, and
a bad one refused with a message that shows what was expected and what was given."""

from __future__ import annotations

import pytest

from chaosproxy.tcp.address import (
    AddressError,
    TcpSpec,
    parse_host_port,
    parse_spec,
    shown,
    tcp_specs,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pg=127.0.0.1:6432:127.0.0.1:5432", ("pg", ("127.0.0.1", 6432), ("127.0.0.1", 5432))),
        ("pg=6432:db:5432", ("pg", ("0.0.0.0", 6432), ("db", 5432))),
        ("v6=[::1]:6432:[::1]:5432", ("v6", ("::1", 6432), ("::1", 5432))),
        (
            " redis.main=localhost:7000:cache:6379 ",
            ("redis.main", ("localhost", 7000), ("cache", 6379)),
        ),
    ],
)
def test_a_declaration_reads_as_name_listen_and_upstream(
    text: str, expected: tuple[str, tuple[str, int], tuple[str, int]]
) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("pg", "expected NAME=LISTEN:UPSTREAM"),
        ("pg=1:h", "expected NAME=LISTEN:UPSTREAM"),
        ("bad name=1:h:2", "a TCP proxy name is 1-64 letters"),
        ("=1:h:2", "a TCP proxy name is 1-64 letters"),
        ("pg=h:1:h:70000", "upstream: port 70000 is above 65535"),
        ("pg=99999:db:5432", "pg=99999:db:5432"),
    ],
)
def test_a_bad_declaration_is_refused_saying_what_was_expected(text: str, says: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_spec(text)
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)  # what argparse turns into a usage error


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    with pytest.raises(AddressError) as caught:
        parse_host_port("x" * 10_000)
    assert len(str(caught.value)) < 200


def test_host_port_reads_ipv6_in_brackets_and_refuses_trailing_text() -> None:
    assert parse_host_port(" [::1]:80 ") == ("::1", 80)
    with pytest.raises(AddressError, match="upstream: expected HOST:PORT"):
        parse_host_port("db:5432/x", "upstream")


def test_shown_puts_ipv6_back_in_brackets() -> None:
    assert shown(("::1", 5432)) == "[::1]:5432"
    assert shown(("db", 5432)) == "db:5432"


def test_the_environment_variable_takes_a_comma_list() -> None:
    assert tcp_specs("a=1:h:2, b=3:h:4,") == (
        TcpSpec("a", ("0.0.0.0", 1), ("h", 2)),
        TcpSpec("b", ("0.0.0.0", 3), ("h", 4)),
    )
    with pytest.raises(AddressError, match="expected NAME=LISTEN:UPSTREAM"):
        tcp_specs(" , ")
