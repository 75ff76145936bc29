"""The compiled per-request path (`chaosproxy.native`, built by `native_build`): loaded only when
built from exactly these sources, all or none, and a proxy answers the same bytes either way.

Each case runs in a fresh interpreter: which modules load is decided once, when the package is
first imported."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosproxy import native
from tests.cli.test_run_cli import SpawnProxy, spawn_proxy  # noqa: F401 (a fixture)

PROBE = (
    "import chaosproxy.proxy.downstream.relay as m; from chaosproxy import native; "
    "print(native.state); print(m.__file__)"
)


def probe(**env: str) -> tuple[str, str]:
    """What a fresh interpreter runs: the loader's state, and where the relay module came from."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSPROXY_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    state, file = out.stdout.splitlines()
    return state, file


def test_pure_python_when_asked() -> None:
    state, file = probe(CHAOSPROXY_PURE="1")
    assert state.startswith("pure Python (CHAOSPROXY_PURE") and file.endswith(".py")


def test_pure_python_without_a_build(tmp_path: Path) -> None:
    state, file = probe(CHAOSPROXY_NATIVE_DIR=str(tmp_path))
    assert state.startswith("pure Python (not compiled") and file.endswith(".py")


def test_a_build_from_other_sources_is_never_loaded(tmp_path: Path) -> None:
    """One changed source makes the whole build stale: the compiled modules call each other
    directly, so mixing would run the old code of the changed one."""
    marks = native.fingerprint()
    marks["chaosproxy.proxy.downstream.relay"] = "0" * 64  # relay.py edited since the build
    (tmp_path / native.MANIFEST).write_text(json.dumps(marks))
    state, file = probe(CHAOSPROXY_NATIVE_DIR=str(tmp_path))
    assert "from other sources" in state and file.endswith(".py")


def test_a_build_for_another_python_is_never_loaded(tmp_path: Path) -> None:
    marks = native.fingerprint()
    marks["python"] = "cpython-399 .cpython-399-x86_64-linux-gnu.so"
    (tmp_path / native.MANIFEST).write_text(json.dumps(marks))
    state, file = probe(CHAOSPROXY_NATIVE_DIR=str(tmp_path))
    assert "from other sources" in state and file.endswith(".py")


def built() -> bool:
    try:
        return json.loads((native.default_dir() / native.MANIFEST).read_text()) == (
            native.fingerprint()
        )
    except (OSError, ValueError):
        return False


needs_build = pytest.mark.skipif(
    not built(), reason="not compiled here (make builds it; a C compiler and Python's headers)"
)


@needs_build
def test_the_current_build_is_loaded_for_every_module_it_holds() -> None:
    state, file = probe()
    assert state.startswith(f"compiled ({len(native.MODULES)} modules")
    assert file.endswith(native.SUFFIX) and Path(file).is_relative_to(native.default_dir())


async def _get(url: str) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/items/7?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    return answer


def _without_id_and_date(answer: bytes) -> bytes:
    """(the id is per request; the demo service's Date may tick between the two)"""
    lines = answer.split(b"\r\n")
    return b"\r\n".join(x for x in lines if not x.lower().startswith((b"x-request-id:", b"date:")))


@needs_build
async def test_compiled_and_pure_proxies_answer_the_same_bytes(
    demo_upstream: str,
    spawn_proxy: SpawnProxy,  # noqa: F811
) -> None:
    args = ("--upstream", demo_upstream, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
    compiled = await spawn_proxy(*args, env={"CHAOSPROXY_PURE": ""})  # whatever runs the suite
    pure = await spawn_proxy(*args, env={"CHAOSPROXY_PURE": "1"})
    assert any("per-request path: compiled" in line for line in compiled.lines)
    assert any("per-request path: pure Python" in line for line in pure.lines)
    direct = await _get(demo_upstream)
    a, b = await _get(compiled.proxy_url), await _get(pure.proxy_url)
    assert a.startswith(b"HTTP/1.1 200")
    assert _without_id_and_date(a) == _without_id_and_date(b)
    assert a.split(b"\r\n\r\n", 1)[1] == direct.split(b"\r\n\r\n", 1)[1]


def test_a_current_build_is_not_built_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make` runs the build before every suite: when nothing changed it is a hash and a
    comparison, silent (no compiler, no mypy)."""
    from chaosproxy import native_build

    (tmp_path / native.MANIFEST).write_text(json.dumps(native.fingerprint()))
    assert native_build.build(tmp_path, if_stale=True) == 0
    assert capsys.readouterr().out == "" and sorted(p.name for p in tmp_path.iterdir()) == [
        native.MANIFEST
    ]


def test_only_compiled_modules_declare_final_constants() -> None:
    # Compiled code inlines a `Final` constant's value (that is why the hot modules declare
    # theirs). The build is rebuilt when a compiled source changes: a constant declared in a
    # module outside it would stay at its old value in the compiled code.
    compiled = {native.source(m).resolve() for m in native.MODULES}
    declaring = {
        path.relative_to(native.PACKAGE.parent)
        for path in native.PACKAGE.rglob("*.py")
        if ": Final" in path.read_text() and path.resolve() not in compiled
    }
    assert declaring == set()


def test_an_unreadable_manifest_reads_as_no_build(tmp_path: Path) -> None:
    # Loading and `native_build --if-stale` read it the same way: garbage is no build (then
    # Python runs, and the next build replaces it), never a crash.
    assert native.manifest(tmp_path) is None
    (tmp_path / native.MANIFEST).write_text("{not json")
    assert native.manifest(tmp_path) is None
    (tmp_path / native.MANIFEST).write_text("[1, 2]")
    assert native.manifest(tmp_path) is None
    (tmp_path / native.MANIFEST).write_text(json.dumps(native.fingerprint()))
    assert native.manifest(tmp_path) == native.fingerprint()
