"""`chaosproxy demo-service` (the bundled service) and `chaosproxy demo` (service + proxy)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from chaosproxy.cli.common import duration, host_port


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    svc = sub.add_parser("demo-service", help="run the bundled demo JSON service")
    svc.add_argument("--listen", type=host_port, default="127.0.0.1:9000", help="HOST:PORT")
    env_defaults(svc)
    svc.set_defaults(func=demo_service_command)

    demo = sub.add_parser(
        "demo",
        help="a guided tour: the demo service, chaosproxy in front of it, a short scenario",
        description="Start the demo service and chaosproxy, replay an 11-second scenario while a "
        "desktop and a mobile user call the API, print what each saw, then keep running.",
    )
    demo.add_argument(
        "--listen", type=host_port, default="127.0.0.1:0", help="proxy HOST:PORT (default: free)"
    )
    demo.add_argument(
        "--admin", type=host_port, default="127.0.0.1:0", help="admin HOST:PORT (default: free)"
    )
    demo.add_argument(
        "--service",
        type=host_port,
        default="127.0.0.1:0",
        help="demo service HOST:PORT (default: free)",
    )
    demo.add_argument(
        "--no-tour",
        dest="tour",
        action="store_false",
        help="skip the guided scenario, just start both",
    )
    demo.add_argument(
        "--duration",
        type=duration,
        default=None,
        help="after the tour, keep running this long (default: until Ctrl-C)",
    )
    demo.set_defaults(func=demo_command)


async def _wait_for_signal(limit: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), limit)


async def start_demo_service(host: str, port: int) -> tuple[Any, int]:
    from aiohttp import web

    from chaosproxy.demo_service import make_app

    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


def demo_service_command(args: argparse.Namespace) -> int:
    from chaosproxy.logs import setup_logging

    setup_logging()

    async def main() -> None:
        runner, port = await start_demo_service(*args.listen)
        print(f"demo service on http://{args.listen[0]}:{port}", flush=True)
        await _wait_for_signal(None)
        await runner.cleanup()

    asyncio.run(main())
    return 0


def demo_command(args: argparse.Namespace) -> int:
    import yarl

    from chaosproxy.logs import setup_logging
    from chaosproxy.runtime import Runtime, Settings

    setup_logging(level="warning")

    async def main() -> None:
        from collections import Counter

        from chaosproxy.demo import report, tour
        from chaosproxy.engine.events import FaultInjected

        runner, port = await start_demo_service(*args.service)
        service = f"http://{args.service[0]}:{port}"
        rt = Runtime(
            Settings(
                upstream=yarl.URL(service),
                listen_host=args.listen[0],
                listen_port=args.listen[1],
                admin_host=args.admin[0],
                admin_port=args.admin[1],
                grace=2.0,
            )
        )
        await rt.start()
        p, a = rt.proxy_url, rt.admin_url
        print(f"demo service  {service}\nchaosproxy    {p}  (admin API {a})\n", flush=True)
        if args.tour:
            injected: Counter[str] = Counter()
            rt.bus.subscribe(FaultInjected, lambda ev: injected.update([ev.fault]))
            print(
                "Replaying 'demo-tour' (11 s): healthy -> broken-release (500s on /api/**) -> "
                "slow-dependency (lognormal latency) -> mobile-trouble (half the phone's "
                "requests reset) -> recovered.\nA desktop browser and a phone call "
                "GET /api/items/N through the proxy meanwhile...\n",
                flush=True,
            )
            tallies = await tour(p, rt.engine)
            print(report(tallies))
            faults = ", ".join(f"{n} {name}" for name, n in sorted(injected.items()))
            seen = sum(t.resets for t in tallies.values())
            print(f"\nfaults injected: {faults or 'none'}. The desktop user never saw a reset.")
            if injected["reset"] > seen:
                print(
                    f"The phone saw {seen} of {injected['reset']} resets: its HTTP client "
                    "(aiohttp) silently retries an idempotent GET once, and "
                    f"{injected['reset'] - 2 * seen} retries went through: the retry "
                    "amplification a chaos experiment should measure."
                )
            print()
        print(
            f"""Both keep running. Try:

  curl -i {p}/api/items/3                                    # untouched
  curl -s -X POST {a}/scenarios/post-deploy-breakage/start   # a bundled scenario
  curl -s {a}/status
  curl -i {p}/static/app.js                                  # static assets keep working
  curl -s -X POST {a}/rules -d '{{"fault": {{"latency": {{"delay": "300ms"}}}}, "ttl": "2m"}}'
  curl -s {a}/metrics | grep ^chaosproxy_
  curl -s -X POST {a}/reset                                  # everything healthy again

Ctrl-C stops it.""",
            flush=True,
        )
        await _wait_for_signal(args.duration)
        await rt.stop()
        await runner.cleanup()

    asyncio.run(main())
    return 0
