"""The per-request path compiled to C (mypyc), used only when built from exactly these sources.

The modules in `MODULES` are what every proxied request runs through: the listener, the relay,
the upstream client, the decision, the stats. Compiled, an untouched request costs the proxy
about half the CPU (docs/performance.md). The same modules as Python are the reference and
complete: chaosproxy runs as pure Python wherever they were not built.

`python -m chaosproxy.native_build` (the Makefile runs it; it needs a C compiler and Python's
headers) compiles them into the environment, `<sys.prefix>/chaosproxy-native/`, never beside the
sources: an extension there would shadow its .py, and an edit would silently not run. Importing
chaosproxy loads them only when the manifest's hash of every compiled module's source matches
the file on disk and the Python is the one they were built for; otherwise (a source edited since
the build, no build, another interpreter) every module is Python. All or none: the compiled
modules call each other directly, so a Python module among them would not be the one that runs.
`CHAOSPROXY_PURE=1` forces pure Python; `python -m chaosproxy.native_build --status` says which
one runs.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "chaosproxy.common.events",
    "chaosproxy.common.ids",
    "chaosproxy.common.sketch",
    "chaosproxy.engine.compile",
    "chaosproxy.engine.core",
    "chaosproxy.engine.decide",
    "chaosproxy.engine.load_signals",
    "chaosproxy.engine.matching",
    "chaosproxy.engine.timeline",
    "chaosproxy.engine.unmatched",
    "chaosproxy.observe.metrics",
    "chaosproxy.observe.stats",
    "chaosproxy.proxy.downstream.core",
    "chaosproxy.proxy.downstream.delayed",
    "chaosproxy.proxy.downstream.limits",
    "chaosproxy.proxy.downstream.listener",
    "chaosproxy.proxy.downstream.relay",
    "chaosproxy.proxy.downstream.request",
    "chaosproxy.proxy.downstream.responses",
    "chaosproxy.proxy.upstream.client",
    "chaosproxy.proxy.upstream.connection",
    "chaosproxy.proxy.upstream.forward",
    "chaosproxy.proxy.upstream.head",
    "chaosproxy.proxy.upstream.pool",
    "chaosproxy.proxy.upstream.response",
    "chaosproxy.proxy.wire.headers",
)
PACKAGE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
GROUP = "chaosproxy_native"  # mypyc puts the compiled code in one library, GROUP + "__mypyc"
LIBRARY = f"{GROUP}__mypyc"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# What runs, for `--version` and the startup log: "compiled (N modules)" or "pure Python (why)".
state = "pure Python"


def default_dir() -> Path:
    return Path(os.environ.get("CHAOSPROXY_NATIVE_DIR") or Path(sys.prefix) / "chaosproxy-native")


def source(module: str) -> Path:
    return PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")


def fingerprint() -> dict[str, str]:
    """What a build must have been made from: each module's source hash, and the interpreter."""
    marks = {m: hashlib.sha256(source(m).read_bytes()).hexdigest() for m in MODULES}
    marks["python"] = f"{sys.implementation.cache_tag} {SUFFIX}"
    return marks


def manifest(where: Path) -> dict[str, str] | None:
    """What the build in `where` was made from (its `fingerprint()` then), or None: none there,
    or unreadable."""
    try:
        built = json.loads((where / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return built if isinstance(built, dict) else None


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and their shared library) in the build directory."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(name)
        return None if file is None else importlib.util.spec_from_file_location(name, file)


def install() -> None:
    """Load the compiled modules from now on when they match these sources; `state` says
    which runs."""
    global state
    state = _decide()
    if state.startswith("compiled"):
        where = default_dir()
        files = {m: where.joinpath(*m.split(".")).with_suffix(SUFFIX) for m in MODULES}
        files[LIBRARY] = where / f"{LIBRARY}{SUFFIX}"
        sys.meta_path.insert(0, _Finder(files))


def _decide() -> str:
    """What runs: "compiled (…)", or "pure Python (why)"."""
    if os.environ.get("CHAOSPROXY_PURE"):
        return "pure Python (CHAOSPROXY_PURE is set)"
    where = default_dir()
    built = manifest(where)
    if built is None:
        return "pure Python (not compiled: `python -m chaosproxy.native_build`)"
    if built != fingerprint():
        return "pure Python (the compiled modules are from other sources: build again)"
    loaded = [m for m in (*MODULES, LIBRARY) if m in sys.modules]
    if loaded:  # imported as Python before this ran: mixing would run two copies
        return f"pure Python ({loaded[0]} was imported first)"
    return f"compiled ({len(MODULES)} modules, {where})"
