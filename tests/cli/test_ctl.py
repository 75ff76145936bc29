"""`chaosproxy ctl` fans out to several real proxies; `chaosproxy health`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from chaosproxy.common.events import StateChanged, StateKind
from chaosproxy.config.loader import load_scenario_text
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy


async def chaosproxy(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaosproxy",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def two(demo_upstream: str, start_proxy: StartProxy) -> tuple[Runtime, Runtime]:
    return await start_proxy(demo_upstream), await start_proxy(demo_upstream)


async def test_rules_add_reaches_every_sidecar(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a, b = await two(demo_upstream, start_proxy)
    rule = tmp_path / "rule.yaml"
    rule.write_text("match: {path: /api/**}\nfault: {error: {status: 503}}\n")
    code, out, _ = await chaosproxy(
        "ctl", "--admin", a.admin_url, "--admin", b.admin_url, "rules", "add", str(rule)
    )
    assert code == 0, out
    assert out.count(": ok: ") == 2
    assert len(a.engine.adhoc_rules()) == 1 and len(b.engine.adhoc_rules()) == 1


async def test_one_sidecar_down_exits_1_naming_it(
    demo_upstream: str, start_proxy: StartProxy, refused_url: str
) -> None:
    a = await start_proxy(demo_upstream)
    down = refused_url
    code, out, err = await chaosproxy("ctl", "--admin", a.admin_url, "--admin", down, "status")
    assert code == 1
    assert f"{a.admin_url}: ok: " in out
    assert f"{down}: FAILED: unreachable" in out
    assert down in err and a.admin_url not in err


async def test_http_errors_are_failures_with_the_api_message(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    a = await start_proxy(demo_upstream)
    code, out, err = await chaosproxy("ctl", "--admin", a.admin_url, "rules", "delete", "r42")
    assert code == 1 and "HTTP 404" in out and a.admin_url in err


async def test_token_is_sent_to_every_sidecar(demo_upstream: str, start_proxy: StartProxy) -> None:
    a = await start_proxy(demo_upstream, admin_token="tok")
    b = await start_proxy(demo_upstream, admin_token="tok")
    admins = ["--admin", a.admin_url, "--admin", b.admin_url]
    code, out, _ = await chaosproxy("ctl", *admins, "reset")
    assert code == 1 and out.count("HTTP 401") == 2
    code, out, _ = await chaosproxy("ctl", *admins, "--token", "tok", "reset")
    assert code == 0, out


async def test_rules_list_and_clear(demo_upstream: str, start_proxy: StartProxy) -> None:
    from chaosproxy.faults import build

    a = await start_proxy(demo_upstream)
    a.engine.add_rule([build("error", {}, "f")])
    code, out, _ = await chaosproxy("ctl", "--admin", a.admin_url, "rules", "list")
    assert code == 0 and "ad-hoc rule r1: error" in out
    code, out, _ = await chaosproxy("ctl", "--admin", a.admin_url, "rules", "clear")
    assert code == 0 and "deleted 1 ad-hoc rule(s)" in out


async def test_json_flag_prints_the_raw_answer(demo_upstream: str, start_proxy: StartProxy) -> None:
    a = await start_proxy(demo_upstream)
    code, out, _ = await chaosproxy("ctl", "--admin", a.admin_url, "--json", "status")
    body = json.loads(out)[a.admin_url]["body"]
    assert code == 0 and body["active"] is False


async def test_unreadable_rule_file_exits_2(tmp_path: Path) -> None:
    code, _, err = await chaosproxy("ctl", "rules", "add", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err


async def test_health_exits_0_when_healthz_answers(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    a = await start_proxy(demo_upstream)
    code, out, _ = await chaosproxy("health", "--admin", a.admin_url)
    assert code == 0 and out.strip() == "ok"


async def test_health_exits_1_when_nothing_answers(refused_url: str) -> None:
    code, _, err = await chaosproxy("health", "--admin", refused_url)
    assert code == 1 and "unhealthy" in err


SCENARIO = """\
name: fleet-test
phases:
  - name: calm
    duration: 1s
  - name: broken
    duration: 60s
    rules:
      - match: {path: /api/**}
        fault: {error: {status: 503}}
"""


async def test_start_file_sends_the_scenario_to_every_sidecar_and_starts_it(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a, b = await two(demo_upstream, start_proxy)
    f = tmp_path / "mine.yaml"
    f.write_text(SCENARIO)
    code, out, err = await chaosproxy(
        "ctl", "--admin", a.admin_url, "--admin", b.admin_url, "start", str(f)
    )
    assert code == 0, (out, err)
    for rt in (a, b):
        running = rt.engine.current()
        assert running is not None and running.scenario.name == "fleet-test"


async def test_start_file_with_mistakes_is_refused_before_any_sidecar_is_touched(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a = await start_proxy(demo_upstream)
    f = tmp_path / "mine.yaml"
    f.write_text(SCENARIO.replace("duration: 1s", "duration: soon"))
    code, _, err = await chaosproxy("ctl", "--admin", a.admin_url, "start", str(f))
    assert code == 2 and f"{f}:4:15: phases[0].duration" in err
    assert a.uploads == {} and a.engine.current() is None


async def test_start_in_starts_every_sidecar_at_the_same_instant(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    """Two proxies, one `ctl start --in`: the moment each entered its first phase, measured
    on this machine's clock, differs by less than 50 ms."""
    import time

    from chaosproxy.common.events import StateChanged

    a, b = await two(demo_upstream, start_proxy)
    started: dict[str, float] = {}
    kinds: dict[str, list[str]] = {"a": [], "b": []}
    both = asyncio.Event()

    def listener(name: str) -> Callable[[StateChanged], None]:
        def on_state(ev: StateChanged) -> None:
            kinds[name].append(ev.kind)
            if ev.kind == "scenario_started":
                started.setdefault(name, time.time())
                if len(started) == 2:
                    both.set()

        return on_state

    a.bus.subscribe(StateChanged, listener("a"))
    b.bus.subscribe(StateChanged, listener("b"))
    f = tmp_path / "mine.yaml"
    f.write_text(SCENARIO)
    code, out, err = await chaosproxy(
        "ctl", "--admin", a.admin_url, "--admin", b.admin_url, "start", str(f), "--in", "1.5s"
    )
    assert code == 0, (out, err)
    await asyncio.wait_for(both.wait(), 30)
    for name in ("a", "b"):  # scheduled first, then started by each proxy's own timer
        assert kinds[name][:2] == ["scenario_scheduled", "scenario_started"], kinds
    assert abs(started["a"] - started["b"]) < 0.050, started


async def test_admins_come_from_a_file_and_from_dns(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a, b = await two(demo_upstream, start_proxy)
    listing = tmp_path / "sidecars.txt"
    listing.write_text(f"# staging\n{a.admin_url}\n\n{b.admin_url}  # the other one\n")
    code, out, _ = await chaosproxy("ctl", "--admin", f"@{listing}", "status")
    assert code == 0 and a.admin_url in out and b.admin_url in out
    code, out, _ = await chaosproxy("ctl", "--admin", f"dns://localhost:{a.admin_port}", "status")
    assert code == 0 and str(a.admin_port) in out


async def test_json_is_one_document_keyed_by_sidecar(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    a, b = await two(demo_upstream, start_proxy)
    code, out, _ = await chaosproxy(
        "ctl", "--admin", a.admin_url, "--admin", b.admin_url, "--json", "status"
    )
    doc = json.loads(out)
    assert code == 0 and set(doc) == {a.admin_url, b.admin_url}
    assert doc[a.admin_url]["ok"] is True and "clock_skew" in doc[a.admin_url]


async def test_api_hints_come_back_in_ctl_words(
    demo_upstream: str, start_proxy: StartProxy
) -> None:
    rt = await start_proxy(demo_upstream, admin_token="t0k")
    code, out, _ = await chaosproxy("ctl", "--admin", rt.admin_url, "stop")
    assert code == 1 and "pass --token" in out and "--admin-token" not in out
    args = ("ctl", "--admin", rt.admin_url, "--token", "t0k", "start", "post-deploy-breakage")
    assert (await chaosproxy(*args))[0] == 0
    code, out, _ = await chaosproxy(*args)
    assert code == 1 and "pass --replace" in out and '{"replace": true}' not in out


OTHER = SCENARIO.replace("name: fleet-test", "name: other-test")


async def test_start_is_all_or_nothing_unless_partial(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    """B already runs another scenario and refuses (409): the start on A is undone, and said
    so; with --partial it stays, and exit 3 says the fleet is mixed."""
    a, b = await two(demo_upstream, start_proxy)
    (tmp_path / "other.yaml").write_text(OTHER)
    (tmp_path / "mine.yaml").write_text(SCENARIO)
    code, _, err = await chaosproxy(
        "ctl", "--admin", b.admin_url, "start", str(tmp_path / "other.yaml")
    )
    assert code == 0, err
    both = ("ctl", "--admin", a.admin_url, "--admin", b.admin_url)

    code, out, err = await chaosproxy(*both, "start", str(tmp_path / "mine.yaml"))
    assert code == 1, (out, err)
    assert a.engine.current() is None  # stopped again
    running_b = b.engine.current()
    assert running_b is not None and running_b.scenario.name == "other-test"  # untouched
    assert f"{a.admin_url}: stopped again: it started, but {b.admin_url} failed" in out
    assert f"{b.admin_url}: FAILED: HTTP 409 Conflict" in out and "pass --replace" in out
    assert f"started on {a.admin_url}, refused by {b.admin_url} (HTTP 409 Conflict:" in err
    assert f"stopped on {a.admin_url} again; it runs nowhere" in err

    code, out, err = await chaosproxy(
        *both, "--json", "start", str(tmp_path / "mine.yaml"), "--partial"
    )
    assert code == 3, (out, err)
    doc = json.loads(out)
    assert doc[a.admin_url]["outcome"] == "started" and doc[a.admin_url]["ok"] is True
    assert doc[b.admin_url]["outcome"] == "refused" and doc[b.admin_url]["step"] == "start"
    assert doc[b.admin_url]["status"] == 409 and doc[b.admin_url]["ok"] is False
    running_a = a.engine.current()
    assert running_a is not None and running_a.scenario.name == "fleet-test"
    assert f"kept running on {a.admin_url} (--partial)" in err


async def test_start_json_says_what_was_undone_where(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a, b = await two(demo_upstream, start_proxy)
    b.engine.start_scenario(load_scenario_text(OTHER, "other.yaml"))
    code, out, _ = await chaosproxy(
        "ctl",
        "--admin",
        a.admin_url,
        "--admin",
        b.admin_url,
        "--json",
        "start",
        "post-deploy-breakage",
    )
    doc = json.loads(out)
    assert code == 1 and a.engine.current() is None
    assert doc[a.admin_url]["outcome"] == "stopped_again" and doc[a.admin_url]["ok"] is False
    assert doc[a.admin_url]["status"] == 201  # the start's own answer...
    assert doc[a.admin_url]["stop"]["ok"] is True  # ...and the stop that undid it
    assert doc[a.admin_url]["stop"]["body"]["stopped"] == "post-deploy-breakage"
    assert doc[b.admin_url]["outcome"] == "refused"


async def test_an_upload_one_sidecar_refuses_is_started_nowhere(
    demo_upstream: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    a = await start_proxy(demo_upstream)
    b = await start_proxy(demo_upstream, admin_token="tok")  # ctl has no token for it: 401
    f = tmp_path / "mine.yaml"
    f.write_text(SCENARIO)
    code, out, err = await chaosproxy(
        "ctl", "--admin", a.admin_url, "--admin", b.admin_url, "start", str(f)
    )
    assert code == 1, (out, err)
    assert a.engine.current() is None and "fleet-test" in a.uploads  # uploaded, not started
    assert f"{a.admin_url}: not started: uploaded, but {b.admin_url} could not have it" in out
    assert f"{b.admin_url}: FAILED: upload: HTTP 401" in out
    assert f"refused by {b.admin_url} (upload: HTTP 401" in err
    assert f"so not started on {a.admin_url} either" in err


async def test_a_stop_that_fails_while_undoing_is_exit_3_naming_the_sidecar(
    start_upstream: Callable[[web.Application], Awaitable[str]], refused_url: str
) -> None:
    """A sidecar that starts but cannot stop again: it still runs, and ctl says where, how to
    stop it, and exits 3."""
    stops = []

    async def started(_: web.Request) -> web.Response:
        return web.json_response({"active": True, "scenario": None}, status=201)

    async def no_stop(req: web.Request) -> web.Response:
        stops.append(req.path)
        return web.json_response({"error": {"code": 500, "message": "boom"}}, status=500)

    app = web.Application()
    app.router.add_post("/scenarios/{name}/start", started)
    app.router.add_post("/scenarios/stop", no_stop)
    stuck = await start_upstream(app)
    code, out, err = await chaosproxy(
        "ctl", "--admin", stuck, "--admin", refused_url, "start", "post-deploy-breakage"
    )
    assert code == 3, (out, err)
    assert stops == ["/scenarios/stop"]
    assert f"{stuck}: STILL RUNNING: it started, {refused_url} failed" in out
    assert f"no answer from {refused_url} (unreachable:" in err
    assert f"the stop FAILED on {stuck}, where it still runs" in err
    assert f"`chaosproxy ctl --admin {stuck} stop`" in err


async def test_status_and_events_warn_when_the_rules_match_no_request(
    demo_upstream: str,
    start_proxy: StartProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scenario written for other paths: the proxy logs it, `/events` has `rules_unmatched`,
    and `ctl status` prints it (bounds lowered here from 200 requests and 10 s)."""
    import aiohttp

    from chaosproxy.engine import unmatched

    monkeypatch.setattr(unmatched, "REQUESTS", 20)
    monkeypatch.setattr(unmatched, "SECONDS", 0.0)  # the request bound alone: no clock to race
    rt = await start_proxy(demo_upstream)
    broken, warned = asyncio.Event(), asyncio.Event()
    found: list[dict[str, Any]] = []

    def on(ev: StateChanged) -> None:
        if ev.kind == StateKind.PHASE_CHANGED and ev.phase == "broken":
            broken.set()
        elif ev.kind == StateKind.RULES_UNMATCHED:
            warned.set()

    rt.bus.subscribe(StateChanged, on)
    rt.engine.start_scenario(
        load_scenario_text(SCENARIO.replace("duration: 1s", "duration: 0.1s"), "mine.yaml")
    )
    async with aiohttp.ClientSession() as s:
        async with asyncio.timeout(10):
            await broken.wait()
        for _ in range(25):
            async with s.get(rt.proxy_url + "/v1/items") as r:  # passed on untouched
                assert r.status == 404
        async with asyncio.timeout(10):  # the ticker reports it on the proxy loop
            await warned.wait()
        async with s.get(rt.admin_url + "/events") as r:
            found = [e for e in (await r.json())["events"] if e["kind"] == "rules_unmatched"]
    [ev] = found
    assert ev["scenario"] == "fleet-test" and ev["phase"] == "broken"
    n = ev["details"]["requests"]  # 20 or more: both bounds must pass
    assert ev["details"]["match"] == ["/api/**"] and 20 <= n <= 25
    assert ev["details"]["paths"] == [{"path": "/v1/items", "requests": n}]
    code, out, _ = await chaosproxy("ctl", "--admin", rt.admin_url, "status")
    assert code == 0, out
    message = ev["details"]["message"]
    assert message.startswith(f"rule /api/** matched none of the last {n} requests in ")
    assert message.endswith(f" s; paths seen: /v1/items ({n})")
    assert f"warning: phase broken: {message}\n" in out


async def test_a_closed_pipe_ends_ctl_quietly(demo_upstream: str, start_proxy: StartProxy) -> None:
    """`chaosproxy ctl --json status | head -c 10`: the reader is gone before ctl writes (here
    for sure: the read end is closed first), and ctl exits as a closed pipe ends a C tool, with
    no traceback."""
    import os

    from chaosproxy.cli import SIGPIPE_EXIT

    a = await start_proxy(demo_upstream)
    read, write = os.pipe()
    os.close(read)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy",
            "ctl",
            "--admin",
            a.admin_url,
            "--json",
            "status",
            stdout=write,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert err.decode() == "" and proc.returncode == SIGPIPE_EXIT
