"""`chaosproxy demo` (the guided experiment), `demo-service` and `demo-gateway` (its parts).

The demo system: a gateway that calls a primary and fails over to a replica; chaosproxy sits in
front of the primary. `chaosproxy demo` runs the bundled experiment twice — with failover, then
with failover switched off — so its checks PASS, and then the one that matters (clients stay
served) FAILs and halts the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from chaosproxy.cli.common import duration, host_port, http_url

if TYPE_CHECKING:
    from chaosproxy.demo.gateway import GatewayConfig
    from chaosproxy.demo.grpc_system import GrpcDemoSystem
    from chaosproxy.experiment.processes import StartedProxy


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    svc = sub.add_parser(
        "demo-service",
        help="run the bundled demo JSON service",
        description="The demo JSON service: GET /api/items, /api/items/{id}, "
        "/api/slow?delay=SECONDS, POST /api/echo, GET /static/app.js, /healthz.",
    )
    svc.add_argument("--listen", type=host_port, default="127.0.0.1:9000", help="HOST:PORT")
    env_defaults(svc)
    svc.set_defaults(func=demo_service_command)

    gw = sub.add_parser(
        "demo-gateway",
        help="run the demo gateway (calls a primary, fails over to a replica)",
        description="A client-facing gateway: every request goes to --primary; on a 5xx, reset "
        "or timeout it goes to --replica (unless --no-failover). Put chaosproxy in front of the "
        "primary.",
    )
    gw.add_argument("--listen", type=host_port, default="127.0.0.1:8000", help="HOST:PORT")
    gw.add_argument("--primary", type=http_url, required=True, metavar="URL")
    gw.add_argument("--replica", type=http_url, metavar="URL")
    gw.add_argument("--no-failover", dest="failover", action="store_false")
    gw.add_argument("--timeout", type=duration, default=1.0, help="per call to the primary")
    gw.add_argument(
        "--breaker",
        type=int,
        default=0,
        metavar="N",
        help="open a circuit breaker after N primary failures in a row (0: none)",
    )
    gw.add_argument(
        "--breaker-open", type=duration, default=5.0, help="how long the breaker stays open"
    )
    env_defaults(gw)
    gw.set_defaults(func=demo_gateway_command)

    demo = sub.add_parser(
        "demo",
        help="the guided experiment: a system with failover under load while chaosproxy breaks "
        "its primary, then the same without failover",
        description="Start the demo system (gateway, primary, replica), run the bundled "
        "experiment with failover (PASS) and without (FAIL), and show why.",
    )
    demo.add_argument(
        "--experiment",
        metavar="NAME",
        help="run this bundled experiment against the demo system instead "
        "(see `chaosproxy experiment list`)",
    )
    demo.add_argument(
        "--failover",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --experiment: whether the demo gateway fails over to the replica (default: "
        "not for the bundled experiments named *no-failover, yes for the others)",
    )
    demo.add_argument(
        "--control-group",
        action="store_true",
        help="the same pair of experiments, judged against a control group: the fault hits "
        "half of the users, and the checks compare them with the other half in the same seconds",
    )
    demo.add_argument(
        "--grpc",
        action="store_true",
        help="the same pair of experiments against a gRPC system: gRPC load on a gRPC gateway "
        "whose primary's calls chaosproxy aborts with UNAVAILABLE (needs the grpc extra)",
    )
    demo.add_argument(
        "--explore",
        action="store_true",
        help="no experiment: start the demo system and chaosproxy, print commands to try, "
        "keep running",
    )
    demo.add_argument(
        "--duration",
        type=duration,
        default=None,
        help="with --explore: keep running this long (default: until Ctrl-C)",
    )
    demo.add_argument("--out", default="reports", help="where results go (default reports/)")
    demo.set_defaults(func=demo_command)


async def _wait_for_signal(limit: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), limit)


async def serve(app: Any, host: str, port: int) -> tuple[Any, int]:
    """Start an aiohttp app; (runner, bound port)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])


def demo_service_command(args: argparse.Namespace) -> int:
    from chaosproxy.common.logs import setup_logging
    from chaosproxy.demo.service import make_app

    setup_logging()

    async def main() -> None:
        runner, port = await serve(make_app(), *args.listen)
        print(f"demo service on http://{args.listen[0]}:{port}", flush=True)
        await _wait_for_signal(None)
        await runner.cleanup()

    asyncio.run(main())
    return 0


def demo_gateway_command(args: argparse.Namespace) -> int:
    from chaosproxy.common.logs import setup_logging
    from chaosproxy.demo.gateway import GatewayConfig, make_gateway

    setup_logging()
    cfg = GatewayConfig(
        primary=str(args.primary).rstrip("/"),
        replica=str(args.replica).rstrip("/") if args.replica else None,
        failover=args.failover,
        timeout=args.timeout,
        breaker_threshold=args.breaker,
        breaker_open=args.breaker_open,
    )

    async def main() -> None:
        runner, port = await serve(make_gateway(cfg), *args.listen)
        print(f"demo gateway on http://{args.listen[0]}:{port} -> {cfg.primary}", flush=True)
        await _wait_for_signal(None)
        await runner.cleanup()

    asyncio.run(main())
    return 0


class DemoSystem:
    """Primary and replica (the demo service) and gateways, all on free loopback ports."""

    def __init__(self) -> None:
        self.runners: list[Any] = []
        self.primary = self.replica = ""
        self.unbound: list[GatewayConfig] = []  # gateways waiting for `on_proxy`

    async def start(self) -> None:
        from chaosproxy.demo.service import make_app

        for attr in ("primary", "replica"):
            runner, port = await serve(make_app(), "127.0.0.1", 0)
            self.runners.append(runner)
            setattr(self, attr, f"http://127.0.0.1:{port}")

    async def gateway(self, proxy_port: int | None, failover: bool, **options: Any) -> str:
        """A gateway calling the primary through the proxy on `proxy_port`; None: through the
        proxy `point_at` is given next (an experiment's own, once it has bound a port).
        `options`: the rest of `GatewayConfig` (breaker, timeout)."""
        from chaosproxy.demo.gateway import GatewayConfig, make_gateway

        primary = f"http://127.0.0.1:{proxy_port}" if proxy_port is not None else ""
        cfg = GatewayConfig(primary, self.replica, failover=failover, **options)
        if proxy_port is None:
            self.unbound.append(cfg)
        runner, port = await serve(make_gateway(cfg), "127.0.0.1", 0)
        self.runners.append(runner)
        return f"http://127.0.0.1:{port}"

    def point_at(self, proxy_url: str) -> None:
        """The gateways made without a port call the primary through this proxy."""
        for cfg in self.unbound:
            cfg.primary = proxy_url
        self.unbound.clear()

    def on_proxy(self, proxy: StartedProxy) -> None:
        """`RunOptions.on_proxy`: the experiment's own proxy is the one to call through."""
        self.point_at(proxy.url)

    async def stop(self) -> None:
        for r in reversed(self.runners):
            await r.cleanup()


async def run_against_demo(
    system: DemoSystem | GrpcDemoSystem, name: str, failover: bool, out: str, stop: asyncio.Event
) -> Any:
    """Run a bundled experiment with the CHAOS_* variables pointing at the demo system."""
    from pathlib import Path

    from chaosproxy.cli.experiment import resolve
    from chaosproxy.experiment.run_state import RunOptions, default_out
    from chaosproxy.experiment.runner import run_experiment
    from chaosproxy.experiment.spec import load_experiment_file

    gateway = await system.gateway(None, failover)  # through the runner's proxy, once bound
    os.environ.update(
        {
            "CHAOS_UPSTREAM": system.primary,
            "CHAOS_PROXY_LISTEN": "127.0.0.1:0",
            "CHAOS_TARGET": gateway,
        }
    )
    exp = load_experiment_file(resolve(name))
    opts = RunOptions(
        out=Path(out) / default_out(exp).name,
        command=f"chaosproxy demo (experiment {name}, {'with' if failover else 'no'} failover)",
        stop=stop,
        on_proxy=system.on_proxy,
    )
    return await run_experiment(exp, opts)


def gateway_failover(experiment: str, asked: bool | None) -> bool:
    """Whether the demo gateway fails over for `--experiment`: as asked, else as the bundled
    experiments' names say (those meant for a system without failover end in `no-failover`)."""
    if asked is not None:
        return asked
    return not experiment.endswith("no-failover")


def demo_command(args: argparse.Namespace) -> int:
    from chaosproxy.common.logs import setup_logging

    setup_logging(level="warning")
    if args.explore:
        return asyncio.run(_explore(args.duration))

    async def main() -> int:
        from chaosproxy.cli.demo_text import INTROS, SECONDS, summary
        from chaosproxy.experiment.processes import SetupError

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.failover is not None and not args.experiment:
            print(
                "chaosproxy demo: --failover / --no-failover go with --experiment", file=sys.stderr
            )
            return 2
        if args.grpc and args.control_group:
            print("chaosproxy demo: --grpc and --control-group: one at a time", file=sys.stderr)
            return 2
        grpc = args.grpc or (args.experiment or "").startswith("demo-grpc")
        if grpc:
            from chaosproxy.common.errors import ChaosProxyError

            try:
                from chaosproxy.demo.grpc_system import GrpcDemoSystem
            except ChaosProxyError as e:  # grpcio is the grpc extra
                print(f"chaosproxy demo: {e}", file=sys.stderr)
                return 2
            system: DemoSystem | GrpcDemoSystem = GrpcDemoSystem()
        else:
            system = DemoSystem()
        await system.start()
        try:
            if args.experiment:
                failover = gateway_failover(args.experiment, args.failover)
                print(
                    "demo system: the gateway "
                    + ("fails over to the replica" if failover else "has no failover")
                    + ("" if args.failover is not None else " (--failover / --no-failover)"),
                    flush=True,
                )
                outcome = await run_against_demo(system, args.experiment, failover, args.out, stop)
                return int(outcome.exit_code)
            control = "grpc-" if grpc else "control-" if args.control_group else ""
            print(INTROS[control], flush=True)
            first = await run_against_demo(system, f"demo-{control}failover", True, args.out, stop)
            if stop.is_set():
                return 130
            print(SECONDS[control], flush=True)
            second = await run_against_demo(
                system, f"demo-{control}no-failover", False, args.out, stop
            )
            if stop.is_set():
                return 130
        except SetupError as e:
            print(f"chaosproxy demo: {e}", file=sys.stderr)
            return 2
        finally:
            await system.stop()
        print(summary(first, second), flush=True)
        return 0 if first.verdict == "PASS" and second.verdict == "FAIL" else 1

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130


async def _explore(limit: float | None) -> int:
    import yarl

    from chaosproxy.experiment.processes import free_port
    from chaosproxy.process.runtime import Runtime, Settings

    system = DemoSystem()
    await system.start()
    port = free_port()
    gateway = await system.gateway(port, failover=True)
    rt = Runtime(
        Settings(
            upstream=yarl.URL(system.primary),
            listen_host="127.0.0.1",
            listen_port=port,
            admin_host="127.0.0.1",
            admin_port=0,
            grace=2.0,
        )
    )
    await rt.start()
    p, a = rt.proxy_url, rt.admin_url
    print(
        f"""demo service (primary)  {system.primary}
demo service (replica)  {system.replica}
chaosproxy              {p}  -> primary   (admin API {a})
gateway (failover)      {gateway}  -> chaosproxy, else replica

Try:

  curl -si {gateway}/api/items/3 | grep -i x-served-by        # primary
  curl -s -X POST {a}/scenarios/post-deploy-breakage/start
  curl -si {gateway}/api/items/3 | grep -i x-served-by        # replica: failover at work
  curl -i {p}/api/items/3                                     # the primary's 500, direct
  curl -s {a}/status
  curl -s -X POST {a}/rules -d '{{"fault": {{"latency": {{"delay": "300ms"}}}}, "ttl": "2m"}}'
  curl -s {a}/metrics | grep ^chaosproxy_
  curl -s -X POST {a}/reset                                   # everything healthy again

Ctrl-C stops it.""",
        flush=True,
    )
    await _wait_for_signal(limit)
    await rt.stop()
    await system.stop()
    return 0
