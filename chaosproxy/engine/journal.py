"""The fault journal: one JSON line per injected fault, the evidence of what was injected.

Fed by `FaultInjected` events; `StateChanged(scenario_started)` sets the time origin, so `t` is
seconds since the fault's scenario started (a fault an old scenario records after another one
started is timed from its own start); ad-hoc and header faults are timed from the latest
scenario start, or from when the journal opened. `time` is the fault's wall-clock instant in UTC
(ISO 8601, milliseconds, `Z`), to line entries up with logs and dashboards. Each line
is written whole, in one write, and flushed, so the file can be tailed and is never cut mid-line.

Bounded: past `max_size` bytes the file is rotated before the line that would cross the limit
(`journal.jsonl` → `journal.jsonl.1` → … → `journal.jsonl.<keep>`, the oldest dropped), so no
line is split or lost by a rotation. `reopen()` (SIGHUP under `chaosproxy run`) closes and
reopens the path, for rotation by an outside tool that renamed the file. `faults` keeps only
the named faults (long runs that need the errors and resets, not every delay). A fault of a run
that splits its clients into cohorts carries `cohort` (`fault`, or `control` for a rule without
a cohort condition hitting a control client); other lines have no such key. A fault on an
HTTP/2 stream carries `protocol: h2`, and one on a gRPC call the status name the call ended with
(`grpc_status: UNAVAILABLE`), whatever ended it: a fault's answer, a reset, the deadline, the
upstream. That status is known when the stream ends, so the lines of an HTTP/2 stream wait for
its `RequestDone` (the proxy's one reading of the status, `H2Exchange.call_status`) and are
written then, in the order their faults acted; at most `MAX_HELD` streams wait (past that the
oldest one's lines are written without the status), and `close` writes what still waits.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from chaosproxy.common.clock import SYSTEM_CLOCK, Clock
from chaosproxy.common.events import EventBus, FaultInjected, RequestDone, StateChanged
from chaosproxy.observe.stats import GRPC_NAMES

log = logging.getLogger("chaosproxy.journal")

DEFAULT_MAX_SIZE = 100 * 1024 * 1024  # 100 MiB per file
DEFAULT_KEEP = 5  # rotated files kept besides the current one
MAX_HELD = 4096  # HTTP/2 streams whose lines wait for the stream's end (its gRPC status)


class Journal:
    """Appends to `path`; `attach` subscribes it to a bus, `close` detaches and closes."""

    def __init__(
        self,
        path: str | Path,
        clock: Clock = SYSTEM_CLOCK,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        keep: int = DEFAULT_KEEP,
        faults: Iterable[str] | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be ≥ 1, got {keep}")
        self.path = Path(path)
        self.max_size = max_size or None  # 0: never rotate
        self.keep = keep
        self.faults = frozenset(faults) if faults is not None else None
        self._file: BinaryIO | None = None
        self._size = 0
        self._open()
        self._origin = clock.wall()
        self._origins: dict[str, float] = {}  # scenario name -> its latest start
        self._bus: EventBus | None = None
        self._second = -1  # the Unix second `_prefix` spells
        self._prefix = ""
        # request id -> the lines of an HTTP/2 stream that has not ended yet (oldest first)
        self._held: dict[str, list[dict[str, object]]] = {}

    def _utc(self, t: float) -> str:
        """`2026-12-07T10:15:03.123Z`: the date and time of a second are formatted once, then
        only the milliseconds change (a fault per request at saturation)."""
        second = int(t)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{min(999, int((t - second) * 1000)):03d}Z"

    def _open(self) -> None:
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def attach(self, bus: EventBus) -> None:
        self._bus = bus
        bus.subscribe(FaultInjected, self.on_fault)
        bus.subscribe(RequestDone, self.on_done)
        bus.subscribe(StateChanged, self.on_state)

    def on_state(self, ev: StateChanged) -> None:
        if ev.kind == "scenario_started":
            self._origin = self._origins[ev.scenario] = ev.t

    def on_fault(self, ev: FaultInjected) -> None:
        if self._file is None or (self.faults is not None and ev.fault not in self.faults):
            return
        origin = self._origins.get(ev.scenario, self._origin) if ev.scenario else self._origin
        line = {
            "t": round(ev.t - origin, 6),
            "time": self._utc(ev.t),
            "request_id": ev.request_id,
            "method": ev.method,
            "path": ev.path,
            "scenario": ev.scenario,
            "phase": ev.phase,
            "rule": ev.rule,
            "fault": ev.fault,
            "outcome": ev.outcome,
        }
        if ev.cohort:  # the run splits its clients: `fault` (in the cohort) or `control`
            line["cohort"] = ev.cohort
        if ev.protocol == "http/1.1":
            self._write(line)
            return
        line["protocol"] = ev.protocol  # `h2`: one stream, whose gRPC status comes at its end
        if ev.grpc_status is not None:  # the status the fault answered with, if it did
            line["grpc_status"] = ev.grpc_status
        held = self._held.get(ev.request_id)
        if held is not None:
            held.append(line)
            return
        if len(self._held) >= MAX_HELD:
            for old in self._held.pop(next(iter(self._held))):
                self._write(old)
        self._held[ev.request_id] = [line]

    def on_done(self, ev: RequestDone) -> None:
        """A request ended: the lines its stream's faults left waiting go out with the call's
        status as its client read it."""
        if not self._held:
            return
        lines = self._held.pop(ev.request_id, None)
        if lines is None:
            return
        for line in lines:
            if ev.grpc_status is not None:
                line["grpc_status"] = ev.grpc_status
            self._write(line)

    def _write(self, line: dict[str, object]) -> None:
        status = line.get("grpc_status")
        if isinstance(status, int):
            line["grpc_status"] = GRPC_NAMES.get(status, str(status))
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
        if self.max_size is not None and self._size and self._size + len(data) > self.max_size:
            self.rotate()
        f = self._file
        if f is None:  # rotation could not reopen the path (logged)
            return
        f.write(data)
        f.flush()
        self._size += len(data)

    def rotate(self) -> None:
        """Shift `path` to `path.1` (and `.1` to `.2` …, dropping past `keep`); start afresh."""
        self._close_file()
        try:
            for i in range(self.keep - 1, 0, -1):
                older = self._rotated(i)
                if older.exists():
                    os.replace(older, self._rotated(i + 1))
            if self.path.exists():
                os.replace(self.path, self._rotated(1))
        except OSError as e:
            log.error("journal rotation of %s failed, appending to it instead: %s", self.path, e)
        self._reopen_quietly()

    def reopen(self) -> None:
        """Close and reopen `path` (created if an outside tool moved it away)."""
        self._close_file()
        self._reopen_quietly()
        log.info("journal reopened: %s", self.path)

    def _reopen_quietly(self) -> None:
        try:
            self._open()
        except OSError as e:
            self._file = None
            log.error("journal %s cannot be opened, faults are not recorded: %s", self.path, e)

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self.on_fault)
            self._bus.unsubscribe(self.on_done)
            self._bus.unsubscribe(self.on_state)
            self._bus = None
        held, self._held = self._held, {}
        for lines in held.values():  # streams still open: what is known of them
            for line in lines:
                self._write(line)
        self._close_file()


def journal_files(path: str | Path) -> list[Path]:
    """The journal's files oldest first (`path.N` … `path.1`, then `path`): read them in this
    order to see every line of a run that crossed the rotation size."""
    base = Path(path)
    rotated = []
    for p in base.parent.glob(f"{base.name}.*"):
        suffix = p.name[len(base.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    return [*files, base] if base.exists() else files
