"""What the example tests compare the examples with: real CLI flags, admin routes, Dockerfile."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCKERFILE = ROOT / "Dockerfile"


def run_env_names() -> set[str]:
    """CHAOSPROXY_<FLAG> for every flag of `chaosproxy run`, from the real parser."""
    from chaosproxy.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    return {
        "CHAOSPROXY_" + a.dest.upper()
        for a in run._actions
        if a.option_strings and a.dest != "help"
    }


def admin_get_paths() -> set[str]:
    """Paths of the admin API's GET routes (what a probe or a scraper may call)."""
    from chaosproxy.admin.app import routes

    return {r.path for r in routes() if r.method == "GET"}


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name → its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = stages.setdefault(m[1], [])
        current.append(line)
    return stages


def image_env(stage: str = "sidecar") -> dict[str, str]:
    """The ENV a Dockerfile stage sets (KEY=VALUE pairs)."""
    env: dict[str, str] = {}
    for line in dockerfile_stages()[stage]:
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def port_of(host_port: str) -> int:
    return int(host_port.rsplit(":", 1)[1])


def env_list(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A Kubernetes container's env as name → entry."""
    return {e["name"]: e for e in container.get("env", [])}
