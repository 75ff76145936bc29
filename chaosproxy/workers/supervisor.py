"""`run --workers N`: N worker processes accept on one port, one admin API in front of them.

The supervisor (this process) proxies nothing itself. In order, it:

1. checks what a single proxy checks before it starts (admin exposure, the `--scenario` file);
2. reserves the listen port: a socket bound with SO_REUSEPORT but never listening, so `:0`
   becomes one port every worker can share and a port in use fails here, once, naming `--listen`;
3. serves the public admin API (`relay.py`) on `--admin`;
4. starts the workers (`python -m chaosproxy.workers.child`), each a whole `Runtime` listening
   on that port with SO_REUSEPORT (the kernel spreads new connections across them), its admin on
   a private loopback port whose writes need a token made for this run; `--scenario` starts in
   every worker from the same instant;
5. logs the one `proxying PROXY -> UPSTREAM (admin ADMIN)` line once every worker is ready.

Signals: SIGTERM/SIGINT are forwarded as SIGTERM (each worker drains for `--grace`), SIGHUP as
SIGHUP (journal reopen); the workers run in a session of their own, so Ctrl-C or a signal to the
process group reaches them once, through the supervisor. A worker that stops on its own is
reported and the others are stopped too: the supervisor exits 1, for the process manager to
restart the whole proxy (a restarted worker would have lost the running scenario). A worker
still running `--grace` + 10 s after SIGTERM is killed. A worker whose supervisor dies (even
SIGKILL) sees its stdin close and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from chaosproxy.common import address_file
from chaosproxy.common.address_file import Addresses, host_port
from chaosproxy.common.errors import UsageError
from chaosproxy.process.runtime import Settings, check_admin_exposure
from chaosproxy.workers.child import Launch, encode
from chaosproxy.workers.fanout import Backend, Relay
from chaosproxy.workers.relay import make_relay_app

log = logging.getLogger("chaosproxy.workers")

READY_TIMEOUT = 60.0  # seconds a worker may take to bind (imports on a loaded machine)
KILL_AFTER_GRACE = 10.0  # seconds past --grace before a worker that ignores SIGTERM is killed


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process
    backend: Backend | None = None  # once it reported ready


def reserve(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (never listen) HOST:PORT with SO_REUSEPORT on every address HOST names; the port."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as e:
        raise UsageError(f"--listen {host}:{port}: cannot listen: {e.strerror or e}") from None
    held: list[socket.socket] = []
    chosen = port
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((addr[0], chosen, *addr[2:]))
            chosen = int(sock.getsockname()[1])
    except OSError as e:
        for sock in held:
            sock.close()
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise UsageError(f"--listen {host}:{port}: cannot listen: {reason}") from None
    return chosen, held


def worker_journal(path: str | None, index: int) -> str | None:
    """`faults.jsonl` -> `faults.w0.jsonl`: one journal per worker (each rotates its own)."""
    if not path:
        return None
    p = Path(path)
    return str(p.with_name(f"{p.stem}.w{index}{p.suffix}"))


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class Supervisor:
    def __init__(self, settings: Settings, count: int, log_format: str, log_level: str) -> None:
        self.settings = settings
        self.count = count
        self.log_format = log_format
        self.log_level = log_level
        self.secret = secrets.token_urlsafe(32)
        self.relay = Relay(self.secret)
        self.workers: list[Worker] = []
        self.stopping = asyncio.Event()
        self.port = 0
        self.admin_port = 0

    # ------------------------------------------------------------ checks

    def _check_boot_scenario(self) -> None:
        """`--scenario` fails here once (located, exit 2), not once per worker."""
        s = self.settings
        if not s.scenario:
            return
        from chaosproxy.config.loader import load_scenario_file, resolve_scenario
        from chaosproxy.engine.compile import compile_scenario

        directory = Path(s.scenario_dir) if s.scenario_dir else None
        compile_scenario(load_scenario_file(resolve_scenario(s.scenario, directory)))

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        """Until SIGTERM/SIGINT (0) or a worker's end (1; 2 when one could not start).
        Raises UsageError/ConfigError/OSError for what fails before any worker starts."""
        s = self.settings
        check_admin_exposure(s)
        self._check_boot_scenario()
        self.port, reserved = reserve(s.listen_host, s.listen_port)
        loop = asyncio.get_running_loop()
        runner = web.AppRunner(
            make_relay_app(self.relay, s),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, s.admin_host, s.admin_port)
            try:
                await site.start()
            except OSError as e:
                reason = os.strerror(e.errno) if e.errno else str(e)
                raise UsageError(
                    f"--admin {s.admin_host}:{s.admin_port}: cannot listen: {reason}"
                ) from None
            self.admin_port = int(runner.addresses[0][1])
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
            try:
                return await self._supervise()
            finally:
                await self._stop_workers()  # a second SIGTERM or Ctrl-C meanwhile: no-op
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        finally:
            await runner.cleanup()
            await self.relay.close()
            for sock in reserved:
                sock.close()

    async def _supervise(self) -> int:
        s = self.settings
        boot_at = time.time() if s.scenario else None
        for i in range(self.count):
            self.workers.append(await self._spawn(i, boot_at))
        if not await self._all_ready():
            return self._startup_failure()
        self.relay.backends = [w.backend for w in self.workers if w.backend is not None]
        if s.address_file:
            bound = Addresses(
                host_port(s.listen_host, self.port), host_port(s.admin_host, self.admin_port)
            )
            address_file.write(s.address_file, bound)
        scheme = "https" if s.tls_cert else "http"
        log.info(
            "proxying %s://%s:%d -> %s (admin http://%s:%d), %d workers",
            scheme,
            _connect_host(s.listen_host),
            self.port,
            s.upstream,
            _connect_host(s.admin_host),
            self.admin_port,
            self.count,
        )
        watch = asyncio.ensure_future(self.relay.watch())
        ended = [asyncio.ensure_future(w.proc.wait()) for w in self.workers]
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({stop, *ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, stop, *ended):
                task.cancel()
            self.relay.backends = []
            if s.address_file:
                address_file.remove(s.address_file)
        if self.stopping.is_set():
            log.info("signal received: stopping %d workers (grace %.0fs)", self.count, s.grace)
            return 0
        for w in self.workers:
            if w.proc.returncode is not None:
                log.error(
                    "worker %d (pid %d) ended on its own (%s): stopping the others",
                    w.index,
                    w.proc.pid,
                    _how(w.proc.returncode),
                )
        return 1

    async def _spawn(self, index: int, boot_at: float | None) -> Worker:
        s = self.settings
        settings = dataclasses.replace(
            s,
            listen_port=self.port,
            reuse_port=True,
            worker=index,
            admin_host="127.0.0.1",
            admin_port=0,
            admin_token=self.secret,
            admin_insecure=False,
            journal=worker_journal(s.journal, index),
            address_file=None,  # the supervisor writes the one file, with the public admin
            scenario_at=boot_at,
        )
        env = dict(os.environ)
        # The workers import this very package, wherever it was imported from.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaosproxy.workers.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            # Signals reach a worker through the supervisor only, once: Ctrl-C (or a kill of
            # the process group) would otherwise signal it twice, and a worker that stopped
            # handling signals to drain would be killed by the second one.
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(encode(Launch(settings, self.log_format, self.log_level)))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        return Worker(index, proc)

    async def _ready(self, w: Worker) -> bool:
        """Read the worker's ready line (anything else it prints is logged); False at its end."""
        import json

        assert w.proc.stdout is not None
        while line := await w.proc.stdout.readline():
            try:
                info = json.loads(line)
                w.backend = Backend(
                    w.index, int(info["pid"]), str(info["admin"]), str(info["instance"])
                )
                return True
            except (ValueError, KeyError, TypeError):
                log.info("worker %d: %s", w.index, line.decode("utf-8", "replace").rstrip())
        return False

    async def _all_ready(self) -> bool:
        ready: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(self._ready(w) for w in self.workers))
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait(
                [ready, stop], timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            if not self.stopping.is_set():
                log.error("the workers were not all ready within %.0fs", READY_TIMEOUT)
            return False
        return all(ready.result())

    def _startup_failure(self) -> int:
        if self.stopping.is_set():
            return 0
        codes = [w.proc.returncode for w in self.workers if w.proc.returncode is not None]
        return 2 if 2 in codes else 1

    def _forward(self, sig: int) -> None:
        for w in self.workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(sig)

    async def _stop_workers(self) -> None:
        """SIGTERM every worker, wait for them (killing any past grace), report odd endings."""
        self._forward(signal.SIGTERM)
        waits = [asyncio.ensure_future(w.proc.wait()) for w in self.workers]
        if waits:
            await asyncio.wait(waits, timeout=self.settings.grace + KILL_AFTER_GRACE)
        for w in self.workers:
            if w.proc.returncode is None:
                log.error("worker %d (pid %d) ignored SIGTERM: killing it", w.index, w.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            if w.proc.returncode not in (0, -signal.SIGTERM):  # SIGTERM: before it was ready
                log.warning("worker %d (pid %d) %s", w.index, w.proc.pid, _how(w.proc.returncode))


def _how(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
