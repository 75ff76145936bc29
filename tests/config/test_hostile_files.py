"""Hostile scenario files through every door: `chaosproxy run --scenario FILE`, hot reload from
the scenario directory (a new file, and the running scenario's own file overwritten) and
`PUT /scenarios/{name}`. Alias bombs, huge and deeply nested files, non-UTF-8 bytes, object and
local tags, binary garbage: each is a clear error naming the file and, where there is one, the
line; nothing is built from a tag; and the scenario that ran before still runs, injecting, while
traffic flows — and the next good version is still picked up."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.common.events import StateChanged
from chaosproxy.config.loader import load_scenario_file
from chaosproxy.process.runtime import Runtime
from tests.conftest import StartProxy

BOMB = b"""\
name: story
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
phases: [{name: p, duration: 1h, rules: [{fault: {error: {status: 500, body: *f}}}]}]
"""

# kind -> (bytes, what the error says, its line:col in the file, or None where there is none)
HOSTILE: dict[str, tuple[bytes, str, str | None]] = {
    "alias bomb": (BOMB, "too large: aliases expand this document", "6:4"),
    "huge": (b"name: story\n" + b"#" * (1024 * 1024 + 1) + b"\n", "file too large", None),
    "deep": (b"name: story\nphases: " + b"[" * 5000 + b"\n", "nested too deeply", "2:"),
    "nested 100": (
        b"name: story\nphases: " + b"[" * 100 + b"]" * 100 + b"\n",
        "nested too deeply: more than 64 levels",
        "2:",
    ),
    "latin-1": (b"name: caf\xe9\nphases: []\n", "not UTF-8", "1:10"),
    "object tag": (
        b"name: story\nphases: !!python/object/apply:os.system [touch PWNED]\n",
        "YAML tag '!!python/object/apply:os.system' is not allowed",
        "2:9",
    ),
    "tag in a fault parameter": (
        b"name: story\nphases:\n  - name: p\n    duration: 1h\n    rules:\n"
        b"      - fault: {error: {status: !!python/object/new:int [503]}}\n",
        "YAML tag '!!python/object/new:int' is not allowed",
        "6:33",
    ),
    "python name tag": (
        b"name: story\nseed: !!python/name:os.system\nphases: []\n",
        "YAML tag '!!python/name:os.system' is not allowed",
        "2:7",
    ),
    "local tag": (b"name: !shell story\nphases: []\n", "YAML tag '!shell' is not allowed", "1:7"),
    "binary": (bytes(range(256)) * 8, "not UTF-8", "2:118"),  # byte 0x80, after a 0x0a
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8", "1:1"),
    "NUL in text": (b"name: story\x00\nphases: []\n", "control character #x00", "1:12"),
    "two documents": (b"name: story\n---\nname: other\n", "expected a single document", "2:1"),
    "empty": (b"", "empty file", "1:1"),
    # Python refuses to convert an integer of more than 4300 digits: a ValueError deep in the
    # YAML constructor used to end `validate` and `run` in a traceback and make uploads a 500.
    "5001-digit integer": (
        b"name: story\nphases:\n  - name: p\n    duration: 1h\n    rules:\n"
        b"      - fault: {error: {status: " + b"9" * 5001 + b"}}\n",
        "phases[0].rules[0].fault.error.status: number too long: 5001 characters, at most 100",
        "6:33",
    ),
}


def expect_located(problem: str, source: str, kind: str) -> None:
    """`problem` names `source` (and the line:col, where one applies) and says what is wrong."""
    _, message, where = HOSTILE[kind]
    assert problem.startswith(f"{source}:{where}" if where else f"{source}:"), problem
    assert message in problem, problem
    assert "Traceback" not in problem


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_file_is_a_located_problem(tmp_path: Path, kind: str) -> None:
    f = tmp_path / "story.yaml"
    f.write_bytes(HOSTILE[kind][0])
    with pytest.raises(ConfigError) as e:
        load_scenario_file(f)
    expect_located(str(e.value.problems[0]), str(f), kind)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_validate_names_the_file_line_and_key_of_a_5001_digit_integer(tmp_path: Path) -> None:
    f = tmp_path / "story.yaml"
    f.write_bytes(HOSTILE["5001-digit integer"][0])
    run = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "validate", str(f)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    (problem,) = run.stderr.splitlines()
    expect_located(problem, str(f), "5001-digit integer")
    assert len(problem) < 300  # the digits are not echoed back


def test_a_fifo_nobody_writes_to_is_refused_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "story.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_scenario_file(fifo)


# ---------------------------------------------------------------- --scenario FILE


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_run_with_a_hostile_scenario_file_exits_2_naming_it(
    tmp_path: Path, refused_url: str, kind: str
) -> None:
    f = tmp_path / "story.yaml"
    f.write_bytes(HOSTILE[kind][0])
    run = subprocess.run(
        [sys.executable, "-m", "chaosproxy", "run", "--upstream", refused_url,
         "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--scenario", str(f)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("chaosproxy run: error: --scenario"), run.stderr
    # One problem without a line fits on the error's line; located ones follow it.
    problem = lines[1] if len(lines) > 1 else lines[0].split("--scenario: ", 1)[1]
    expect_located(problem, str(f), kind)
    assert "Traceback" not in run.stderr and not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------- hot reload and PUT

STORY = """\
name: story
phases:
  - name: broken
    duration: 1h
    rules:
      - name: boom
        match: {{path: /api/**}}
        fault: {{error: {{status: {status}}}}}
"""


def put(path: Path, data: bytes) -> None:
    """Write as an editor or a ConfigMap update does (whole, then renamed into place), so the
    watcher never reads half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        await r.read()
        return r.status


async def still_running_and_injecting(rt: Runtime, status: int = 503) -> None:
    running = rt.engine.current()
    assert running is not None and running.scenario.name == "story"
    assert await get(rt.proxy_url + "/api/items") == status  # the fault still fires
    assert await get(rt.proxy_url + "/static/app.js") == 200  # and other traffic flows


class Changes:
    """The proxy's state changes from now on; `wait_for` wakes on each one instead of polling."""

    def __init__(self, rt: Runtime) -> None:
        self.seen: list[StateChanged] = []
        self.arrived = asyncio.Event()
        rt.bus.subscribe(StateChanged, self._on)

    def _on(self, ev: StateChanged) -> None:
        self.seen.append(ev)
        self.arrived.set()

    async def wait_for(self, kind: str, file: Path) -> StateChanged:
        """The latest change of `kind` about `file` (named in events relative to the scenario
        directory), once there is one (30 s: a hang guard)."""
        async with asyncio.timeout(30):
            while True:
                self.arrived.clear()
                found = [
                    e for e in self.seen if e.kind == kind and e.details.get("file") == file.name
                ]
                if found:
                    return found[-1]
                await self.arrived.wait()


@pytest.fixture
async def story(demo_upstream: str, start_proxy: StartProxy, tmp_path: Path) -> Runtime:
    (tmp_path / "story.yaml").write_text(STORY.format(status=503))
    return await start_proxy(
        demo_upstream, scenario="story", scenario_dir=str(tmp_path), reload_interval=0.02
    )


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_reload_keeps_the_running_scenario_and_traffic(
    story: Runtime, tmp_path: Path, kind: str
) -> None:
    changes = Changes(story)
    await still_running_and_injecting(story)

    newcomer = (tmp_path / "evil.yaml").absolute()  # a new file lands in the directory
    put(newcomer, HOSTILE[kind][0])
    failed = await changes.wait_for("reload_failed", newcomer)
    expect_located(failed.details["problems"][0], newcomer.name, kind)
    await still_running_and_injecting(story)

    own = (tmp_path / "story.yaml").absolute()  # the running scenario's own file
    put(own, HOSTILE[kind][0])
    failed = await changes.wait_for("reload_failed", own)
    expect_located(failed.details["problems"][0], own.name, kind)
    await still_running_and_injecting(story)
    assert not (tmp_path / "PWNED").exists()

    put(own, STORY.format(status=502).encode())  # the watcher still works: the fix is applied
    ok = await changes.wait_for("reload_ok", own)
    assert ok.details["applied"] is True
    await still_running_and_injecting(story, 502)


async def test_the_running_file_replaced_by_a_fifo_is_refused_and_reload_goes_on(
    story: Runtime, tmp_path: Path
) -> None:
    changes = Changes(story)
    own = (tmp_path / "story.yaml").absolute()
    own.unlink()
    os.mkfifo(own)
    failed = await changes.wait_for("reload_failed", own)
    assert failed.details["problems"] == [f"{own.name}: cannot read: not a regular file"]
    await still_running_and_injecting(story)
    own.unlink()
    put(own, STORY.format(status=502).encode())
    assert (await changes.wait_for("reload_ok", own)).details["applied"] is True


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_upload_is_refused_and_changes_nothing(story: Runtime, kind: str) -> None:
    content = HOSTILE[kind][0]
    async with (
        aiohttp.ClientSession() as s,
        s.put(story.admin_url + "/scenarios/story", data=content) as r,
    ):
        status, body = r.status, await r.json()
    error = body["error"]
    if len(content) > 256 * 1024:
        assert status == 413 and "at most 262144 bytes" in error["details"]
    elif kind in ("latin-1", "binary", "png"):
        line, col = (HOSTILE[kind][2] or "").split(":")
        assert status == 400
        problem = error["details"][0]["problem"]
        assert re.match(
            rf"the scenario must be UTF-8 YAML: .* at line {line}, column {col}$", problem
        )
    else:
        assert status == 422
        expect_located(error["details"][0], "<upload story>", kind)
    assert "story" not in story.uploads
    await still_running_and_injecting(story)


def test_a_file_that_fails_in_a_way_no_check_foresaw_is_reported_and_the_rest_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: whatever a file makes the loader raise, it is that file's
    reload_failed (its traceback goes to the log), and the other changed files still load."""
    from chaosproxy.engine.reload import ScenarioWatcher
    from tests.engine.helpers import rig

    odd, fine = tmp_path / "a-odd.yaml", tmp_path / "b-fine.yaml"

    def load(p: Path):  # type: ignore[no-untyped-def]
        if p.name == odd.name:
            raise RuntimeError("a bug the loader did not foresee")
        return load_scenario_file(p)

    r = rig()
    watcher = ScenarioWatcher(r.engine, tmp_path, load=load)
    odd.write_text(STORY.format(status=503).replace("story", "odd"))
    fine.write_text(STORY.format(status=503).replace("story", "fine"))
    assert watcher.check() == []  # new: loaded once they hold still, at the next look
    assert watcher.check() == [odd.absolute(), fine.absolute()]
    failed = [s for s in r.states if s.kind == "reload_failed"]
    assert failed[0].details["problems"] == [
        f"{odd.name}: cannot load: RuntimeError (see the proxy log)"
    ]
    assert [s.scenario for s in r.states if s.kind == "reload_ok"] == ["fine"]
    assert [rec for rec in caplog.records if rec.exc_info]  # the traceback is in the log
