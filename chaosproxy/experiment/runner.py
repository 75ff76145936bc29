"""`chaosproxy experiment run`: replay a scenario under Locust load and judge the checks.

The order of one run: (1) start or reach the proxies, upload the scenario; (2) start Locust at
the warm-up load and wait until it holds; (3) schedule the scenario on every proxy for the same
whole second and follow the load plan; (4) each second: progress line, live `halt` checks,
and a watch on Locust and the proxies (one that dies or goes silent is a problem: the run did
not go as planned, `integrity.py`; a dead Locust master or started proxy ends the run);
(5) stop load, stop the scenario (always, also on error or Ctrl-C), collect both views and the
proxy's phase boundaries, add what the data shows went against the plan, judge, write the
results; (6) stop a proxy the runner started.

Here: the order and the state of a run. Its states and events (preparing → warming_up → running
→ [halted] → stopping → gathering → done, `test_start`, `tick`, `test_stopping`, `test_stop`) and
its injected clock are `lifecycle.py`; what it shows is a listener (`live.Console`). The load
plan is `plan.py`, step (4)'s live checks and progress line `live.py`, step (5) `gather.py`.

`open_admins`, `launch_load` and `check_target` are where a run meets the world (processes,
sockets): a test overrides them, with a fake `RunOptions.clock`, to drive a whole run without
Locust (`tests/experiment/test_lifecycle.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yarl

from chaosproxy.admin.client import AdminClient, AdminError, Unreachable
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.dump import scenario_to_yaml
from chaosproxy.config.model import Scenario
from chaosproxy.experiment import align, integrity
from chaosproxy.experiment.finish import finish, original_text
from chaosproxy.experiment.lifecycle import REAL_CLOCK, Clock, Lifecycle, RunEvents, State
from chaosproxy.experiment.live import Console, check_halts, refresh_proxy_view
from chaosproxy.experiment.model import Experiment
from chaosproxy.experiment.outcome import COOLDOWN, PASS
from chaosproxy.experiment.plan import load_cohort, plan_stages, write_plan
from chaosproxy.experiment.processes import (
    Child,
    Load,
    SetupError,
    StartedProxy,
    start_load,
    start_proxy,
)
from chaosproxy.experiment.series import PhaseWindow, View
from chaosproxy.experiment.spec import resolve_experiment_scenario


@dataclass
class RunOptions:
    out: Path | None = None
    workers: int = 0
    remote_workers: int = 0  # Locust workers on other hosts that connect to `master_bind`
    master_bind: tuple[str, int] | None = None
    seed: int | None = None
    token: str | None = None
    command: str = ""
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    tty: bool | None = None  # None: ask the stream
    stop: asyncio.Event | None = None  # set it to interrupt (the CLI sets it on SIGINT/SIGTERM)
    clock: Clock = REAL_CLOCK  # every time the run reads and every wait (tests: a fake one)


@dataclass
class Outcome:
    exit_code: int
    out: Path
    verdict: str | None
    results: dict[str, Any] | None = None


def default_out(exp: Experiment) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{exp.name}-{stamp}"


class ExperimentRun:
    """The state of one experiment run; `execute()` does it and returns the exit code."""

    def __init__(self, exp: Experiment, opts: RunOptions) -> None:
        self.exp = exp
        self.opts = opts
        self.out = opts.out or default_out(exp)
        self.run_id = secrets.token_hex(4)
        self.seed = opts.seed if opts.seed is not None else exp.seed
        self.stream = opts.stream
        self.tty = (
            opts.tty
            if opts.tty is not None
            else bool(getattr(self.stream, "isatty", lambda: False)())
        )
        self.stop_event = opts.stop or asyncio.Event()
        self.clock = opts.clock
        self.hooks = RunEvents()  # listeners: the console, and whoever else adds one
        self.lifecycle = Lifecycle(self, self.clock, self.hooks)
        self.console = Console(self.stream, self.tty)
        self.console.attach(self.hooks)
        self.scenario: Scenario | None = None
        self.warm: tuple[int, float] = (0, 0.0)  # the warm-up (users, spawn rate)
        self.proxy: StartedProxy | None = None
        self.clients: list[AdminClient] = []
        self.load: Load | None = None
        self.client = align.ClientData(self.out / "client.jsonl")
        self.cursors: dict[str, int] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}  # admin URL -> the proxy's events
        self.halted: dict[str, Any] | None = None
        self.interrupted = False
        self.notes: list[str] = []
        self.cohort: dict[str, float] | None = None  # the control group the load labels
        self.client_cohorts_agree = True  # False: a proxy hashes cohorts otherwise
        # What went against the plan (integrity.py): never PASS with any of these.
        self.problems: list[str] = []
        self.plan: integrity.Plan | None = None
        self.end: float | None = None  # the planned end of the load (earlier after a halt)
        self.load_lost_at: float | None = None  # when a Locust process was first seen gone
        self.instances: dict[str, str] = {}  # admin URL -> the proxy instance (host:pid)
        self._silent: dict[str, tuple[float, int]] = {}  # URL -> (first failed poll, count)
        self._reported: set[str] = set()  # processes and URLs a problem already names
        self.started = 0.0
        self.scenario_at: float | None = None
        self.scenario_end: float | None = None
        self.live_proxy: dict[int, View] = {}
        self.live_proxy_cohorts: dict[int, dict[str, View]] = {}  # with a control group
        self.looks: dict[str, int] = {}  # halt check -> times judged live (live.check_halts)
        self.verdict: Any = None
        self.load_stopped = 0.0
        self.target = ""

    @property
    def state(self) -> State | None:
        return self.lifecycle.state

    # ------------------------------------------------------------ output (events)

    def say(self, text: str) -> None:
        self.hooks.message.fire(run=self, text=text)

    def warn(self, text: str) -> None:
        self.hooks.warning.fire(run=self, text=text)

    # ------------------------------------------------------------ the run

    async def execute(self) -> Outcome:
        exp = self.exp
        scenario = resolve_experiment_scenario(exp)
        if scenario.cycle_duration <= 0:
            raise SetupError(f"scenario {scenario.name!r} has no duration")
        self.scenario = scenario
        self.out.mkdir(parents=True, exist_ok=True)
        scenario_text = original_text(scenario)
        self.lifecycle.to(State.PREPARING)
        async with aiohttp.ClientSession() as session:
            try:
                why = "the run failed"
                try:
                    await self._prepare(scenario, session)
                    why = await self._drive(scenario)
                except BaseException as e:
                    why = _failure(e)
                    raise
                finally:
                    await self._wind_down(why)
                self.lifecycle.to(State.GATHERING)
                doc = await finish(self, scenario, scenario_text)
            except BaseException as e:
                self.lifecycle.fail(_failure(e))
                raise
            finally:
                if self.proxy is not None:  # a proxy the runner started never outlives it
                    await self.proxy.child.stop(signal.SIGTERM, timeout=15.0)
        self._reports()
        self.lifecycle.to(State.DONE)  # the console shows the checks and where results went
        code = 0 if doc["verdict"] == PASS and not self.interrupted else 1
        return Outcome(code, self.out, doc["verdict"], doc)

    async def _prepare(self, scenario: Scenario, session: aiohttp.ClientSession) -> None:
        self.clients = await self.open_admins(session)
        text = scenario_to_yaml(scenario)
        for c in self.clients:
            try:
                st = await c.status()
                sc = st.get("scenario") or {}
                if sc.get("state") == "running" or st.get("scheduled"):
                    name = sc.get("name") or st["scheduled"]["name"]
                    raise SetupError(
                        f"{c.url}: scenario {name!r} is already running there; stop it first "
                        f"(chaosproxy ctl --admin {c.url} stop)"
                    )
                self.instances[c.url] = str(st.get("instance", ""))
                now = self.clock.time()
                skew = abs(float(st.get("time", now)) - now)
                if skew > 0.25:
                    self.notes.append(f"{c.url}: clock differs from the runner's by {skew:.2f}s")
                await c.upload(scenario.name, text)
                ev = await c.events(since=0, limit=1)
                self.cursors[c.url] = int(ev["last"])
                self.events[c.url] = []
            except Unreachable as e:
                raise SetupError(f"the admin API {e.url} is unreachable: {e.reason}") from None
            except AdminError as e:
                raise SetupError(str(e)) from None
        self.target = self.exp.target or (self.proxy.url if self.proxy else "")
        await self.check_target(self.target)

    # ------------------------------------------------------------ where the run meets the world

    async def open_admins(self, session: aiohttp.ClientSession) -> list[AdminClient]:
        """Start the experiment's own proxy, or find the sidecars it names: their admin APIs."""
        exp = self.exp
        if exp.proxy is not None:
            self.say(f"starting chaosproxy in front of {exp.proxy.upstream} ...")
            self.proxy = await start_proxy(exp, self.out, None)
            admins, token = [self.proxy.admin], self.proxy.token
        else:
            from chaosproxy.admin.client import expand_admins

            try:
                admins = await expand_admins(list(exp.admin))
            except ChaosProxyError as e:
                raise SetupError(str(e)) from None
            token = self.opts.token
        return [AdminClient(a, token, session, timeout=5.0) for a in admins]

    async def check_target(self, url: str) -> None:
        await _check_reachable(url)

    async def launch_load(self, plan: Path) -> Load:
        """Locust (and its workers), following the plan file, writing `self.client.path`."""
        return await start_load(
            self.exp,
            self.out,
            self.target,
            self.run_id,
            plan,
            self.client.path,
            self.opts.workers,
            self.seed,
            self.opts.remote_workers,
            self.opts.master_bind,
            self.cohort,
        )

    # ------------------------------------------------------------ warm-up, scenario

    async def _drive(self, scenario: Scenario) -> str:
        """Warm up, schedule the scenario, follow it each second. Why it ended (the reason
        `stopping` records)."""
        exp, load = self.exp, self.exp.load
        plan = self.out / "plan.json"
        warm, _ = plan_stages(exp, scenario, 0.0)
        self.warm = warm
        self.cohort, cohort_note = load_cohort(exp, scenario, self.seed)
        if cohort_note:
            self.notes.append(cohort_note)
        write_plan(plan, warm, [], None, self.cohort)
        self.lifecycle.to(State.WARMING_UP)  # the console: "load: N users ..."
        self.started = self.clock.time()
        self.load = await self.launch_load(plan)
        if self.opts.remote_workers:
            host, _ = self.opts.master_bind or (socket.gethostname(), 0)
            if host in ("0.0.0.0", "::", ""):
                host = socket.gethostname()
            self.say(
                f"waiting for {self.opts.remote_workers} remote Locust worker(s); on each load "
                f"host run:\n  python -m locust --worker --master-host {host} --master-port "
                f"{self.load.master_port} -f {_worker_files(exp)}"
            )
        # (2) warm-up: the planned users running, and traffic for `settle` seconds
        deadline = self.clock.time() + 45 + warm[0] / warm[1] + load.settle
        if self.opts.remote_workers:
            deadline += 120
        steady_since: float | None = None
        while True:
            await self._tick_wait()
            self.client.poll()
            now = self.clock.time()
            if self.stop_event.is_set():  # before the children: Ctrl-C reaches them too
                return self._interrupt()
            self._check_load_alive(now)
            self._check_proxy_alive(now)
            if self.stop_event.is_set():
                return self._interrupt()
            recent = sum(v.requests for t, v in self.client.seconds.items() if t >= int(now) - 3)
            if self.client.users >= warm[0] and recent > 0:
                steady_since = steady_since or now
                if now - steady_since >= load.settle:
                    break
            else:
                steady_since = None
            self.hooks.tick.fire(run=self, now=now)
            if now > deadline:
                raise SetupError(
                    f"load never reached {warm[0]} users sending requests to {self.target}; "
                    f"Locust's log ({self.load.master.log}):\n{self.load.master.tail()}"
                )
        # (3) every proxy starts the scenario at the same whole second
        at = float(math.floor(self.clock.time()) + 2)
        total = scenario.cycle_duration
        for c in self.clients:
            try:
                await c.start(scenario.name, seed=self.seed, repeat=1, at=at)
            except (AdminError, Unreachable) as e:
                raise SetupError(f"could not start the scenario: {e}") from None
        self.scenario_at = at
        if self.cohort is not None:
            await self._check_cohort()
        _, stages = plan_stages(exp, scenario, at)
        end = at + total + load.cooldown
        self.end = end
        self.plan = integrity.Plan(
            at,
            tuple((p.name, p.duration) for p in scenario.phases),
            warm,
            tuple((s[0], s[1], s[2]) for s in stages),
        )
        write_plan(plan, warm, stages, end, self.cohort)
        self.lifecycle.to(State.RUNNING)
        self.hooks.test_start.fire(run=self, at=at)  # the console: "scenario ... starts at"
        # (4) each second until the planned end
        halting = [c for c in exp.checks if c.halt]
        while True:
            await self._tick_wait()
            now = self.clock.time()
            self.client.poll()
            load_alive = self._check_load_alive(now, end)
            proxy_alive = self._check_proxy_alive(now)
            await self.poll_events()
            if self.stop_event.is_set():
                return self._interrupt()
            if now >= end:
                return "the planned end" + (" after the halt" if self.halted else "")
            if not load_alive:
                return "the Locust master exited"
            if not proxy_alive:
                return "the proxy exited"
            if halting and self.halted is None:
                await refresh_proxy_view(self, at)
                breach = await check_halts(self, scenario, halting)
                if breach is not None:
                    end = self.end = min(end, self.clock.time() + 3.0)
                    write_plan(plan, warm, stages, end, self.cohort)
                    self.lifecycle.to(State.HALTED, breach)  # the console: "HALT: ..."
            self.hooks.tick.fire(run=self, now=now)  # the console: the progress line

    async def _check_cohort(self) -> None:
        """The load labels its users with the proxy's own hash, seed and share: when a proxy
        says it hashes otherwise (`/status`), the client view's cohorts are not the proxy's and
        are dropped (a note says so; the proxy view keeps its split)."""
        assert self.cohort is not None
        for c in self.clients:
            try:
                doc = await c.status()
            except (AdminError, Unreachable):
                continue
            scenario = doc.get("scenario") if isinstance(doc, dict) else None
            got = scenario.get("cohort") if isinstance(scenario, dict) else None
            if not isinstance(got, dict):
                continue
            if got.get("seed") != self.cohort["seed"] or got.get("share") != self.cohort["share"]:
                self.notes.append(
                    f"{c.url} draws its cohort with seed {got.get('seed')!r} and share "
                    f"{got.get('share')!r}, the load labelled users with seed "
                    f"{self.cohort['seed']} and share {self.cohort['share']}: the client view "
                    "has no cohort split"
                )
                self.client_cohorts_agree = False
                return

    def _interrupt(self) -> str:
        self.interrupted = True
        self.lifecycle.to(State.INTERRUPTED)
        return "interrupted"

    async def _tick_wait(self) -> None:
        """Sleep to just after the next whole second (or until interrupted)."""
        await self.clock.sleep_until(math.floor(self.clock.time()) + 1.2, self.stop_event)

    def _check_load_alive(self, now: float, end: float | None = None) -> bool:
        """Before the scenario a failed Locust process is a SetupError; after its scheduling
        one gone before `end` (or failed at any time) is a problem. False once the master is
        gone: nothing is left to measure."""
        assert self.load is not None
        for child in self.load.children:
            code = child.proc.returncode
            if code is None or child.name in self._reported:
                continue
            if self.scenario_at is None:
                if _interrupted(code):  # the terminal's Ctrl-C reached it first: a stop
                    self.stop_event.set()
                elif code != 0:
                    raise SetupError(f"{child.name} exited ({code}):\n{child.tail()}")
                continue
            if code == 0 and end is not None and now >= end:
                continue  # the shape's own stop at the planned end
            self._reported.add(child.name)
            self.load_lost_at = min(self.load_lost_at or now, now)
            self.problems.append(integrity.load_exited(child.name, code, self.plan, now))
            self.notes.append(_log_note(child))
            self.warn(f"{child.name} exited ({code})")
        return self.load.master.running

    def _check_proxy_alive(self, now: float) -> bool:
        """A proxy the runner started must outlive the run: its exit before the scenario is a
        SetupError, after it a problem (and the end of the run). False once it is gone."""
        p = self.proxy
        if p is None or p.child.running:
            return True
        if self.scenario_at is None:
            if _interrupted(p.child.proc.returncode):
                self.stop_event.set()
                return False
            raise SetupError(f"the proxy exited ({p.child.proc.returncode}):\n{p.child.tail()}")
        if "proxy" not in self._reported:
            self._reported.update(["proxy", *(c.url for c in self.clients)])
            code = p.child.proc.returncode
            self.problems.append(integrity.proxy_exited(p.url, code, self.plan, now))
            self.notes.append(_log_note(p.child, "the proxy"))
            self.warn(f"the proxy exited ({code})")
        return False

    async def poll_events(self) -> None:
        """New events from every proxy; a proxy that does not answer twice in a row, or
        answers as another instance (it restarted), is a problem."""
        for c in self.clients:
            now = self.clock.time()
            try:
                body = await c.events(since=self.cursors[c.url])
            except Unreachable as e:
                first, n = self._silent.get(c.url, (now, 0))
                self._silent[c.url] = (first, n + 1)
                if n + 1 >= 2:
                    self.lost_proxy(
                        c.url, integrity.proxy_unreachable(c.url, self.plan, first, e.reason)
                    )
                continue
            except ChaosProxyError:
                continue  # it answered (an error): it is there
            self._silent.pop(c.url, None)
            instance = str(body.get("instance", ""))
            before = self.instances.get(c.url, "")
            if before and instance and instance != before:
                self.lost_proxy(
                    c.url, integrity.proxy_restarted(c.url, self.plan, now, before, instance)
                )
                continue  # a restarted proxy's events are another process's
            self.events[c.url].extend(body["events"])
            self.cursors[c.url] = int(body["next"])

    def lost_proxy(self, url: str, problem: str) -> None:
        """Record a problem with the proxy at `url`, once per proxy."""
        if url not in self._reported:
            self._reported.add(url)
            self.problems.append(problem)
            self.warn(problem)

    def integrity_problems(self, scenario: Scenario, windows: list[PhaseWindow]) -> list[str]:
        """Every problem of the run: those seen while it ran, then what the recorded data
        shows (the scenario cut short, users never reached, gaps). Called once, by gather."""
        plan = self.plan
        if plan is None:  # the scenario was never scheduled (interrupted in the warm-up)
            return list(self.problems)
        stopped = self.load_stopped or self.clock.time()
        until = min(stopped, self.end or stopped)
        if self.load_lost_at is not None:  # a dead Locust's last counts were never written
            until = min(until, self.load_lost_at, self.client.last_report or until)
        halted_at = float(self.halted["at"]) if self.halted else None
        found = list(self.problems)
        for url, events in self.events.items():
            if url not in self._reported:
                found += integrity.cut_short(url, scenario.name, events, plan, stopped, halted_at)
        found += integrity.users_short(plan, windows, self.client.users_at, until)
        found += integrity.gaps(plan, windows, self.client.seconds, self.client.users_at, until)
        return found

    def windows(self, scenario: Scenario, end: float) -> list[PhaseWindow]:
        first = self.clients[0].url
        return align.phase_windows(self.events.get(first, []), scenario, end)

    async def stop_scenarios(self) -> list[str]:
        problems = []
        for c in self.clients:
            try:
                await c.stop()
            except ChaosProxyError as e:
                problems.append(str(e))
        return problems

    # ------------------------------------------------------------ the end

    async def _wind_down(self, why: str) -> None:
        """Always: stop the load, then leave every proxy with no scenario running."""
        if self.lifecycle.can(State.STOPPING):
            self.lifecycle.to(State.STOPPING, why)
            self.load_stopped = self.lifecycle.history[-1].at
        else:  # never in a run that goes by the lifecycle; still stop everything
            self.load_stopped = self.clock.time()
        self.hooks.test_stopping.fire(run=self, reason=why)
        if self.load is not None:
            await self.load.stop()
        if self.clients:
            for problem in await self.stop_scenarios():
                self.notes.append(f"could not stop the scenario: {problem}")
                self.warn(f"could not stop the scenario: {problem}")
        self.hooks.test_stop.fire(run=self)

    def _reports(self) -> None:
        from chaosproxy.experiment.report import write_reports

        try:
            write_reports(self.out)
        except Exception as e:  # a report is evidence, not the verdict: never lose the run
            self.warn(f"could not write the reports: {e}")


def _failure(e: BaseException) -> str:
    """A failure in a few words, for the state history."""
    if isinstance(e, asyncio.CancelledError):
        return "cancelled"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    text = str(e).strip().splitlines()
    what = text[0] if text else ""
    if isinstance(e, ChaosProxyError):
        return what or type(e).__name__
    return f"{type(e).__name__}: {what}" if what else type(e).__name__


def _log_note(child: Child, who: str = "") -> str:
    tail = child.tail()
    where = f"{who or child.name}'s log ({child.log})"
    return f"{where} ends:\n{tail}" if tail else f"{where} is empty"


def _interrupted(code: int | None) -> bool:
    """Ended by Ctrl-C (SIGINT, or the shell's 130 for it)."""
    return code in (-signal.SIGINT, 128 + signal.SIGINT)


def _worker_files(exp: Experiment) -> str:
    from chaosproxy.experiment.processes import LOADGEN, locustfile

    return f"{locustfile(exp)},{LOADGEN / 'plugin.py'}"


async def _check_reachable(url: str) -> None:
    u = yarl.URL(url)
    host, port = u.host or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
    except (OSError, TimeoutError) as e:
        raise SetupError(
            f"the target {url} is unreachable: {e.strerror or e or 'timed out'}"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def run_experiment(exp: Experiment, opts: RunOptions) -> Outcome:
    """Run one experiment to its verdict. SetupError (exit 2) when it cannot start."""
    return await ExperimentRun(exp, opts).execute()


__all__ = ["COOLDOWN", "Outcome", "RunOptions", "SetupError", "run_experiment"]
