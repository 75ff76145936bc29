"""Hot reload: poll the scenario files and swap a changed definition in, or keep the old one.

Polling `stat()` (following symlinks) once a second needs no dependency and sees the atomic
`..data` symlink swap a Kubernetes ConfigMap update does: the resolved file changes inode.
Watched: every scenario file of the directory, plus every file the running scenario was built
from (its includes and presets, known from `Scenario.locations`). A changed file is loaded and
compiled; an invalid version is logged with its location and reported as
`StateChanged(kind="reload_failed")` while the old definition keeps running; a valid one that
defines the running scenario replaces it (`reload_ok`, `applied: true`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from chaosproxy._clock import SYSTEM_CLOCK, Clock
from chaosproxy.config.model import Scenario
from chaosproxy.engine.compile import CompiledScenario, compile_scenario
from chaosproxy.engine.core import Engine
from chaosproxy.errors import ConfigError, Problem
from chaosproxy.events import StateKind

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
        self._seen: dict[Path, Signature | None] = {}
        self._seen = self._snapshot()

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
        """Reload every scenario file whose signature changed; returns the files reloaded."""
        targets = self.changed()
        for target in targets:
            self.reload(target)
        return targets

    async def check_off_loop(self) -> list[Path]:
        """`check()`, with reading, parsing and compiling in a worker thread: a large file
        dropped into the directory never stalls proxied traffic (files are bounded, too)."""
        targets = self.changed()
        for target in targets:
            self.apply(target, await asyncio.to_thread(self.compile, target))
        return targets

    def changed(self) -> list[Path]:
        """The scenario files to reload: changed ones, and the scenarios their includes feed."""
        deps = self._running_files()
        now = self._snapshot()
        # A dependency seen for the first time (a scenario started later brings its includes
        # and presets) is recorded, not reloaded: nothing changed it. A new file in the
        # directory is checked, so a broken one is reported as soon as it lands.
        listed = {p.absolute() for p in _dir_files(self.directory)} if self.directory else set()
        changed = [
            p
            for p, sig in now.items()
            if sig is not None and self._seen.get(p) != sig and (p in self._seen or p in listed)
        ]
        self._seen = now
        targets: list[Path] = []
        for p in sorted(changed):
            target = deps.get(p, p)
            if target not in targets:
                targets.append(target)
        return targets

    def reload(self, path: Path) -> bool:
        """Load and compile `path`; apply it when it defines the running scenario."""
        return self.apply(path, self.compile(path))

    def compile(self, path: Path) -> CompiledScenario | ConfigError:
        """Read, parse and compile (no engine state: safe off the event loop)."""
        try:
            return compile_scenario(self._load(path))
        except ConfigError as e:
            return e
        except Exception as e:  # a file no check foresaw must not stop reloading the others
            log.exception("reload of %s failed unexpectedly", path)
            problem = Problem(
                f"cannot load: {type(e).__name__} (see the proxy log)", file=str(path)
            )
            return ConfigError(problem)

    def apply(self, path: Path, result: CompiledScenario | ConfigError) -> bool:
        """Swap in a compiled definition, or report why the old one keeps running."""
        engine = self.engine
        if isinstance(result, ConfigError):
            problems = [str(p) for p in result.problems]
            for line in problems:
                log.warning("reload rejected, the previous version keeps running: %s", line)
            running = engine.scenario
            engine.emit_state(
                StateKind.RELOAD_FAILED,
                running.name if running is not None else "",
                details={"file": str(path), "problems": problems},
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
            StateKind.RELOAD_OK, compiled.name, details={"file": str(path), "applied": applied}
        )
        return True

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.check_off_loop()
            except Exception:
                log.exception("scenario reload check failed")
