"""The processes an experiment runs: a proxy (when it starts its own) and Locust (always).

Each runs in its own session, so a Ctrl-C at the terminal reaches the runner alone and the
runner stops them in order: load first, then the scenario, then collection, then the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from chaosproxy.admin.client import AdminClient
from chaosproxy.common.address_file import Addresses, split
from chaosproxy.common.address_file import read as read_addresses
from chaosproxy.common.errors import ChaosProxyError
from chaosproxy.experiment.model import BUNDLED_LOCUSTFILES, USER_AGENTS, Experiment

LOADGEN = Path(__file__).resolve().parent / "loadgen"


class SetupError(ChaosProxyError):
    """The experiment could not start: a process died, a URL did not answer (exit code 2)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal, wait up to `timeout`, then kill. The exit code (None if it would not die)."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.proc.wait(), 5.0)
        return None


async def spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    f = log.open("ab")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=f,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    finally:
        f.close()
    return Child(name, proc, log)


@dataclass
class StartedProxy:
    child: Child
    url: str  # where data goes
    admin: str  # its admin API
    token: str | None = None  # the admin API's bearer token (set when it is off loopback)
    tcp: dict[str, str] = field(default_factory=dict)  # --tcp NAME -> the HOST:PORT it bound


def _host_port(text: str | None, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`HOST:PORT` as the experiment file gives it (port 0 or none: a free one)."""
    if not text:
        return default_host, 0
    h, _, p = text.rpartition(":")
    return h.strip("[]") or default_host, int(p)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_argv(
    exp: Experiment,
    out: Path,
    listen: tuple[str, int],
    admin: tuple[str, int],
    scenario_dir: Path | None,
    address_file: Path | None = None,
) -> list[str]:
    """`chaosproxy run` as the runner starts it: its own flags (`model.RUNNER_FLAGS`, which
    `proxy.args` may not repeat), then the experiment's `proxy.args`."""
    assert exp.proxy is not None
    return [
        sys.executable,
        "-m",
        "chaosproxy",
        "run",
        "--upstream",
        exp.proxy.upstream,
        "--listen",
        f"{listen[0]}:{listen[1]}",
        "--admin",
        f"{admin[0]}:{admin[1]}",
        "--journal",
        str(out / "journal.jsonl"),
        "--client-id-header",
        "X-Chaos-User",
        "--reload-interval",
        "0",
        *(["--scenario-dir", str(scenario_dir)] if scenario_dir else []),
        *(["--address-file", str(address_file)] if address_file else []),
        *exp.proxy.args,
    ]


async def start_proxy(exp: Experiment, out: Path, scenario_dir: Path | None) -> StartedProxy:
    """`chaosproxy run` for this experiment, with a journal in `out`; waits until it answers.

    It listens where `proxy.listen` says, and its admin API (Prometheus scrapes `/metrics`
    there) where `proxy.admin` says, by default on loopback; a port left out or 0 is the one the
    kernel gives it, learnt from its `--address-file` (choosing a free port beforehand races
    every other program for it). Off loopback the admin API gets a fresh bearer token (passed
    in the environment, not on the command line): `/metrics` and `/healthz` stay open, the rest
    answers only the runner."""
    assert exp.proxy is not None
    spec = exp.proxy
    host, port = _host_port(spec.listen)
    admin_host, admin_port = _host_port(spec.admin)
    token = None if _loopback(admin_host) else secrets.token_urlsafe(24)
    where = out / "proxy-address.json"
    where.unlink(missing_ok=True)
    argv = proxy_argv(exp, out, (host, port), (admin_host, admin_port), scenario_dir, where)
    # The runner owns the token: one set in its own environment (for `ctl`) must not lock it out.
    env = {"CHAOSPROXY_ADMIN_TOKEN": token or ""}
    child = await spawn("proxy", argv, out / "proxy.log", env)
    try:
        bound = await _bound_addresses(child, where)
    except SetupError:
        await child.stop()
        raise
    port, admin_port = split(bound.listen)[1], split(bound.admin)[1]
    reach = "127.0.0.1" if admin_host in ("0.0.0.0", "", "::") else admin_host
    admin = f"http://{_url_host(reach)}:{admin_port}"
    connect = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    proxy = StartedProxy(child, f"http://{_url_host(connect)}:{port}", admin, token, bound.tcp)
    async with AdminClient(admin, token, timeout=1.0) as client:
        for _ in range(150):  # up to ~15 s
            if not child.running:
                raise SetupError(f"the proxy exited ({child.proc.returncode}):\n{child.tail()}")
            with contextlib.suppress(ChaosProxyError):
                if await client.health():
                    return proxy
            await asyncio.sleep(0.1)
    await child.stop()
    raise SetupError(f"the proxy did not answer on {admin} within 15 s:\n{child.tail()}")


async def _bound_addresses(child: Child, where: Path) -> Addresses:
    """The proxy's `--address-file`, once it has bound every listener (up to ~60 s: imports
    on a loaded machine are slow); a proxy that exits first says why."""
    for _ in range(600):
        if not child.running:
            raise SetupError(f"the proxy exited ({child.proc.returncode}):\n{child.tail()}")
        bound = read_addresses(str(where))
        if bound is not None:
            return bound
        await asyncio.sleep(0.1)
    raise SetupError(f"the proxy did not bind its listeners within 60 s:\n{child.tail()}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def requests_json(exp: Experiment) -> str:
    """The default locustfile's requests, user-agent presets expanded."""
    out = []
    for r in exp.load.requests:
        headers = dict(r.headers)
        if r.user_agent:
            headers["User-Agent"] = USER_AGENTS.get(r.user_agent, r.user_agent)
        item: dict[str, object] = {"path": r.path, "method": r.method, "weight": r.weight}
        if headers:
            item["headers"] = headers
        if r.body is not None:
            item["body"] = r.body
        if r.name:
            item["name"] = r.name
        if r.kind != "unary":  # a gRPC streaming call (locustfile: grpc)
            item["kind"] = r.kind
            item["messages"] = r.messages
        out.append(item)
    return json.dumps(out)


def locustfile(exp: Experiment) -> Path:
    if exp.load.locustfile in BUNDLED_LOCUSTFILES:
        return LOADGEN / BUNDLED_LOCUSTFILES[exp.load.locustfile]
    path = Path(exp.load.locustfile)
    return path if path.is_absolute() else exp.base_dir / path


QUIT_GRACE = 10.0  # seconds Locust gets to stop by itself once the plan has ended


@dataclass
class Load:
    master: Child
    workers: list[Child] = field(default_factory=list)
    master_port: int | None = None

    @property
    def children(self) -> list[Child]:
        return [self.master, *self.workers]

    async def stop(self, planned_end: bool = False) -> None:
        """SIGINT: Locust stops the users and still writes every report. At the planned end
        the plan's shape stops Locust by itself, and it is given `QUIT_GRACE` to: a SIGINT in
        the middle of its own quit interrupts it before it writes locust.json (seen on a busy
        machine)."""
        if planned_end and self.master.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.master.proc.wait(), QUIT_GRACE)
        await self.master.stop(signal.SIGINT, timeout=20.0)
        for w in self.workers:
            await w.stop(signal.SIGINT, timeout=10.0)


async def start_load(
    exp: Experiment,
    out: Path,
    target: str,
    run_id: str,
    plan: Path,
    client_out: Path,
    workers: int,
    seed: int | None,
    remote_workers: int = 0,
    master_bind: tuple[str, int] | None = None,
    cohort: dict[str, float] | None = None,
) -> Load:
    files = f"{locustfile(exp)},{LOADGEN / 'plugin.py'}"
    common = ["-f", files, "--chaos-run-id", run_id]
    if exp.load.locustfile in BUNDLED_LOCUSTFILES:
        common += [
            "--chaos-requests",
            requests_json(exp),
            "--chaos-wait",
            str(exp.load.wait),
        ]
    if seed is not None:
        common += ["--chaos-seed", str(seed)]
    if cohort is not None:  # the control group: the plugin labels users (reaches workers too)
        common += ["--chaos-cohort", json.dumps(cohort)]
    locust = [sys.executable, "-m", "locust"]
    head = [
        *locust,
        "--headless",
        *common,
        "--host",
        target,
        "--chaos-plan",
        str(plan),
        "--chaos-out",
        str(client_out),
        "--json-file",
        str(out / "locust"),
        "--csv",
        str(out / "locust"),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if workers <= 0 and remote_workers <= 0:
        return Load(await spawn("locust", head, out / "locust.log"))
    bind_host, port = master_bind or ("0.0.0.0" if remote_workers else "127.0.0.1", 0)
    port = port or free_port(bind_host)
    master = await spawn(
        "locust-master",
        [
            *head,
            "--master",
            "--master-bind-host",
            bind_host,
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(workers + remote_workers),
            "--expect-workers-max-wait",
            "120" if remote_workers else "30",
        ],
        out / "locust.log",
    )
    load = Load(master, master_port=port)
    for i in range(workers):
        argv = [
            *locust,
            "--worker",
            *common,
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(port),
            "--loglevel",
            "WARNING",
        ]
        load.workers.append(await spawn(f"locust-worker-{i}", argv, out / f"locust-worker-{i}.log"))
    return load
