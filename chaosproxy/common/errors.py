"""The exception tree. Every error the user can cause is a ChaosProxyError with a clear message."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


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


MAX_SHOWN_PROBLEMS = 20  # located problems shown per invalid file (API answers, events, logs)
MAX_PROBLEM_CHARS = 300  # characters of one problem shown (a file may be no scenario at all)


def shown_path(base: Path | None, file: str) -> str:
    """`file` as a client or the log sees it: relative to the scenario directory `base`, else
    its name alone, never where the proxy's disk keeps it (`<upload x>` and the like as
    they are)."""
    if not file or file.startswith("<"):
        return file
    f = Path(file).absolute()
    b = base.absolute() if base is not None else None
    return str(f.relative_to(b)) if b is not None and f.is_relative_to(b) else f.name


def shown_problems(problems: list[Problem], base: Path | None) -> list[str]:
    """Located problems as shown outside: files by `shown_path`, at most MAX_SHOWN_PROBLEMS,
    each cut to MAX_PROBLEM_CHARS, and how many more there were."""
    out = []
    for p in problems[:MAX_SHOWN_PROBLEMS]:
        text = str(replace(p, file=shown_path(base, p.file)) if p.file else p)
        out.append(text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS] + "…")
    if len(problems) > MAX_SHOWN_PROBLEMS:
        out.append(f"… and {len(problems) - MAX_SHOWN_PROBLEMS} more problems")
    return out
