"""Step (5) of a run, after the load stopped: fetch the proxies' per-second series and the
Prometheus series, line them up with the client's view and the phase boundaries, judge the
checks (`verdict.judge`) and write timeseries.csv, series.jsonl (what `experiment judge` reads
again) and results.json."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from chaosproxy import __version__
from chaosproxy.admin.client import AdminClient
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.config.dump import scenario_to_yaml
from chaosproxy.config.model import Scenario
from chaosproxy.experiment import align, integrity, results
from chaosproxy.experiment.control import ClientRecord
from chaosproxy.experiment.rejudge import CLIENTS, SERIES, SavedRun, judge_run, write_rows
from chaosproxy.experiment.series import PhaseWindow, View

if TYPE_CHECKING:
    from chaosproxy.experiment.prom_series import PromSeries
    from chaosproxy.experiment.run_state import RunState

RING = 900  # seconds the proxy keeps per-second stats: fetch in chunks no longer than this


async def finish(run: RunState, scenario: Scenario, scenario_text: str) -> dict[str, Any]:
    """After the load: both views and the phase boundaries into per-second rows, judged;
    timeseries.csv and results.json written. The results document."""
    ended = run.clock.time()
    await run.poll_events()
    run.client.poll()
    # Whole seconds only: the one in which the load stopped is partial.
    first, last = int(run.started), int(run.load_stopped) - 1
    proxy_views: list[dict[int, View]] = []
    cohort_views: list[dict[int, dict[str, View]]] = []
    all_traffic = False
    for c in run.clients:
        try:
            series = await fetch_series(c, first, last + 1, run.run_id)
            mine = True
            if not any(r["requests"] for r in series):
                unfiltered = await fetch_series(c, first, last + 1, None)
                if any(r["requests"] for r in unfiltered):
                    series, all_traffic, mine = unfiltered, True, False
            views = align.proxy_views(series)
            if mine:  # faults on TCP connections are in the all-traffic rows only
                align.add_tcp_faults(views, await fetch_series(c, first, last + 1, None, False))
            proxy_views.append(views)
            cohort_views.append(align.proxy_cohort_views(series))
        except ChaosProxyError as e:
            run.notes.append(f"no proxy view from {c.url}: {e}")
            run.lost_proxy(c.url, integrity.no_series(c.url, e))
    if all_traffic:
        run.notes.append(
            "proxy view: all traffic through the proxy (the system under test does not "
            "pass X-Chaos-Run on to its calls)"
        )
    proxy = align.merge_views(proxy_views) if proxy_views else {}
    windows = run.windows(scenario, ended)
    run.scenario_end = windows[-1].end if windows else None
    prom_series = await prometheus_series(run, first, last)
    prom = {k: v.points for k, v in prom_series.items()}
    prom_lag = {k: v.lag for k, v in prom_series.items()}
    rows = align.build_rows(
        first,
        last,
        run.client.seconds,
        proxy,
        windows,
        prom,
        run.client.users_at,
        run.client.cohorts if run.client_cohorts_agree else {},
        align.merge_cohorts(cohort_views) if cohort_views else {},
    )
    clients = await fetch_clients(run, scenario, all_traffic)
    # Phases that never ran still appear (with no seconds), so checks can say so.
    ran = {w.name for w in windows}
    phases = list(windows) + [
        PhaseWindow(p.name, 0.0, 0.0, bool(p.rules) or bool(scenario.rules))
        for p in scenario.phases
        if p.name not in ran
    ]
    problems = run.integrity_problems(scenario, windows)
    verdict = judge_run(
        run.exp,
        SavedRun(
            rows,
            phases,
            halted=run.halted["check"] if run.halted else None,
            halted_at=float(run.halted["at"]) if run.halted else None,
            interrupted=run.interrupted,
            problems=problems,
            lags=prom_lag,
            clients=clients,
        ),
    )
    run.verdict = verdict
    write_rows(run.out, rows, run.exp, run.started)
    if clients is not None:
        results.write_json(run.out / CLIENTS, align.clients_to_json(clients))
    events = run.events.get(run.clients[0].url, []) if run.clients else []
    about = {
        "id": run.run_id,
        "started": run.started,
        "ended": ended,
        "scenario_started": run.scenario_at,
        "scenario_ended": run.scenario_end,
        "seed": run.seed,
        "workers": run.opts.workers,
        "remote_workers": run.opts.remote_workers,
        "target": run.target,
        "command": run.opts.command,
        "versions": versions(),
        # How the run went (lifecycle.py), with the run's clock: up to `gathering`, the state
        # in which this document is written.
        "states": run.lifecycle.to_json(),
    }
    files = {
        "timeseries": "timeseries.csv",
        "series": SERIES,  # every second of both views: `experiment judge` reads it
        "clients": CLIENTS if clients is not None else None,  # blast radius reads it
        # A long run may have rotated the journal: journal.jsonl.N are older lines.
        "journal": "journal.jsonl" if (run.out / "journal.jsonl").exists() else None,
        "journal_rotated": sorted(
            (p.name for p in run.out.glob("journal.jsonl.*")),
            key=lambda n: -int(n.rsplit(".", 1)[1]) if n.rsplit(".", 1)[1].isdigit() else 0,
        ),
        "locust": sorted(
            p.name for p in run.out.glob("locust*") if p.suffix in (".json", ".csv", ".log")
        ),
    }
    doc = results.results_document(
        run.exp,
        scenario_text,
        verdict,
        about,
        events,
        interrupted=run.interrupted,
        halted=run.halted,
        proxy_url=run.proxy.url if run.proxy else None,
        admins=[c.url for c in run.clients],
        files=files,
        notes=run.notes,
        problems=problems,
        prometheus_lag=prom_lag,
    )
    results.write_json(run.out / "results.json", doc)
    return doc


async def fetch_clients(
    run: RunState, scenario: Scenario, all_traffic: bool
) -> list[ClientRecord] | None:
    """Every proxy's per-client record of the run (`GET /stats/clients`), concatenated: what
    `blast_radius` reads (kept when the scenario has a control group too, so `experiment
    judge` can add such a check later). None when not asked for or a proxy has none to give
    (then a note, if a check needs it)."""
    from chaosproxy.config.match_spec import scenario_cohort

    needed = any(c.metric == "blast_radius" for c in run.exp.checks)
    if not needed and scenario_cohort(scenario) is None:
        return None
    out: list[ClientRecord] = []
    for c in run.clients:
        try:
            body = await c.call("GET", f"/stats/clients?run={run.run_id}")
        except ChaosProxyError as e:
            if needed:
                run.notes.append(f"no per-client record from {c.url}: {e}")
            return None
        if isinstance(body, dict) and body.get("truncated"):
            run.notes.append(f"{c.url}: the per-client record was truncated (too many clients)")
        out.extend(align.client_records(body))
    if needed and all_traffic:
        run.notes.append(
            "blast radius: the proxy's per-client record holds only requests carrying "
            "X-Chaos-Run, and the system under test does not pass it on"
        )
    return out


async def prometheus_series(run: RunState, first: int, last: int) -> dict[str, PromSeries]:
    """The series of each Prometheus check over seconds [first, last]: stale points dropped,
    with the query's lag (`prom_series.series_query`). What the verdict should know goes to
    `run.notes`: a failed query (then no points), points dropped as stale, a staleness check
    that could not run, and a range window that makes the first seconds of a phase lag."""
    checks = [c for c in run.exp.checks if c.prometheus is not None]
    if not checks:
        return {}
    from chaosproxy.experiment.prom_series import PromSeries, series_query
    from chaosproxy.experiment.promql import lag_seconds

    out: dict[str, PromSeries] = {}
    async with aiohttp.ClientSession() as session:
        for c in checks:
            assert c.prometheus is not None
            try:
                s = await series_query(session, c.prometheus.url, c.prometheus.query, first, last)
            except ChaosProxyError as e:
                run.notes.append(f"check {c.name!r}: {e}")
                s = PromSeries({}, lag_seconds(c.prometheus.query))
            out[c.name] = s
            run.notes.extend(prometheus_notes(c.name, s))
    return out


def prometheus_notes(name: str, s: PromSeries) -> list[str]:
    """Sentences for results.json `notes` about one Prometheus check's series."""
    notes = [f"check {name!r}: {n}" for n in s.notes]
    if s.stale_dropped:
        notes.append(
            f"check {name!r}: {s.stale_dropped} stale Prometheus point(s) dropped (their "
            "samples predate the run or stopped being scraped)"
        )
    if s.lag:
        notes.append(
            f"check {name!r}: the query reaches back {s.lag:g}s (its range window), so the "
            f"first {s.lag:g}s of each phase window read data from before it"
        )
    return notes


async def fetch_series(
    c: AdminClient, first: int, end: int, run: str | None, histograms: bool = True
) -> list[dict[str, Any]]:
    """The proxy's per-second rows for [first, end), in requests the ring can answer."""
    rows: list[dict[str, Any]] = []
    start = first
    while start < end:
        stop = min(end, start + RING)
        rows.extend(await c.timeseries(start, stop, run, histograms=histograms))
        start = stop
    return rows


def original_text(scenario: Scenario) -> str:
    """The scenario as its file has it (comments and all), else as dumped."""
    if scenario.source and not scenario.source.startswith("<"):
        with contextlib.suppress(OSError):
            return Path(scenario.source).read_text(encoding="utf-8")
    return scenario_to_yaml(scenario)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {
        "chaosproxy": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in ("locust", "aiohttp"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out
