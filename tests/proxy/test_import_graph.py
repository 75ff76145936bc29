"""The proxy's import graph, read from the source: two halves and what they share.

`downstream/` (the client-facing server) may import `upstream/` (the service-facing client) and
`wire/` (what both speak); `upstream/` may import `wire/`; nothing imports back, and no import
inside the proxy closes a circle — counting imports under `if TYPE_CHECKING:` and inside
functions, which a type-level circle hides from a plain import but not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROXY = Path(__file__).resolve().parents[2] / "chaosproxy" / "proxy"
Graph = dict[str, set[str]]


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def import_graph(root: Path, package: str) -> Graph:
    """Every module under `root` (the package `package`) → the modules of that package it
    imports anywhere in its source: top level, `if TYPE_CHECKING:`, function bodies."""
    paths = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    graph: Graph = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One circle of imports (its modules, the first repeated at the end), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def layer_violations(graph: Graph, package: str) -> list[str]:
    """Imports that point back or sideways: `wire/` may import only `wire/`, `upstream/` only
    `upstream/` and `wire/` (so neither reaches `downstream/`, nor anything else of the proxy)."""
    up, wire = f"{package}.upstream", f"{package}.wire"

    def under(name: str, *prefixes: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    bad = []
    for src, targets in sorted(graph.items()):
        allowed = (wire,) if under(src, wire) else (up, wire) if under(src, up) else None
        if allowed is not None:
            bad += [f"{src} -> {dst}" for dst in sorted(targets) if not under(dst, *allowed)]
    return bad


def test_the_proxy_is_two_halves_and_a_shared_wire() -> None:
    graph = import_graph(PROXY, "chaosproxy.proxy")
    children = {n.split(".")[2] for n in graph if n.count(".") >= 2}
    assert {"downstream", "upstream", "wire"} <= children
    # No module lies loose beside them: the package holds subpackages only.
    assert {n for n in graph if n.count(".") == 2} <= {
        "chaosproxy.proxy.downstream",
        "chaosproxy.proxy.upstream",
        "chaosproxy.proxy.wire",
        "chaosproxy.proxy.h2",  # HTTP/2 and gRPC, beside the halves
    }


def test_no_import_inside_the_proxy_closes_a_circle() -> None:
    assert find_cycle(import_graph(PROXY, "chaosproxy.proxy")) is None


def test_imports_point_downstream_to_upstream_to_wire_never_back() -> None:
    graph = import_graph(PROXY, "chaosproxy.proxy")
    assert layer_violations(graph, "chaosproxy.proxy") == []
    # The graph is really read: the downstream half does use the other two.
    edges = {(s.split(".")[2], d.split(".")[2]) for s, ds in graph.items() for d in ds if "." in d}
    assert {("downstream", "upstream"), ("downstream", "wire"), ("upstream", "wire")} <= edges


# ---------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "closing",
    [
        "from pkg.downstream.a import A\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.downstream import a\n",
        "def late() -> None:\n    from .a import A\n",
    ],
    ids=["top-level", "type-checking", "in-a-function"],
)
def test_a_circle_is_found_however_its_last_import_is_written(tmp_path: Path, closing: str) -> None:
    _write(
        tmp_path,
        {
            "__init__.py": "",
            "downstream/__init__.py": "",
            "downstream/a.py": "from pkg.downstream.b import B\n",
            "downstream/b.py": closing,
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert find_cycle(graph) == ["pkg.downstream.a", "pkg.downstream.b", "pkg.downstream.a"]
    closing_free = {**graph, "pkg.downstream.b": set()}
    assert find_cycle(closing_free) is None


def test_an_import_pointing_back_is_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "__init__.py": "",
            "downstream/__init__.py": "",
            "downstream/core.py": "from pkg.upstream import client\n",
            "upstream/__init__.py": "",
            "upstream/client.py": "from pkg.wire.flow import F\nfrom pkg.downstream import core\n",
            "wire/__init__.py": "",
            "wire/flow.py": "from ..upstream.client import C\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert layer_violations(graph, "pkg") == [
        "pkg.upstream.client -> pkg.downstream.core",
        "pkg.wire.flow -> pkg.upstream.client",
    ]
