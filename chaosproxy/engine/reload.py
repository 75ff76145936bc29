"""Hot reload: poll the scenario files and swap a changed definition in, or keep the old one.

Polling `stat()` (following symlinks) once a second needs no dependency and sees the atomic
`..data` symlink swap a Kubernetes ConfigMap update does: the resolved file changes inode.
Watched: every scenario file of the directory, plus every file the running scenario was built
from (its includes and presets, known from `Scenario.locations`). A changed file is loaded and
compiled; an invalid version is logged with its location and reported as
`StateChanged(kind="reload_failed")` while the old definition keeps running; a valid one that
defines the running scenario replaces it (`reload_ok`, `applied: true`) in one swap.

Only a settled file is loaded: its signature (inode, size, mtime) must be the same at two looks
in a row, and again after it was read, so a file still being written (an editor saving, `cp`
of a large file) is never applied half-way — a truncated file can be valid YAML with fewer
rules. Files are named relative to the scenario directory in events (never by where the
proxy's disk keeps them).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.errors import ConfigError, Problem, shown_path, shown_problems
from chaosproxy.common.events import StateKind
from chaosproxy.config.model import Scenario
from chaosproxy.engine.compile import CompiledScenario, compile_scenario
from chaosproxy.engine.core import Engine

log = logging.getLogger("chaosproxy.reload")

Signature = tuple[int, int, int, int, str]


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
        real = os.path.realpath(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, real)


def _load_default(path: Path) -> Scenario:
    from chaosproxy.config.loader import load_scenario_file

    return load_scenario_file(path)


def _dir_files(directory: Path) -> list[Path]:
    from chaosproxy.config.loader import scenario_files

    return scenario_files(directory)


class ScenarioWatcher:
    """`check()` compares file signatures and reloads what changed; `run()` polls it."""

    def __init__(
        self,
        engine: Engine,
        directory: Path | None,
        interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        load: Callable[[Path], Scenario] = _load_default,
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.interval = interval
        self.clock = clock
        self._load = load
        # Signatures at the last look, and those last handled (loaded, or there at the start):
        # a file is loaded when its signature differs from the handled one and is the same as
        # at the look before (it holds still).
        self._seen: dict[Path, Signature | None] = {}
        self._seen = self._snapshot()
        self._handled: dict[Path, Signature] = {
            p: sig for p, sig in self._seen.items() if sig is not None
        }
        # Each target's files (itself, and what it includes) with their signatures when it was
        # chosen: compared again once it was read.
        self._loading: dict[Path, dict[Path, Signature | None]] = {}

    def _running_files(self) -> dict[Path, Path]:
        """Each file the running scenario depends on → the scenario file to reload for it."""
        compiled = self.engine.scenario
        if compiled is None:
            return {}
        sc = compiled.scenario
        top = Path(sc.source).absolute()
        files = {Path(loc.file).absolute() for loc in sc.locations.values() if loc.file}
        files.add(top)
        return {f: top for f in files if not f.name.startswith("<")}

    def _snapshot(self) -> dict[Path, Signature | None]:
        paths = set(self._running_files())
        if self.directory is not None:
            paths.update(p.absolute() for p in _dir_files(self.directory))
        return {p: _signature(p) for p in paths}

    def check(self) -> list[Path]:
        """Reload every scenario file whose signature changed and settled; returns the files
        reloaded (a file that changed again while it was read is left for a later look)."""
        targets = self.changed()
        return [t for t in targets if self.reload(t) is not None]

    async def check_off_loop(self) -> list[Path]:
        """`check()`, with reading, parsing and compiling in a worker thread: a large file
        dropped into the directory never stalls proxied traffic (files are bounded, too)."""
        targets = self.changed()
        done = []
        for target in targets:
            result = await asyncio.to_thread(self.compile, target)
            if self._still(target):
                self.apply(target, result)
                done.append(target)
        return done

    def changed(self) -> list[Path]:
        """The scenario files to reload: changed and settled ones (the same signature as at
        the look before), and the scenarios their includes feed."""
        deps = self._running_files()
        before, now = self._seen, self._snapshot()
        self._seen = now
        # A dependency seen for the first time (a scenario started later brings its includes
        # and presets) is recorded, not reloaded: nothing changed it. A new file in the
        # directory is checked, so a broken one is reported as soon as it has settled.
        listed = {p.absolute() for p in _dir_files(self.directory)} if self.directory else set()
        handled = self._handled
        changed = []
        for p, sig in now.items():
            if sig is None or handled.get(p) == sig:
                continue
            if p not in handled and p not in listed:
                handled[p] = sig  # a new dependency: recorded, not reloaded
                continue
            if before.get(p) != sig:
                continue  # changed since the last look: wait until it holds still
            handled[p] = sig
            changed.append(p)
        for p in [p for p in handled if p not in now]:
            del handled[p]  # gone: if it comes back, it is new
        targets: list[Path] = []
        for p in sorted(changed):
            target = deps.get(p, p)
            if target not in targets:
                targets.append(target)
                files = [f for f, t in deps.items() if t == target] + [target]
                self._loading[target] = {f: now.get(f) for f in files}
        return targets

    def _still(self, path: Path) -> bool:
        """`path` and the files it was built from have the signatures they had when it was
        chosen (none changed while it was read). If one did, what was read is dropped: that
        file's new signature differs from the one handled, so a later look loads it once it
        holds still."""
        expected = self._loading.pop(path, {})
        if all(_signature(f) == sig for f, sig in expected.items()):
            return True
        log.info("%s changed while it was read: loaded once it holds still", self.shown(path))
        return False

    def reload(self, path: Path) -> bool | None:
        """Load and compile `path`; apply it when it defines the running scenario. None when
        the file changed while it was read (nothing applied, nothing reported)."""
        result = self.compile(path)
        if not self._still(path):
            return None
        return self.apply(path, result)

    def shown(self, path: Path | str) -> str:
        """A file as events and logs name it (`errors.shown_path`)."""
        return shown_path(self.directory, str(path))

    def compile(self, path: Path) -> CompiledScenario | ConfigError:
        """Read, parse and compile (no engine state: safe off the event loop)."""
        try:
            return compile_scenario(self._load(path))
        except ConfigError as e:
            return e
        except Exception as e:  # a file no check foresaw must not stop reloading the others
            log.exception("reload of %s failed unexpectedly", self.shown(path))
            problem = Problem(
                f"cannot load: {type(e).__name__} (see the proxy log)", file=str(path)
            )
            return ConfigError(problem)

    def apply(self, path: Path, result: CompiledScenario | ConfigError) -> bool:
        """Swap in a compiled definition, or report why the old one keeps running."""
        engine = self.engine
        if isinstance(result, ConfigError):
            problems = shown_problems(result.problems, self.directory)
            for line in problems:
                log.warning("reload rejected, the previous version keeps running: %s", line)
            running = engine.scenario
            engine.emit_state(
                StateKind.RELOAD_FAILED,
                running.name if running is not None else "",
                details={"file": self.shown(path), "problems": problems},
            )
            return False
        compiled = result
        running = engine.scenario
        applied = False
        if running is not None and (
            Path(running.scenario.source).absolute() == path or running.name == compiled.name
        ):
            applied = engine.replace_scenario_definition(compiled)
        engine.emit_state(
            StateKind.RELOAD_OK,
            compiled.name,
            details={"file": self.shown(path), "applied": applied},
        )
        return True

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.check_off_loop()
            except Exception:
                log.exception("scenario reload check failed")
