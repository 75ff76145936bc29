"""What starting a proxy process needs before and around `Runtime`: the event loop policy, and a
startup failure told as one line naming its flag or file. Shared by `chaosproxy run` and each
`--workers` process (which must not import the CLI)."""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any


def startup_error(e: BaseException, settings: Any) -> str:
    """One line (or a located list) naming the flag or file a startup failure is about."""
    from chaosproxy.common.errors import ConfigError

    if isinstance(e, ConfigError):
        if all(p.line == 0 for p in e.problems):  # unknown name, missing or unreadable file
            return "--scenario: " + "; ".join(
                p.message if p.file == "<input>" else str(p) for p in e.problems
            )
        return f"--scenario {settings.scenario}: invalid scenario:\n{e}"
    if isinstance(e, ssl.SSLError):
        return f"--tls-cert/--tls-key: cannot load TLS files: {e.reason or e}"
    if isinstance(e, OSError):
        reason = e.strerror or str(e)
        files = {
            settings.journal: "--journal",
            settings.tls_cert: "--tls-cert",
            settings.tls_key: "--tls-key",
            settings.upstream_ca: "--upstream-ca",
            settings.scenario_dir: "--scenario-dir",
        }
        name = os.fsdecode(e.filename) if e.filename else None
        if name and name in files:
            return f"{files[name]} {name}: {reason}"
        if name:
            return f"{name}: {reason}"
        return f"cannot start: {reason}"
    return str(e)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
