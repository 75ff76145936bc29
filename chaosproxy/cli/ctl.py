"""`chaosproxy ctl`: admin operations fanned out to several sidecars; `chaosproxy health`.

Every `--admin URL` is called concurrently; each sidecar's result is printed on its own line and
the exit code is 1 when any failed, naming every one that did.

`start` is all or nothing: when a sidecar refuses or fails, the ones where the scenario started
are stopped again (`--partial` keeps them), so a fleet never half-injects by accident. Exit 3
says the scenario runs on some sidecars but not all (`--partial`, or a stop that failed).

The operations are the routes that declare a `ctl` command (`admin/routes.py`): their words,
help and path parameters come from there, and every call goes to the declared route's path.
Over 400 lines on purpose: `start`'s all-or-nothing outcomes and their one-line story read best
here, beside the calls they are made of.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosproxy.admin.client import DEFAULT_ADMIN, admin_url
from chaosproxy.admin.declare import Route
from chaosproxy.admin.openapi import usage
from chaosproxy.admin.routes import HEALTHZ, PUT_SCENARIO, ROUTES, START, STOP
from chaosproxy.cli.common import duration

__all__ = ["DEFAULT_ADMIN", "admin_url", "call_all", "register"]


# Operations come from the route declarations (`Route.command`); here only what a shell adds:
# a group's help and an operation's options (its usage is declared: `Command.args`).
GROUPS = {"rules": "ad-hoc rules"}


def _start_options(start: argparse.ArgumentParser) -> None:
    start.add_argument("--seed", type=int)
    start.add_argument("--repeat", type=int)
    start.add_argument("--replace", action="store_true", help="replace a running scenario")
    start.add_argument(
        "--partial",
        action="store_true",
        help="when some sidecars refuse or fail, keep it running where it started (default: "
        "stop it there again, so it runs everywhere or nowhere)",
    )
    when = start.add_mutually_exclusive_group()
    when.add_argument(
        "--at",
        metavar="TIME",
        help="start on every sidecar at this instant: Unix seconds, an ISO 8601 time "
        "(2026-12-01T14:00:00Z) or HH:MM[:SS] today (local time)",
    )
    when.add_argument(
        "--in", dest="in_", type=duration, metavar="DURATION", help="start this long from now"
    )


def _rule_file(add: argparse.ArgumentParser) -> None:
    add.add_argument("file")


OPTIONS: dict[tuple[str, ...], Callable[[argparse.ArgumentParser], None]] = {
    ("start",): _start_options,
    ("rules", "add"): _rule_file,
}


def ctl_routes() -> list[tuple[Route, tuple[str, ...]]]:
    """Every declared route that is a `ctl` operation, with the operation's words."""
    return [(r, r.command.ctl) for r in ROUTES if r.command is not None and r.command.ctl]


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    ctl: argparse.ArgumentParser = sub.add_parser(
        "ctl",
        help="control running proxies through their admin API",
        description="Run one admin operation on every --admin URL at once.",
        epilog="Exit status: 0 done on every sidecar; 1 failed on some (for start: and it runs "
        "on none, the ones where it started were stopped again); 2 usage or scenario file "
        "error; 3 start only: it runs on some sidecars but not all (--partial, or a stop "
        "that failed).",
    )
    ctl.add_argument(
        "--admin",
        action="append",
        metavar="URL",
        help="admin API base URL; repeat for several sidecars; @FILE reads one per line; "
        f"dns://NAME:PORT takes every address NAME resolves to (default {DEFAULT_ADMIN})",
    )
    ctl.add_argument("--token", help="bearer token of the admin API (its --admin-token)")
    ctl.add_argument("--timeout", type=float, default=10.0, help="seconds per sidecar")
    ctl.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: each sidecar's answer keyed by its admin URL",
    )
    env_defaults(ctl)
    ops = ctl.add_subparsers(dest="op", metavar="OPERATION", required=True)
    groups: dict[str, Any] = {}
    for route, words in ctl_routes():  # every operation is a declared route's `ctl` command
        parent = ops
        if len(words) == 2:
            if words[0] not in groups:
                group = ops.add_parser(words[0], help=GROUPS[words[0]])
                names = "|".join(w[1] for _, w in ctl_routes() if w[0] == words[0])
                groups[words[0]] = group.add_subparsers(
                    dest=f"{words[0]}_op", metavar=names, required=True
                )
            parent = groups[words[0]]
        assert route.command is not None
        op = parent.add_parser(words[-1], help=route.command.help)
        for name, metavar in zip(route.path_params, usage(route), strict=False):
            op.add_argument(name, metavar=metavar)
        if words in OPTIONS:
            OPTIONS[words](op)
        op.set_defaults(route=route)
    ctl.set_defaults(func=ctl_command)

    assert HEALTHZ.command is not None
    health = sub.add_parser("health", help=HEALTHZ.command.help)
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
    skew: float | None = None  # the sidecar's clock minus ours (from /status's `time`)
    # `start` only: what happened on this sidecar (the outcomes below), the call that failed
    # ("upload" or "start"), and the answer to the stop that undid a start
    outcome: str = ""
    step: str = ""
    undo: Result | None = None

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"ok": self.ok, "status": self.status, "body": self.body}
        if self.skew is not None:
            doc["clock_skew"] = round(self.skew, 4)
        if self.outcome:
            doc["outcome"] = self.outcome
        if self.step:
            doc["step"] = self.step
        if self.undo is not None:
            doc["stop"] = {"ok": self.undo.ok, "status": self.undo.status, "body": self.undo.body}
        return doc


# What `ctl start` did on one sidecar (`outcome` in --json; `ok` is true for `started` only):
#   started        the scenario runs (or is scheduled) there
#   refused        the sidecar answered the upload or the start with an error (`step` says which)
#   unreachable    no answer (after a timeout the start may still have arrived)
#   not_started    the upload arrived, but another sidecar refused its own: not started here
#   stopped_again  it started, then was stopped again because another sidecar failed
#   stop_failed    it started, and that stop did not work: it still runs there


def parse_at(value: str, now: float | None = None) -> float:
    """Unix seconds from `1796132644`, `2026-12-01T14:00:00Z` or `14:00[:30]` (today, local)."""
    import datetime as dt

    from chaosproxy.common.errors import UsageError

    now = time.time() if now is None else now
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.astimezone()
        return when.timestamp()
    except ValueError:
        pass
    try:
        parts = [int(x) for x in v.split(":")]
        if len(parts) in (2, 3):
            today = dt.datetime.fromtimestamp(now).astimezone()
            t = today.replace(
                hour=parts[0],
                minute=parts[1],
                second=parts[2] if len(parts) == 3 else 0,
                microsecond=0,
            )
            return t.timestamp()
    except ValueError:
        pass
    raise UsageError(f"--at: expected Unix seconds, an ISO 8601 time or HH:MM[:SS], got {value!r}")


def request_for(args: argparse.Namespace) -> tuple[Route, str, Any]:
    """(route, path, json body or None) for the chosen operation: its declared route, with
    the path parameters taken from the arguments of the same names."""
    route: Route = args.route
    path = route.url(**{name: getattr(args, name) for name in route.path_params})
    if route is START:
        body: dict[str, Any] = {}
        if args.seed is not None:
            body["seed"] = args.seed
        if args.repeat is not None:
            body["repeat"] = args.repeat
        if args.replace:
            body["replace"] = True
        if args.at is not None:
            body["at"] = parse_at(args.at)
        elif args.in_ is not None:
            body["at"] = time.time() + args.in_
        return route, path, body
    if route.body is not None:  # rules add FILE
        return route, path, _read_rule(args.file)
    return route, path, None


def _read_rule(path: str) -> Any:
    import yaml

    from chaosproxy.common.errors import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not YAML/JSON: {e}") from None


async def call_all(
    admins: list[str],
    route: Route,
    path: str,
    body: Any,
    token: str | None,
    timeout: float,
    text: str | None = None,
) -> list[Result]:
    """The same call of `route` (at `path`, its parameters filled in) on every sidecar at once,
    through the shared admin client (`text`: a YAML body instead of JSON)."""
    import aiohttp

    from chaosproxy.admin.client import AdminClient, Unreachable

    async def one(session: aiohttp.ClientSession, admin: str) -> Result:
        client = AdminClient(admin, token, session, timeout)
        t0 = time.time()
        try:
            res = await client.request(route.method, path, body, text=text)
        except Unreachable as e:
            return Result(admin, False, 0, f"unreachable: {e.reason}")
        skew = None
        if isinstance(res.body, dict) and isinstance(res.body.get("time"), int | float):
            skew = float(res.body["time"]) - (t0 + time.time()) / 2
        return Result(admin, res.status < 400, res.status, res.body, skew)

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(session, a) for a in admins)))


def in_cli_words(status: int, detail: Any) -> Any:
    """The API's hints name its own fields; a ctl user needs ctl's flags."""
    if status == 409 and isinstance(detail, str) and '{"replace": true}' in detail:
        return detail.replace('send {"replace": true}', "pass --replace")
    if status == 401:
        return "this sidecar needs its admin token: pass --token TOKEN (or set CHAOSPROXY_TOKEN)"
    return detail


def _summary(res: Result, raw: bool = False) -> str:
    body = res.body
    if not res.ok:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            detail = in_cli_words(res.status, err.get("details"))
            if isinstance(detail, str):
                tail = f": {detail}"
            else:
                tail = f": {json.dumps(detail)}" if detail is not None else ""
            return f"HTTP {res.status} {err.get('message', '')}{tail}"
        return body if res.status == 0 else f"HTTP {res.status} {body}"
    if raw or not isinstance(body, dict):
        return json.dumps(body, sort_keys=True)
    text = describe(body)
    if res.skew is not None and abs(res.skew) >= 0.001:
        text += f"\n  clock {res.skew * 1000:+.0f} ms against this machine"
    return text


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
    if isinstance(sc, dict):
        out.extend(_warnings(sc.get("warnings")))
    sched = st.get("scheduled")
    if isinstance(sched, dict):
        at = time.strftime("%H:%M:%S", time.localtime(float(sched["at"])))
        frac = f"{float(sched['at']) % 1:.3f}".lstrip("0")
        out.append(f"scenario {sched['name']} scheduled to start at {at}{frac}")
    rules = _rules(st.get("adhoc_rules") or st.get("rules") or [])
    if rules:
        out.append(rules)
    trips = (st.get("guardrails") or {}).get("trips") or []
    for trip in trips:
        out.append(f"guardrail tripped: {json.dumps(trip, sort_keys=True)}")
    return out


def _warnings(warnings: Any) -> list[str]:
    """A phase whose rules matched none of the requests that went by (`rules_unmatched`)."""
    out = []
    for w in warnings if isinstance(warnings, list) else []:
        if not isinstance(w, dict) or not isinstance(w.get("message"), str):
            continue
        since = w.get("matched_since")
        tail = f" (they matched {since} since)" if isinstance(since, int) and since else ""
        out.append(f"warning: phase {w.get('phase', '?')}: {w['message']}{tail}")
    return out


def _rule(r: dict[str, Any]) -> str:
    ttl = r.get("ttl_remaining")
    ttl_s = "" if ttl is None else f", {ttl:.0f}s to live"
    return f"{', '.join(r.get('faults', []))} (probability {r.get('probability', 1.0):g}{ttl_s})"


def _rules(rules: list[dict[str, Any]]) -> str:
    return "\n  ".join(f"ad-hoc rule {r.get('id')}: {_rule(r)}" for r in rules)


def ctl_command(args: argparse.Namespace) -> int:
    from chaosproxy.admin.client import expand_admins
    from chaosproxy.common.errors import ChaosProxyError, UsageError

    try:
        admins = asyncio.run(expand_admins(args.admin or [DEFAULT_ADMIN]))
        if not admins:
            raise UsageError("no admin URL (the --admin file or DNS name gave none)")
        uploaded = None
        if args.route is START and _is_file(args.name):
            uploaded = _scenario_upload(args.name)
            if uploaded is None:
                return 2
            args.name = uploaded[0]
        route, path, body = request_for(args)
    except ChaosProxyError as e:
        print(f"chaosproxy ctl: error: {e}", file=sys.stderr)
        return 2
    if route is START:
        return _start(args, admins, uploaded, path, body)
    results = asyncio.run(call_all(admins, route, path, body, args.token, args.timeout))
    if args.json:
        print(json.dumps({r.admin: r.as_json() for r in results}, indent=2, sort_keys=True))
    else:
        for res in results:
            mark = "ok" if res.ok else "FAILED"
            print(f"{res.admin}: {mark}: {_summary(res)}")
    failed = [r.admin for r in results if not r.ok]
    if failed:
        print(f"chaosproxy ctl: failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _start(
    args: argparse.Namespace,
    admins: list[str],
    uploaded: tuple[str, str] | None,
    path: str,
    body: Any,
) -> int:
    """Upload (a local file) and start everywhere, all or nothing unless --partial."""
    auth = (args.token, args.timeout)
    results: dict[str, Result] = {}
    targets = admins
    if uploaded is not None:  # send the file's scenario first; start only where it arrived
        name, text = uploaded
        sent = asyncio.run(
            call_all(admins, PUT_SCENARIO, PUT_SCENARIO.url(name=name), None, *auth, text)
        )
        for r in sent:
            if not r.ok:
                r.outcome, r.step = ("refused" if r.status else "unreachable"), "upload"
                results[r.admin] = r
        targets = [r.admin for r in sent if r.ok]
        if results and not args.partial:  # someone cannot have it: start it nowhere
            for r in sent:
                if r.ok:
                    results[r.admin] = Result(
                        r.admin, False, r.status, r.body, outcome="not_started"
                    )
            targets = []
    if targets:
        for r in asyncio.run(call_all(targets, START, path, body, *auth)):
            r.outcome = "started" if r.ok else ("refused" if r.status else "unreachable")
            r.step = "" if r.ok else "start"
            results[r.admin] = r
    ordered = [results[a] for a in admins]
    failed = [r for r in ordered if r.outcome != "started"]
    started = [r for r in ordered if r.outcome == "started"]
    if failed and started and not args.partial:  # undo: stop it where it started
        stops = asyncio.run(
            call_all(
                [r.admin for r in started],
                STOP,
                STOP.url(),
                None,
                *auth,
            )
        )
        for r, stop in zip(started, stops, strict=True):
            r.undo = stop
            r.ok = False
            r.outcome = "stopped_again" if stop.ok else "stop_failed"
    if args.json:
        print(json.dumps({r.admin: r.as_json() for r in ordered}, indent=2, sort_keys=True))
    else:
        for r in ordered:
            print(_start_line(r, failed))
    if not failed:
        return 0
    print(f"chaosproxy ctl: {_start_story(ordered, args)}", file=sys.stderr)
    still = [r for r in ordered if r.outcome in ("started", "stop_failed")]
    return 3 if still else 1


def _start_line(r: Result, failed: list[Result]) -> str:
    """One sidecar's line of `ctl start`."""
    others = ", ".join(f.admin for f in failed if f.admin != r.admin)
    if r.outcome == "started":
        return f"{r.admin}: ok: {_summary(r)}"
    if r.outcome == "not_started":
        return f"{r.admin}: not started: uploaded, but {others} could not have it (all or nothing)"
    if r.outcome == "stopped_again":
        return f"{r.admin}: stopped again: it started, but {others} failed (all or nothing)"
    if r.outcome == "stop_failed":
        assert r.undo is not None
        return (
            f"{r.admin}: STILL RUNNING: it started, {others} failed, and the stop did not "
            f"work: {_summary(r.undo)}"
        )
    step = "upload: " if r.step == "upload" else ""
    return f"{r.admin}: FAILED: {step}{_summary(r)}"


def _start_story(results: list[Result], args: argparse.Namespace) -> str:
    """What a failed `ctl start` left behind, in one line: `started on A, refused by B (HTTP
    409 …): stopped on A again`."""

    def why(r: Result) -> str:
        step = "upload: " if r.step == "upload" else ""
        text = f"{r.admin} ({step}{_summary(r).splitlines()[0]})"
        if r.outcome == "unreachable" and "Timeout" in str(r.body):
            text += " (it may have started there: check with `ctl status`)"
        return text

    by: dict[str, list[Result]] = {}
    for r in results:
        by.setdefault(r.outcome, []).append(r)

    def names(*outcomes: str) -> str:
        return ", ".join(r.admin for o in outcomes for r in by.get(o, []))

    parts = []
    if names("started", "stopped_again", "stop_failed"):
        parts.append(f"started on {names('started', 'stopped_again', 'stop_failed')}")
    if by.get("refused"):
        parts.append("refused by " + ", ".join(why(r) for r in by["refused"]))
    if by.get("unreachable"):
        parts.append("no answer from " + ", ".join(why(r) for r in by["unreachable"]))
    story = ", ".join(parts)
    if by.get("not_started"):
        story += f": so not started on {names('not_started')} either"
    if by.get("stopped_again"):
        story += f": stopped on {names('stopped_again')} again"
        if args.replace:
            story += " (the scenario it replaced there is not restored)"
    if by.get("stop_failed"):
        again = " ".join(f"--admin {r.admin}" for r in by["stop_failed"])
        story += (
            f"; the stop FAILED on {names('stop_failed')}, where it still runs: "
            f"`chaosproxy ctl {again} stop`"
        )
    if by.get("started"):  # --partial
        story += f"; kept running on {names('started')} (--partial)"
    elif by.get("stopped_again") or by.get("not_started"):
        if not by.get("stop_failed"):
            story += "; it runs nowhere (--partial keeps it where it starts)"
    elif not by.get("stop_failed"):
        story += ": started nowhere"
    return story


def _is_file(name: str) -> bool:
    import os

    return "/" in name or name.endswith((".yaml", ".yml")) or os.path.isfile(name)


def _scenario_upload(path: str) -> tuple[str, str] | None:
    """(name, self-contained YAML) of a local scenario file, validated here first."""
    from chaosproxy.cli.scenarios import compile_problems
    from chaosproxy.common.errors import ConfigError
    from chaosproxy.config.dump import scenario_to_yaml
    from chaosproxy.config.loader import load_scenario_file

    try:
        sc = load_scenario_file(path)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return None
    problems = compile_problems(sc)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return None
    return sc.name, scenario_to_yaml(sc)


def health_command(args: argparse.Namespace) -> int:
    results = asyncio.run(call_all([args.admin], HEALTHZ, HEALTHZ.url(), None, None, args.timeout))
    res = results[0]
    healthy = res.ok and isinstance(res.body, dict) and res.body.get("status") == "ok"
    if not healthy:
        print(f"unhealthy: {args.admin}: {_summary(res)}", file=sys.stderr)
        return 1
    print("ok")
    return 0
