"""The text of a run option, as a user writes it on the command line or in a CHAOSPROXY_*
variable, becomes its typed value, or a one-line ValueError that says what was expected."""

from __future__ import annotations

import argparse

import pytest
import yarl

from chaosproxy.process.option_values import (
    MAX_WORKERS,
    MIN_HEAD,
    OneOf,
    argtype,
    connection_cap,
    fault_names,
    head_size,
    host_port,
    http_url,
    optional_duration,
    positive_int,
    size,
    size_or_never,
    text,
    worker_count,
)


def test_host_port_reads_an_address_ipv6_or_a_bare_port() -> None:
    assert host_port("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert host_port("[::1]:9000") == ("::1", 9000)
    assert host_port("8080") == ("0.0.0.0", 8080)
    assert host_port(":8080") == ("0.0.0.0", 8080)


def test_an_upstream_is_an_http_url_with_a_host() -> None:
    assert http_url("https://api.internal:8443/v1") == yarl.URL("https://api.internal:8443/v1")
    for bad in ("ftp://x", "http://", "api.internal:80", ""):
        with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
            http_url(bad)


def test_no_limit_words_and_zero_sizes_mean_none() -> None:
    assert [optional_duration(v) for v in ("off", " NONE ", "0")] == [None, None, None]
    assert optional_duration("250ms") == pytest.approx(0.25)
    assert size_or_never("0") is None and size_or_never("1KiB") == 1024
    assert size(" 16KiB ") == 16 * 1024
    assert text("") is None and text("token") == "token"
    assert connection_cap("auto") is None and connection_cap("500") == 500


@pytest.mark.parametrize(
    ("parse", "value", "says"),
    [
        (host_port, "db:port", "expected HOST:PORT"),
        (host_port, "db:70000", "port out of range"),
        (positive_int, "0", "expected a number > 0"),
        (positive_int, "two", "expected a whole number"),
        (worker_count, str(MAX_WORKERS + 1), f"at most {MAX_WORKERS} workers"),
        (head_size, "512", f"at least {MIN_HEAD} bytes"),
        (fault_names, "latency,nope", "unknown fault 'nope'"),
        (fault_names, " , ", "unknown fault list (empty)"),
        (OneOf("text", "json"), "yaml", "'yaml' is not one of text, json"),
    ],
)
def test_a_bad_value_is_one_line_saying_what_was_expected(
    parse: object, value: str, says: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse(value)  # type: ignore[operator]
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fault_names_know_http_and_tcp_faults() -> None:
    assert fault_names("error, latency ,bandwidth") == {"error", "latency", "bandwidth"}
    with pytest.raises(ValueError) as caught:
        fault_names("nope")
    assert "known faults:" in str(caught.value) and "bandwidth" in str(caught.value)


def test_argtype_turns_the_value_error_into_argparses_one_line() -> None:
    parser = argparse.ArgumentParser(prog="x", exit_on_error=False)
    parser.add_argument("--workers", type=argtype(worker_count))
    assert parser.parse_args(["--workers", "3"]).workers == 3
    with pytest.raises(argparse.ArgumentError) as caught:
        parser.parse_args(["--workers", "0"])
    assert str(caught.value) == "argument --workers: expected a number > 0, got '0'"
