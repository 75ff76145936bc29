"""Imports point down: the proxy core never imports the experiment side (nor Locust/gevent)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chaosproxy"
CORE = [
    "proxy",
    "engine",
    "faults",
    "admin",
    "config",
    "workers",
    "process/runtime.py",
    "observe/stats.py",
    "observe/metrics.py",
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_core_module_imports_the_experiment_side() -> None:
    offenders = []
    for part in CORE:
        target = PACKAGE / part
        for path in [target] if target.is_file() else sorted(target.rglob("*.py")):
            bad = {
                n
                for n in _imports(path)
                if n.startswith(("chaosproxy.experiment", "locust", "gevent"))
            }
            if bad:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {sorted(bad)}")
    assert offenders == []


def test_starting_a_proxy_loads_nothing_of_the_experiment_side() -> None:
    code = (
        "import sys, chaosproxy.process.runtime, chaosproxy.cli.run, chaosproxy.cli.ctl; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('locust', 'gevent') or m.startswith('chaosproxy.experiment')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_leaf_modules_import_nothing_else_of_the_package() -> None:
    for leaf in ("chaosproxy.common.events", "chaosproxy.common.units", "chaosproxy.common.ids"):
        loaded = _fresh(
            f"import sys, {leaf}; "
            "print(sorted(m for m in sys.modules if m.startswith('chaosproxy.')))"
        )
        # (chaosproxy.native: the package's root installs the compiled path's loader first)
        assert loaded == f"['chaosproxy.common', {leaf!r}, 'chaosproxy.native']", leaf


def test_event_listeners_import_first_without_pulling_in_the_engine() -> None:
    for module in (
        "chaosproxy.observe.stats",
        "chaosproxy.observe.retry_after",
        "chaosproxy.observe.metrics",
    ):
        loaded = _fresh(f"import sys, {module}; print('chaosproxy.engine.core' in sys.modules)")
        assert loaded == "False", module


def test_the_admin_side_sees_the_control_plane_not_the_runtime_or_the_data_plane() -> None:
    offenders = [
        f"{path.name}: {sorted(bad)}"
        for path in sorted((PACKAGE / "admin").glob("*.py"))
        if (
            bad := {
                n
                for n in _imports(path)
                if n.startswith(("chaosproxy.process.runtime", "chaosproxy.proxy"))
            }
        )
    ]
    assert offenders == []


def test_core_modules_never_import_the_cli() -> None:
    offenders = []
    for part in CORE:
        target = PACKAGE / part
        for path in [target] if target.is_file() else sorted(target.rglob("*.py")):
            if bad := {n for n in _imports(path) if n.split(".")[:2] == ["chaosproxy", "cli"]}:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {sorted(bad)}")
    assert offenders == []


def test_faults_see_the_exchange_protocol_never_the_proxy() -> None:
    """Faults act through `faults.base.Exchange`; the proxy implements it, and runs the hook
    pipeline (`proxy/downstream/pipeline.py`) that plays what they register."""
    offenders = [
        f"{path.name}: {sorted(bad)}"
        for path in sorted((PACKAGE / "faults").glob("*.py"))
        if (bad := {n for n in _imports(path) if n.startswith("chaosproxy.proxy")})
    ]
    assert offenders == []


def test_core_paths_exist() -> None:
    """A path of `CORE` that moved would silently check nothing."""
    assert [part for part in CORE if not (PACKAGE / part).exists()] == []


def test_the_workers_control_side_does_not_reach_into_the_data_plane() -> None:
    """The supervisor, its relay and merging talk to workers over their admin APIs; only the
    worker process itself (`child.py`) runs a proxy."""
    offenders = [
        f"{path.name}: {sorted(bad)}"
        for path in sorted((PACKAGE / "workers").glob("*.py"))
        if path.name != "child.py"
        and (bad := {n for n in _imports(path) if n.startswith("chaosproxy.proxy")})
    ]
    assert offenders == []
