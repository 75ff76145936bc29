"""What a client reads when the proxy cannot connect: the cause, never the upstream's address."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from chaosproxy.common.errors import REFUSED_DETAILS
from chaosproxy.proxy.upstream.connect import connect_error


@pytest.mark.parametrize(
    ("error", "details"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.7', 8080)"),
            REFUSED_DETAILS,
        ),
        (
            OSError(errno.EHOSTUNREACH, "Connect call failed ('10.0.0.7', 8080)"),
            "cannot connect to the upstream: No route to host",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "cannot connect to the upstream: Name or service not known",
        ),
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 8080, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 8080)"
            ),
            "cannot connect to the upstream: Multiple exceptions: [Errno 111] Connect call "
            "failed, [Errno 111] Connect call failed",
        ),
    ],
    ids=["refused", "unreachable", "unresolved", "every-address"],
)
def test_connect_failures_read_without_the_address(error: OSError, details: str) -> None:
    e = connect_error(error)
    assert (e.reason, e.details) == ("refused", details)


def test_a_certificate_failure_keeps_its_reason() -> None:
    e = connect_error(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert "certificate verify failed" in e.details
