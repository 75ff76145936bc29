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

    demo = sub.add_parser("demo", help="run the demo service with chaosproxy in front of it")
    demo.add_argument("--listen", type=host_port, default="127.0.0.1:8080", help="proxy HOST:PORT")
    demo.add_argument("--admin", type=host_port, default="127.0.0.1:8081", help="admin HOST:PORT")
    demo.add_argument(
        "--service", type=host_port, default="127.0.0.1:9000", help="demo service HOST:PORT"
    )
    demo.add_argument(
        "--duration",
        type=duration,
        default=None,
        help="stop by itself after this long (default: until Ctrl-C)",
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

    setup_logging()

    async def main() -> None:
        runner, port = await start_demo_service(*args.service)
        rt = Runtime(
            Settings(
                upstream=yarl.URL(f"http://{args.service[0]}:{port}"),
                listen_host=args.listen[0],
                listen_port=args.listen[1],
                admin_host=args.admin[0],
                admin_port=args.admin[1],
                grace=2.0,
            )
        )
        await rt.start()
        p, a = rt.proxy_url, rt.admin_url
        print(
            f"""
chaosproxy demo: the demo service on http://{args.service[0]}:{port}, chaosproxy in front of it.

  curl -i {p}/api/items             # passes through untouched
  curl -i {p}/api/items/3
  curl -i '{p}/api/slow?delay=0.5'
  curl -i -X POST --data-binary @README.md {p}/api/echo
  curl -s {a}/healthz ; curl -s {a}/readyz

Ctrl-C stops it.""",
            flush=True,
        )
        await _wait_for_signal(args.duration)
        await rt.stop()
        await runner.cleanup()

    asyncio.run(main())
    return 0
