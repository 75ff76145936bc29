"""The test tree mirrors the package: `chaosproxy/a/b.py` is tested in `tests/a/test_b.py`, or
it is listed below with the test files that cover it and why there is no file of its own. A
new module without either fails here, and so does a stale entry (a module gone, or one that now
has its same-path test)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chaosproxy"

# module (relative to chaosproxy/) -> where it is tested instead, and why not on its own path.
ELSEWHERE: dict[str, str] = {
    "native_build.py": "tests/test_native.py — the build is what `make` runs before every "
    "suite; its test is that the build it made is loaded, and a stale one never is",
    "admin/control.py": "tests/admin/test_scenarios.py tests/admin/test_rules.py "
    "tests/admin/test_guards.py — what the routes do, driven through the real admin API, where "
    "its ApiError statuses are what a client sees",
    "admin/declare.py": "tests/admin/test_routes.py — a declaration is checked by everything "
    "derived from it: both routers, the OpenAPI document, the client, ctl and the docs",
    "admin/errors.py": "tests/admin/test_request_ids.py tests/admin/test_safety.py — an ApiError "
    "is only ever seen rendered by the error middleware: JSON shape, details, request id",
    "admin/handlers.py": "tests/admin/test_routes.py tests/admin/test_safety.py — HTTP glue, "
    "each handler reached through the router with good and hostile input",
    "admin/openapi.py": "tests/admin/test_routes.py tests/admin/test_app.py — the document is "
    "checked against the declarations and as served",
    "admin/plane.py": "tests/admin/test_thread.py tests/admin/test_app.py — the wiring every "
    "admin test runs on, in both admin placements",
    "cli/demo_text.py": "tests/cli/test_demo.py — what `chaosproxy demo` prints, read in "
    "its output",
    "demo/grpc_support.py": "tests/demo/test_grpc_service.py tests/demo/test_grpc_gateway.py "
    "— the grpcio every gRPC demo module runs on (its missing-extra error needs no grpcio)",
    "demo/grpc_system.py": "tests/experiment/test_grpc_e2e.py — the gRPC demo system the "
    "real runs are made on, its gateways pointed at each run's proxy",
    "cli/run.py": "tests/cli/test_run_cli.py tests/cli/test_first_use.py — `chaosproxy run` "
    "as a user runs it, in a subprocess",
    "config/includes.py": "tests/config/test_loader.py tests/config/test_bundled.py — include "
    "and presets are read by the loader, errors located in the included file",
    "config/match_spec.py": "tests/config/test_loader.py tests/config/test_match_cohort.py "
    "tests/engine/test_matching.py — the `match:` grammar read by the loader and then matched",
    "config/model.py": "tests/config/test_loader.py — frozen dataclasses with no logic, built "
    "only by the loader",
    "config/scenario_dir.py": "tests/config/test_loader.py tests/admin/test_scenarios.py — "
    "names and files resolved as the loader and the admin API resolve them (symlinks too)",
    "config/schema.py": "tests/config/test_bundled.py tests/config/test_keys.py "
    "tests/config/test_docs_examples.py — the schema is valid and agrees with the loader",
    "engine/adhoc.py": "tests/admin/test_rules.py tests/engine/test_decide.py "
    "tests/engine/test_cohort.py — ad-hoc rules through the engine and the admin API",
    "engine/core.py": "tests/engine/test_timeline.py tests/engine/test_reload.py "
    "tests/engine/test_decide.py — the engine is the sum of its parts, each tested on its path",
    "engine/rule_match.py": "tests/engine/test_decide.py — the filter and the seeded draw, "
    "seen in the decisions they make",
    "faults/base.py": "tests/faults/test_params.py tests/faults/test_error.py — the interface "
    "every fault test runs through (tests/faults/fakes.py is its exchange)",
    "faults/tcp/bandwidth.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/base.py": "tests/tcp/test_faults.py tests/tcp/test_rules.py — the TCP fault "
    "interface and registry, through rules and a real relay",
    "faults/tcp/half_open.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/latency.py": "tests/tcp/test_faults.py tests/tcp/test_rules.py — each TCP "
    "fault through a real relay",
    "faults/tcp/limit_data.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/plan.py": "tests/tcp/test_faults.py — the plan is read off the relay's pipes",
    "faults/tcp/refused.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/reset.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/slicer.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/slow_close.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "faults/tcp/timeout.py": "tests/tcp/test_faults.py — each TCP fault through a real relay",
    "observe/blast_radius.py": "tests/observe/test_stats_cohorts.py "
    "tests/observe/test_cohorts_e2e.py — who a run touched, read from /stats/clients",
    "process/options.py": "tests/process/test_run_flags.py — declarations on a throwaway "
    "dataclass, read back as flags, variables, help and docs",
    "process/settings.py": "tests/process/test_run_flags.py tests/cli/test_run_cli.py — the "
    "declared options, checked as a user meets them",
    "process/startup.py": "tests/cli/test_first_use.py — startup failures told by the real "
    "CLI, each naming its flag or file",
    "proxy/downstream/core.py": "tests/proxy/test_errors.py tests/proxy/test_request_targets.py "
    "tests/proxy/test_inflight.py — the per-request path, seen by real clients through a real "
    "listener: its answers, refusals and in-flight counting",
    "proxy/downstream/exchange_base.py": (
        "tests/proxy/test_errors.py tests/proxy/h2/test_grpc_faults.py — the half of the "
        "faults' Exchange both protocols share, exercised by the fault and error tests of each"
    ),
    "proxy/downstream/exchange.py": "tests/proxy/test_fidelity.py tests/proxy/test_errors.py "
    "tests/proxy/downstream/test_pipeline.py — the bytes a client receives, and the pipeline "
    "the exchange drives",
    "proxy/downstream/request.py": "tests/proxy/test_request_targets.py "
    "tests/proxy/test_hostile_third_round.py tests/proxy/downstream/test_listener.py — the "
    "request view and body as the listener builds them from real sockets",
    "proxy/downstream/responses.py": "tests/proxy/test_errors.py "
    "tests/proxy/downstream/test_limits.py — the proxy's own answers, as clients read them",
    "proxy/h2/core.py": "tests/proxy/h2/test_grpc_faults.py tests/proxy/h2/test_curl.py — the "
    "per-stream path (decide, faults, events), seen by real grpcio and curl clients",
    "proxy/h2/exchange.py": "tests/proxy/h2/test_grpc_faults.py — the faults' Exchange over a "
    "stream, each fault seen as the status a real grpcio client reads",
    "proxy/h2/limits.py": "tests/proxy/h2/test_hostile_h2.py — each bound driven past by a "
    "frame-level client over a real socket, a well-behaved client served meanwhile",
    "proxy/h2/forward.py": "tests/proxy/h2/test_grpc_passthrough.py tests/proxy/h2/test_curl.py "
    "— forwarding both ways, checked against the same requests straight to the upstream",
    "proxy/upstream/connection.py": "tests/proxy/upstream/test_client.py — one connection of "
    "the client, against raw asyncio upstreams",
    "proxy/upstream/interface.py": "tests/proxy/upstream/test_client.py — protocols, checked "
    "by mypy against the client; their behaviour is the client's",
    "proxy/upstream/pool.py": "tests/proxy/upstream/test_client.py — the pool under the "
    "client: reuse, waiting order, stale connections, the cap",
    "proxy/upstream/response.py": "tests/proxy/upstream/test_client.py "
    "tests/proxy/test_hostile_upstreams.py — the parser state of each exchange, driven by "
    "upstreams that misbehave",
    "proxy/upstream/tunnel.py": "tests/proxy/downstream/test_websocket.py — an upgrade's "
    "connection, relayed to real WebSocket clients and servers",
    "proxy/wire/flow.py": "tests/proxy/test_hostile_third_round.py tests/proxy/test_streaming.py "
    "— write flow control, seen as clients and upstreams that stop reading",
    "tcp/listener.py": "tests/tcp/test_relay.py tests/tcp/test_registry.py — a listener is "
    "seen through its connections and the registry that owns it",
    "tcp/metrics.py": "tests/tcp/test_runtime.py — the series as scraped from /metrics",
    "tcp/pipe.py": "tests/tcp/test_relay.py tests/tcp/test_faults.py — one direction of a "
    "relay, through real sockets with and without faults",
    "toxiproxy/app.py": "tests/toxiproxy/test_api_shapes.py tests/toxiproxy/test_peer_suite.py "
    "— every route against the real Toxiproxy's answers and its own client tests",
    "toxiproxy/errors.py": "tests/toxiproxy/test_api_shapes.py tests/toxiproxy/test_translate.py "
    "— error bodies compared with the real Toxiproxy's",
    "toxiproxy/model.py": "tests/toxiproxy/test_api_shapes.py tests/toxiproxy/test_translate.py "
    "— JSON shapes compared with the real Toxiproxy's",
    "toxiproxy/state.py": "tests/toxiproxy/test_traffic.py tests/toxiproxy/test_api_shapes.py "
    "— what each call does, seen on real TCP traffic",
    "workers/child.py": "tests/workers/test_run_workers.py — a worker only exists as a "
    "subprocess of `run --workers`",
    "workers/fanout.py": "tests/workers/test_relay.py tests/workers/test_run_workers.py — the "
    "supervisor's calls to its workers, through its relay and real workers",
    "workers/supervisor.py": "tests/workers/test_run_workers.py tests/workers/test_merge.py — "
    "`run --workers` with real worker processes, and the merging of their answers",
    "experiment/estimate.py": (
        "tests/experiment/test_verdict.py — every estimate is asserted as the verdict decides on "
        "it (window, interval, metric); tests/experiment/test_inference.py holds the statistics "
        "underneath"
    ),
    "experiment/false_alarm.py": (
        "tests/experiment/test_verdict.py — the false-alarm resampling is asserted on judged "
        "synthetic runs (add_false_alarms), with the verdict it qualifies"
    ),
    "experiment/finish.py": (
        "tests/experiment/test_lifecycle.py — gathering is the end of a whole run: replayed real "
        "runs go through it; tests/experiment/test_prom_series.py covers its prometheus_series, "
        "tests/experiment/test_run_e2e.py real runs"
    ),
    "experiment/halts.py": (
        "tests/experiment/test_verdict.py — live halt checks (live_breach) judged on synthetic "
        "series; tests/experiment/test_control.py for the control-group halt, "
        "tests/experiment/test_live.py each second of a replayed run"
    ),
    "experiment/loadgen/locustfile.py": (
        "tests/experiment/test_run_e2e.py — Locust loads it in a real subprocess (importing it "
        "here would gevent-patch the test process); tests/experiment/test_p95_exact_e2e.py too"
    ),
    "experiment/model.py": (
        "tests/experiment/test_spec.py — plain frozen dataclasses built by the reader; what they "
        "hold is asserted where the file is read"
    ),
    "experiment/numbers.py": (
        "tests/experiment/report/test_html.py — one formatter for every report: asserted as the "
        "tables and axes read (test_a_ratio_reads_one_way_in_tables_and_on_axes), and in "
        "tests/experiment/report/test_markdown.py"
    ),
    "experiment/outcome.py": (
        "tests/experiment/test_verdict.py — CheckResult/Verdict are what judge returns; asserted "
        "there and in tests/experiment/test_results.py (the console table)"
    ),
    "experiment/phase_check.py": (
        "tests/experiment/test_verdict.py — during_phase and compare_to checks judged on "
        "synthetic series (its PASS/FAIL/INCONCLUSIVE cases); tests/experiment/test_control.py "
        "for compare_to: control"
    ),
    "experiment/recovery.py": (
        "tests/experiment/test_verdict.py — time to recover (after_phase/within/for) asserted "
        "through judge and recovery() on synthetic series"
    ),
    "experiment/rejudge.py": (
        "tests/experiment/test_judge_e2e.py — `experiment judge` on a real saved run; "
        "tests/experiment/test_control.py and tests/experiment/test_control_report.py for cohort "
        "series"
    ),
    "experiment/report/chart_checks.py": (
        "tests/experiment/report/test_svg_chart.py — bounds, recoveries and whiskers are asserted"
        " where they are drawn (data- attributes of report.html)"
    ),
    "experiment/report/chart_kinds.py": (
        "tests/experiment/report/test_svg_chart.py — which charts and series exist is asserted on"
        " the drawn page; tests/experiment/test_report_browser.py in a real Chromium"
    ),
    "experiment/report/chart_model.py": (
        "tests/experiment/report/test_svg_chart.py — plain dataclasses between the chart kinds "
        "and the drawing; nothing to assert on their own"
    ),
    "experiment/report/check_text.py": (
        "tests/experiment/report/test_markdown.py — a check's value, bound, margin and time to "
        "recover asserted as every report writes them; tests/experiment/report/test_html.py, "
        "tests/experiment/test_results.py"
    ),
    "experiment/report/cohort_charts.py": (
        "tests/experiment/test_control_report.py — both cohorts side by side on every per-second "
        "chart, asserted on the drawn page"
    ),
    "experiment/report/false_alarm_text.py": (
        "tests/experiment/report/test_html.py — the false-alarm line near the verdict and per "
        "check (test_the_false_alarm_estimate_sits_near_the_verdict); "
        "tests/experiment/test_results.py for the console"
    ),
    "experiment/report/fmt.py": (
        "tests/experiment/report/test_html.py — values and intervals asserted as the tables write"
        " them (open side, ratios); tests/experiment/report/test_markdown.py, "
        "tests/experiment/test_results.py"
    ),
    "experiment/report/instants.py": (
        "tests/experiment/test_report_browser.py — times of day, offsets and event details "
        "asserted as read in the page "
        "(test_events_read_as_times_and_offsets_never_raw_epochs_or_none)"
    ),
    "experiment/report/not_reached.py": (
        "tests/experiment/test_results.py — NOT REACHED after a halt, in the console table; "
        "tests/experiment/test_report_browser.py in the page"
    ),
    "experiment/report/results_dir.py": (
        "tests/experiment/report/test_html.py — a results directory read as the reports read it: "
        "malformed parts, unknown schema, missing results"
    ),
    "experiment/report/run_seed.py": (
        "tests/experiment/test_report_browser.py — the seed shown is the one the scenario ran "
        "with (test_the_seed_shown_is_the_one_the_scenario_ran_with)"
    ),
    "experiment/report/svg_layout.py": (
        "tests/experiment/report/test_svg_chart.py — scales, ticks and label placement asserted "
        "on the drawn SVG; tests/experiment/test_report_browser.py checks no label prints over "
        "another"
    ),
    "experiment/runner.py": (
        "tests/experiment/test_lifecycle.py — whole runs driven through the real ExperimentRun on"
        " recorded runs with a fake clock; tests/experiment/test_run_e2e.py real runs"
    ),
    "experiment/schema.py": (
        "tests/experiment/test_spec.py — the JSON Schema is asserted to agree with the reader on "
        "the same files"
    ),
    "experiment/series.py": (
        "tests/experiment/test_align.py — Second/View/PhaseWindow are what collection fills; "
        "asserted there and in tests/experiment/test_verdict.py"
    ),
    "experiment/spec_checks.py": (
        "tests/experiment/test_spec.py — the checks: grammar read with the rest of the experiment"
        " file (every problem located); tests/experiment/test_control_spec.py for compare_to: "
        "control"
    ),
}


def _modules() -> list[str]:
    return sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )


def _same_path_test(module: str) -> Path:
    rel = Path(module)
    return ROOT / "tests" / rel.parent / f"test_{rel.stem}.py"


def test_every_module_has_its_same_path_test_or_says_where_it_is_tested() -> None:
    missing = [m for m in _modules() if not _same_path_test(m).exists() and m not in ELSEWHERE]
    assert missing == []


def test_the_list_of_modules_tested_elsewhere_is_not_stale() -> None:
    modules = set(_modules())
    stale = [m for m in ELSEWHERE if m not in modules or _same_path_test(m).exists()]
    assert stale == []


def test_each_module_tested_elsewhere_names_test_files_that_exist() -> None:
    bad = []
    for module, where in ELSEWHERE.items():
        named = [w for w in where.split() if w.startswith("tests/") and w.endswith(".py")]
        if not named or not all((ROOT / w.rstrip(",;:")).exists() for w in named):
            bad.append(module)
    assert bad == []
