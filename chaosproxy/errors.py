"""The exception tree. Every error the user can cause is a ChaosProxyError with a clear message."""

from __future__ import annotations

from dataclasses import dataclass


class ChaosProxyError(Exception):
    """Base of every error chaosproxy raises on purpose."""


class UsageError(ChaosProxyError):
    """Bad command-line input: the CLI prints the message and exits 2."""


@dataclass(frozen=True)
class Problem:
    """One validation problem, located in a file: `file:line:col: key.path: message`."""

    message: str
    path: str = ""
    file: str = "<input>"
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        key = f"{self.path}: " if self.path else ""
        return f"{where}: {key}{self.message}"


class ConfigError(ChaosProxyError):
    """One or more problems in a configuration or scenario file."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = problems
        super().__init__("\n".join(str(p) for p in problems))


# What a client reads when the upstream refused the connection (real or injected): the same
# words either way, and never the upstream's address.
REFUSED_DETAILS = "cannot connect to the upstream: Connection refused"


class UpstreamError(ChaosProxyError):
    """The upstream could not be reached or broke the exchange; `reason` is a bounded label.

    `injected`: a fault raised it (upstream_down), so it is not upstream trouble to count.
    """

    def __init__(self, reason: str, details: str, *, injected: bool = False) -> None:
        self.reason = reason  # refused | timeout | reset | protocol
        self.details = details
        self.injected = injected
        super().__init__(f"{reason}: {details}")
