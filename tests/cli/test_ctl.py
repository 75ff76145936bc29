"""`chaosproxy ctl` fans out to several real proxies; `chaosproxy health`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

from chaosproxy.runtime import Runtime
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

    from chaosproxy.events import StateChanged

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
