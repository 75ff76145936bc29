"""`chaosproxy ctl`: admin operations fanned out to several sidecars; `chaosproxy health`.

Every `--admin URL` is called concurrently; each sidecar's result is printed on its own line and
the exit code is 1 when any failed, naming every one that did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from chaosproxy.admin.client import DEFAULT_ADMIN, admin_url

__all__ = ["DEFAULT_ADMIN", "admin_url", "call_all", "register"]


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    ctl: argparse.ArgumentParser = sub.add_parser(
        "ctl",
        help="control running proxies through their admin API",
        description="Run one admin operation on every --admin URL at once.",
    )
    ctl.add_argument(
        "--admin",
        action="append",
        metavar="URL",
        help=f"admin API base URL; repeat for several sidecars (default {DEFAULT_ADMIN})",
    )
    ctl.add_argument("--token", help="bearer token for mutating routes")
    ctl.add_argument("--timeout", type=float, default=10.0, help="seconds per sidecar")
    ctl.add_argument("--json", action="store_true", help="print each answer as raw JSON")
    env_defaults(ctl)
    ops = ctl.add_subparsers(dest="op", metavar="OPERATION", required=True)
    start = ops.add_parser("start", help="start a scenario")
    start.add_argument("name")
    start.add_argument("--seed", type=int)
    start.add_argument("--repeat", type=int)
    start.add_argument("--replace", action="store_true", help="replace a running scenario")
    ops.add_parser("stop", help="stop the running scenario")
    ops.add_parser("status", help="show status")
    ops.add_parser("reset", help="stop everything and clear ad-hoc rules")
    rules = ops.add_parser("rules", help="ad-hoc rules")
    rops = rules.add_subparsers(dest="rules_op", metavar="list|add|delete|clear", required=True)
    rops.add_parser("list")
    add = rops.add_parser("add", help="add the rule in FILE (YAML or JSON, one rule)")
    add.add_argument("file")
    delete = rops.add_parser("delete")
    delete.add_argument("id")
    rops.add_parser("clear")
    ctl.set_defaults(func=ctl_command)

    health = sub.add_parser("health", help="exit 0 when the admin API's /healthz answers ok")
    health.add_argument("--admin", default=DEFAULT_ADMIN, metavar="URL")
    health.add_argument("--timeout", type=float, default=3.0)
    env_defaults(health)
    health.set_defaults(func=health_command)


@dataclass
class Result:
    admin: str
    ok: bool
    status: int
    body: Any


def request_for(args: argparse.Namespace) -> tuple[str, str, Any]:
    """(method, path, json body or None) for the chosen operation."""
    op = args.op
    if op == "start":
        body: dict[str, Any] = {}
        if args.seed is not None:
            body["seed"] = args.seed
        if args.repeat is not None:
            body["repeat"] = args.repeat
        if args.replace:
            body["replace"] = True
        return "POST", f"/scenarios/{args.name}/start", body
    if op == "stop":
        return "POST", "/scenarios/stop", None
    if op == "status":
        return "GET", "/status", None
    if op == "reset":
        return "POST", "/reset", None
    r = args.rules_op
    if r == "list":
        return "GET", "/rules", None
    if r == "clear":
        return "DELETE", "/rules", None
    if r == "delete":
        return "DELETE", f"/rules/{args.id}", None
    return "POST", "/rules", _read_rule(args.file)


def _read_rule(path: str) -> Any:
    import yaml

    from chaosproxy.errors import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not YAML/JSON: {e}") from None


async def call_all(
    admins: list[str], method: str, path: str, body: Any, token: str | None, timeout: float
) -> list[Result]:
    """The same call on every sidecar at once, through the shared admin client."""
    import aiohttp

    from chaosproxy.admin.client import AdminClient, Unreachable

    async def one(session: aiohttp.ClientSession, admin: str) -> Result:
        client = AdminClient(admin, token, session, timeout)
        try:
            res = await client.request(method, path, body)
        except Unreachable as e:
            return Result(admin, False, 0, f"unreachable: {e.reason}")
        return Result(admin, res.status < 400, res.status, res.body)

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(session, a) for a in admins)))


def _summary(res: Result, raw: bool = False) -> str:
    body = res.body
    if not res.ok:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            detail = err.get("details")
            tail = f": {json.dumps(detail)}" if detail is not None else ""
            return f"HTTP {res.status} {err.get('message', '')}{tail}"
        return body if res.status == 0 else f"HTTP {res.status} {body}"
    if raw or not isinstance(body, dict):
        return json.dumps(body, sort_keys=True)
    return describe(body)


def describe(body: dict[str, Any]) -> str:
    """A few readable lines for the answers people read most: status, start/stop, rules."""
    if "rules" in body and isinstance(body["rules"], list) and "scenario" not in body:
        return _rules(body["rules"]) or "no ad-hoc rules"
    if "deleted" in body and len(body) == 1:
        return f"deleted {body['deleted']} ad-hoc rule(s)"
    if "id" in body and "faults" in body:
        return f"added rule {body['id']}: {_rule(body)}"
    status = body.get("status", body)
    lines = []
    if "stopped" in body:
        lines.append(f"stopped {body['stopped'] or 'nothing (no scenario was running)'}")
    if body.get("reset"):
        lines.append("reset: scenario stopped, ad-hoc rules cleared")
    if isinstance(status, dict) and "active" in status:
        lines.extend(_status(status))
    return "\n  ".join(lines) if lines else json.dumps(body, sort_keys=True)


def _status(st: dict[str, Any]) -> list[str]:
    sc = st.get("scenario")
    out = []
    if isinstance(sc, dict) and sc.get("state") == "running":
        left = sc.get("remaining")
        left_s = "repeats forever" if left is None else f"{left:.0f}s left"
        out.append(
            f"scenario {sc['name']} running: phase {sc['phase']} "
            f"({sc['phase_elapsed']:.0f}s of {sc['phase_elapsed'] + sc['phase_remaining']:.0f}s),"
            f" {left_s}"
        )
        for rc in sc.get("rule_counts", []):
            out.append(
                f"  rule {rc['id']} [{rc['phase']}] {', '.join(rc['faults'])}: "
                f"{rc['matched']} matched, {rc['injected']} injected"
            )
    elif isinstance(sc, dict):
        out.append(f"no scenario running (last: {sc['name']}, {sc.get('state', 'stopped')})")
    else:
        out.append("no scenario running")
    rules = _rules(st.get("adhoc_rules") or st.get("rules") or [])
    if rules:
        out.append(rules)
    trips = (st.get("guardrails") or {}).get("trips") or []
    for trip in trips:
        out.append(f"guardrail tripped: {json.dumps(trip, sort_keys=True)}")
    return out


def _rule(r: dict[str, Any]) -> str:
    ttl = r.get("ttl_remaining")
    ttl_s = "" if ttl is None else f", {ttl:.0f}s to live"
    return f"{', '.join(r.get('faults', []))} (probability {r.get('probability', 1.0):g}{ttl_s})"


def _rules(rules: list[dict[str, Any]]) -> str:
    return "\n  ".join(f"ad-hoc rule {r.get('id')}: {_rule(r)}" for r in rules)


def ctl_command(args: argparse.Namespace) -> int:
    from chaosproxy.errors import UsageError

    admins = args.admin or [DEFAULT_ADMIN]
    try:
        method, path, body = request_for(args)
    except UsageError as e:
        print(f"chaosproxy ctl: error: {e}", file=sys.stderr)
        return 2
    results = asyncio.run(call_all(admins, method, path, body, args.token, args.timeout))
    for res in results:
        mark = "ok" if res.ok else "FAILED"
        print(f"{res.admin}: {mark}: {_summary(res, args.json)}")
    failed = [r.admin for r in results if not r.ok]
    if failed:
        print(f"chaosproxy ctl: failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def health_command(args: argparse.Namespace) -> int:
    results = asyncio.run(call_all([args.admin], "GET", "/healthz", None, None, args.timeout))
    res = results[0]
    healthy = res.ok and isinstance(res.body, dict) and res.body.get("status") == "ok"
    if not healthy:
        print(f"unhealthy: {args.admin}: {_summary(res)}", file=sys.stderr)
        return 1
    print("ok")
    return 0
