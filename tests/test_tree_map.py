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
    "faults/grpc_abort.py": "tests/proxy/h2/test_grpc_faults.py — a gRPC status is only seen "
    "by a real grpcio client over HTTP/2",
    "faults/stream_reset.py": "tests/proxy/h2/test_grpc_faults.py — RST_STREAM is only seen "
    "by a real HTTP/2 client",
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
