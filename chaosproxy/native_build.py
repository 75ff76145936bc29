"""Builds the compiled per-request path (`chaosproxy.native`): mypyc, then the C compiler.

    python -m chaosproxy.native_build              # compile into <sys.prefix>/chaosproxy-native
    python -m chaosproxy.native_build --if-stale   # only when a compiled module's source changed
    python -m chaosproxy.native_build --log F      # mypy's and the compiler's output into F
    python -m chaosproxy.native_build --status     # what runs: compiled or pure Python, and why

Needs mypy (which brings mypyc), setuptools, a C compiler and Python's headers; the Makefile
runs it and goes on as pure Python when it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chaosproxy import native


def _parallel_build_ext() -> type:
    """setuptools' build_ext, with the C files of one extension compiled on every core (it
    compiles them one after another: mypyc's one library is most of the build's time)."""
    from concurrent.futures import ThreadPoolExecutor

    from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

    class ParallelBuildExt(build_ext):  # type: ignore[misc]
        def build_extension(self, ext: Any) -> None:
            one_by_one = self.compiler.compile

            def compile_all(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
                with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                    done = pool.map(lambda s: one_by_one([s], *args, **kwargs), sources)
                    return [obj for objs in done for obj in objs]

            self.compiler.compile = compile_all
            try:
                super().build_extension(ext)
            finally:
                self.compiler.compile = one_by_one

    return ParallelBuildExt


@contextlib.contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """mypy's, setuptools' and the compiler's output (a few hundred lines) into `log`."""
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def build(where: Path | None = None, *, if_stale: bool = False, log: Path | None = None) -> int:
    """Compile `native.MODULES` with mypyc into `where`; 0 when done or already current.
    `log`: where the build's own output goes (the failure's last lines are shown)."""
    where = where or native.default_dir()
    marks = native.fingerprint()
    if if_stale and native.manifest(where) == marks:
        return 0
    print(f"compiling the per-request path to C ({len(native.MODULES)} modules, about 20 s)")
    try:
        with _output_to(log):
            _compile(where)
    except BaseException:
        if log is not None:
            print("".join(log.read_text().splitlines(keepends=True)[-15:]), file=sys.stderr)
        raise
    (where / native.MANIFEST).write_text(json.dumps(marks, indent=1))
    print(f"compiled into {where}")
    return 0


def _compile(where: Path) -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    root = native.PACKAGE.parent
    with tempfile.TemporaryDirectory(prefix="chaosproxy-native-") as tmp:
        cwd = os.getcwd()
        os.chdir(root)  # mypy reads the project's configuration (strict) from here
        try:
            exts = mypycify(
                [str(native.source(m).relative_to(root)) for m in native.MODULES],
                opt_level="3",
                multi_file=True,  # several C files: the compiler runs on every core
                target_dir=str(Path(tmp) / "c"),
                group_name=native.GROUP,
            )
            dist = Distribution({"name": "chaosproxy-native", "ext_modules": exts})
            dist.cmdclass["build_ext"] = _parallel_build_ext()
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(Path(tmp) / "lib")
            cmd.build_temp = str(Path(tmp) / "obj")
            cmd.parallel = os.cpu_count() or 1
            dist.run_command("build_ext")
        finally:
            os.chdir(cwd)
        if where.exists():
            shutil.rmtree(where)
        shutil.copytree(Path(tmp) / "lib", where)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m chaosproxy.native_build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--if-stale", action="store_true", help="build only when sources changed")
    ap.add_argument("--status", action="store_true", help="say what runs; build nothing")
    ap.add_argument("--dir", type=Path, help="where the build goes (default: the environment's)")
    ap.add_argument("--log", type=Path, help="the build's own output (mypy, the compiler) there")
    a = ap.parse_args(argv)
    if a.status:
        print(native.state)
        return 0
    return build(a.dir, if_stale=a.if_stale, log=a.log)


if __name__ == "__main__":
    sys.exit(main())
