"""`chaosproxy experiment run`: replay a scenario under Locust load and judge the checks.

The order of one run: (1) start or reach the proxies, upload the scenario; (2) start Locust at
the warm-up load and wait until it holds; (3) schedule the scenario on every proxy for the same
whole second and follow the load plan; (4) each second: progress line, live `halt` checks,
and a watch on Locust and the proxies (one that dies or goes silent is a problem: the run did
not go as planned, `integrity.py`; a dead Locust master or started proxy ends the run);
(5) stop load, stop the scenario (always, also on error or Ctrl-C), collect both views and the
proxy's phase boundaries, add what the data shows went against the plan, judge, write the
results; (6) stop a proxy the runner started.

Here: the order of a run; its state and bookkeeping (and the watch on Locust and the proxies)
are `run_state.py`. Its states and events (preparing → warming_up → running → [halted] →
stopping → gathering → done, `test_start`, `tick`, `test_stopping`, `test_stop`) and its
injected clock are `lifecycle.py`; what it shows is a listener (`live.Console`). The load plan
is `plan.py`, step (4)'s live checks and progress line `live.py`, step (5) `finish.py`.

`open_admins`, `launch_load` and `check_target` are where a run meets the world (processes,
sockets): a test overrides them, with a fake `RunOptions.clock`, to drive a whole run without
Locust (`tests/experiment/test_lifecycle.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from chaosproxy.admin.client import AdminClient, AdminError, Unreachable
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.dump import scenario_to_yaml
from chaosproxy.config.model import Scenario
from chaosproxy.experiment import integrity
from chaosproxy.experiment.finish import finish, original_text
from chaosproxy.experiment.lifecycle import State
from chaosproxy.experiment.live import check_halts, refresh_proxy_view
from chaosproxy.experiment.model import Experiment
from chaosproxy.experiment.outcome import PASS
from chaosproxy.experiment.plan import load_cohort, plan_stages, write_plan
from chaosproxy.experiment.processes import Load, SetupError, start_load, start_proxy
from chaosproxy.experiment.run_state import RunOptions, RunState
from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario


@dataclass
class Outcome:
    exit_code: int
    out: Path
    verdict: str | None
    results: dict[str, Any] | None = None


class ExperimentRun(RunState):
    """One experiment run in order; `execute()` does it and returns the exit code."""

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
            if self.opts.on_proxy is not None:
                self.opts.on_proxy(self.proxy)
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

    async def _tick_wait(self) -> None:
        """Sleep to just after the next whole second (or until interrupted)."""
        await self.clock.sleep_until(math.floor(self.clock.time()) + 1.2, self.stop_event)

    async def _wind_down(self, why: str) -> None:
        """Always: stop the load, then leave every proxy with no scenario running."""
        if self.lifecycle.can(State.STOPPING):
            self.lifecycle.to(State.STOPPING, why)
            self.load_stopped = self.lifecycle.history[-1].at
        else:  # never in a run that goes by the lifecycle; still stop everything
            self.load_stopped = self.clock.time()
        self.hooks.test_stopping.fire(run=self, reason=why)
        if self.load is not None:
            await self.load.stop(planned_end=self.end is not None and self.clock.time() >= self.end)
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
