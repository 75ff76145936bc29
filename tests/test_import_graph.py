"""The import graph of the package, held by a test: every package of chaosproxy names the
packages it may import, so an import that runs up a layer fails here, with the module and the
import named. Imports under `if TYPE_CHECKING:` and inside functions count too: a type-only
import up a layer is still a dependency a reader has to follow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chaosproxy"

# Each part of the package and what it may import besides itself, bottom to top. `common` is the
# leaves; the experiment side sits beside the proxy side and reaches proxies only over the admin
# API (its typed client). `cli` is the top: it may import everything.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "config": {"common", "faults"},  # the loader asks the fault registry to check parameters
    "faults": {"common"},
    "observe": {"common", "faults"},  # metrics read fault gauges at scrape time
    "engine": {"common", "config", "faults", "observe"},
    "proxy": {"common", "config", "engine", "faults"},
    "tcp": {"common", "config", "engine", "faults", "observe"},
    "admin": {"common", "config", "engine", "faults", "observe"},
    "toxiproxy": {"common", "config", "engine", "faults", "tcp", "admin"},
    "process": {
        "native",  # the startup log says whether the compiled path runs
        "common",
        "config",
        "engine",
        "faults",
        "observe",
        "proxy",
        "tcp",
        "admin",
        "toxiproxy",
    },
    "demo": {"common"},
    "workers": {
        "common",
        "config",
        "engine",
        "faults",
        "observe",
        "proxy",
        "tcp",
        "admin",
        "process",
    },
    # the experiment side checks `proxy.args` with the run options' own parser and declarations
    "experiment": {
        "common",
        "config",
        "engine",
        "faults",
        "observe",
        "admin",
        "process.run_flags",
        "process.settings",
        "process.options",
        "process.option_values",
    },
    "cli": {"*"},
    # The loader of the compiled per-request path imports nothing of the package (it hashes its
    # sources); the package's root installs it first, before any module of that path loads.
    "native": set(),
    "native_build": {"native"},
    "__init__": {"native"},
    "__main__": {"cli"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_modules(path: Path) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "chaosproxy":  # `from chaosproxy import x`: a module, or the root's
                names = [
                    f"chaosproxy.{a.name}"
                    if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                    else "chaosproxy.__init__"
                    for a in node.names
                ]
        for n in names:
            if n.startswith("chaosproxy."):
                found.add((node.lineno, n.removeprefix("chaosproxy.")))
    return found


def _allowed(mine: str, module: str) -> bool:
    other = module.split(".")[0]
    allowed = ALLOWED.get(mine, set())
    return (
        other in (mine, "__init__")
        or "*" in allowed
        or other in allowed
        or any(module == a or module.startswith(a + ".") for a in allowed if "." in a)
    )


def test_every_part_of_the_package_is_placed_in_the_graph() -> None:
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts - set(ALLOWED) == set()


def test_no_import_runs_up_a_layer() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = _part(path)
        for line, module in sorted(_imported_modules(path)):
            if not _allowed(mine, module):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert offenders == []


def test_the_allowed_graph_itself_has_no_cycle() -> None:
    seen: dict[str, int] = {}

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, " -> ".join((*stack, node))
        if seen.get(node) == 2:
            return
        for nxt in {a.split(".")[0] for a in ALLOWED.get(node, set()) - {"*"}} - {node}:
            visit(nxt, (*stack, node))
        seen[node] = 2

    for part in ALLOWED:
        visit(part, ())
