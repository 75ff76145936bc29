"""The state of one experiment run and its bookkeeping: what the run has set up (proxies, load,
cursors into each proxy's events), what it has seen go against the plan while it ran, and the
problems read off the data afterwards (`integrity.py` builds the sentences).

The watch on the world lives here because every step of the run reads and writes the same
fields: a Locust process or a started proxy that exits, a proxy that goes silent or comes back
as another instance, each reported once (`_reported`). The order of the run is `runner.py`
(`ExperimentRun` extends this class); what the gathering reads of it is `finish.py`.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chaosproxy.admin.client import AdminClient, Unreachable
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.model import Scenario
from chaosproxy.experiment import align, integrity
from chaosproxy.experiment.lifecycle import REAL_CLOCK, Clock, Lifecycle, RunEvents, State
from chaosproxy.experiment.live import Console
from chaosproxy.experiment.model import Experiment
from chaosproxy.experiment.processes import Child, Load, SetupError, StartedProxy
from chaosproxy.experiment.series import PhaseWindow, View


@dataclass
class RunOptions:
    """How to run an experiment, from the command line: where results go, Locust workers,
    the seed, the admin token, where progress is shown, and the clock."""

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
    # Called with the experiment's own proxy once it answers, before the target is checked:
    # a harness that builds the system around the proxy learns its bound address here.
    on_proxy: Callable[[StartedProxy], None] | None = None


def default_out(exp: Experiment) -> Path:
    """reports/<experiment>-<local time>: a new directory per run, sorted by when it ran."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{exp.name}-{stamp}"


class RunState:
    """The state of one experiment run, and the bookkeeping every step of it shares."""

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

    def say(self, text: str) -> None:
        self.hooks.message.fire(run=self, text=text)

    def warn(self, text: str) -> None:
        self.hooks.warning.fire(run=self, text=text)

    def _interrupt(self) -> str:
        self.interrupted = True
        self.lifecycle.to(State.INTERRUPTED)
        return "interrupted"

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


def _log_note(child: Child, who: str = "") -> str:
    tail = child.tail()
    where = f"{who or child.name}'s log ({child.log})"
    return f"{where} ends:\n{tail}" if tail else f"{where} is empty"


def _interrupted(code: int | None) -> bool:
    """Ended by Ctrl-C (SIGINT, or the shell's 130 for it)."""
    return code in (-signal.SIGINT, 128 + signal.SIGINT)
