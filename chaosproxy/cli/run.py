"""`chaosproxy run`: the proxy itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from typing import Any

from chaosproxy.cli.common import DefaultsHelpFormatter
from chaosproxy.cli.run_flags import add_run_arguments
from chaosproxy.process.startup import install_uvloop, startup_error

READY_EPILOG = """\
Every flag also reads CHAOSPROXY_<FLAG> from the environment (CHAOSPROXY_UPSTREAM,
CHAOSPROXY_ADMIN_TOKEN, CHAOSPROXY_SCENARIO, ...); a flag given on the command line wins.
Once both listeners are bound it logs one line (also with --log-format json, as "msg"):
  proxying PROXY_URL -> UPSTREAM (admin ADMIN_URL)
With port 0 (e.g. --listen 127.0.0.1:0) that line tells the ports actually bound.
SIGTERM/SIGINT: stop accepting, let in-flight requests finish up to --grace, exit 0.
Bad input, a port in use or a file that cannot be used: one line on stderr naming the flag
(e.g. "--admin 127.0.0.1:8081: cannot listen: Address already in use"), exit code 2."""


def register(sub: Any) -> None:
    from chaosproxy.cli import env_defaults

    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the proxy in front of an upstream",
        description="Run the proxy.",
        epilog=READY_EPILOG,
        formatter_class=DefaultsHelpFormatter,
    )
    add_run_arguments(p)
    env_defaults(p)
    p.set_defaults(func=run_command)


def settings_from_args(args: argparse.Namespace) -> Any:
    from chaosproxy.process.runtime import Settings

    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("chaosproxy run: error: --tls-cert and --tls-key go together")
    if args.upstream_client not in ("native", "aiohttp"):
        raise SystemExit(
            f"chaosproxy run: error: --upstream-client: {args.upstream_client!r} "
            "is not one of native, aiohttp"
        )
    problem = check_files(args)
    if problem:
        raise SystemExit(f"chaosproxy run: error: {problem}")
    return Settings(
        upstream=args.upstream,
        listen_host=args.listen[0],
        listen_port=args.listen[1],
        admin_host=args.admin[0],
        admin_port=args.admin[1],
        upstream_timeout=args.upstream_timeout,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        send_timeout=args.send_timeout,
        max_connections=args.max_connections,
        pool_size=args.pool_size,
        keepalive=args.keepalive,
        upstream_max_head=args.upstream_max_head,
        upstream_max_headers=args.upstream_max_headers,
        upstream_ca=args.upstream_ca,
        upstream_insecure=args.upstream_insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        rewrite_host=args.rewrite_host,
        forwarded_headers=args.forwarded_headers,
        grace=args.grace,
        access_log=args.access_log,
        client_id_header=args.client_id_header,
        seed=args.seed,
        scenario=args.scenario or None,
        scenario_dir=args.scenario_dir or None,
        journal=args.journal or None,
        journal_max_size=args.journal_max_size or None,
        journal_keep=args.journal_keep,
        journal_faults=args.journal_faults,
        reload_interval=args.reload_interval,
        admin_token=args.admin_token or None,
        admin_insecure=args.admin_insecure,
        allow_header_faults=args.allow_header_faults,
        max_header_fault_percentage=args.max_header_fault_percentage,
        mark_injected=args.mark_injected,
        max_active_faults=args.max_active_faults,
        max_fault_duration=args.max_fault_duration,
        upstream_client=args.upstream_client,
        admin_in_proxy_loop=args.admin_in_proxy_loop,
    )


def check_files(args: argparse.Namespace) -> str | None:
    """The files and directories the flags name, checked before anything starts: the first
    problem, naming its flag, or None."""
    for flag in ("tls_cert", "tls_key", "upstream_ca"):
        path = getattr(args, flag)
        opt = "--" + flag.replace("_", "-")
        if path and not os.path.isfile(path):
            return f"{opt}: no such file: {path}"
        if path:
            try:
                open(path, "rb").close()
            except OSError as e:
                return f"{opt} {path}: cannot read: {e.strerror or e}"
    if args.tls_cert and args.tls_key:
        problem = check_tls(args.tls_cert, args.tls_key)
        if problem:
            return problem
    if args.upstream_ca:
        try:
            ssl.create_default_context(cafile=args.upstream_ca)
        except ssl.SSLError as e:
            return f"--upstream-ca {args.upstream_ca}: not a PEM CA bundle ({e.reason or e})"
    if args.scenario_dir and not os.path.isdir(args.scenario_dir):
        return f"--scenario-dir: no such directory: {args.scenario_dir}"
    if args.journal:
        return check_journal(args.journal)
    return None


def check_tls(cert: str, key: str) -> str | None:
    """Which of --tls-cert/--tls-key is wrong, rather than an OpenSSL code about both."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
        return None
    except ssl.SSLError as e:
        reason = e.reason or str(e)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        return f"--tls-cert {cert}: not a PEM certificate ({reason})"
    return f"--tls-key {key}: not the PEM private key of --tls-cert's certificate ({reason})"


def check_journal(path: str) -> str | None:
    """The journal is appended to (created when missing): its directory must exist."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"--journal {path}: is a directory, expected a file"
    if not os.path.isdir(directory):
        return f"--journal {path}: no such directory: {directory}"
    target = path if os.path.exists(path) else directory
    if not os.access(target, os.W_OK):
        return f"--journal {path}: cannot write: permission denied"
    return None


def run_command(args: argparse.Namespace) -> int:
    from chaosproxy.common.errors import ConfigError, UsageError
    from chaosproxy.process.logs import setup_logging
    from chaosproxy.process.runtime import Runtime

    setup_logging(args.log_format, args.log_level)
    try:
        settings = settings_from_args(args)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    install_uvloop()

    async def main() -> int:
        try:
            if args.workers > 1:
                from chaosproxy.workers.supervisor import Supervisor

                sup = Supervisor(settings, args.workers, args.log_format, args.log_level)
                return await sup.run()
            rt = Runtime(settings)
            await rt.serve_until_signal()
        except (OSError, UsageError, ConfigError) as e:  # ssl.SSLError is an OSError
            print(f"chaosproxy run: error: {startup_error(e, settings)}", file=sys.stderr)
            return 2
        return 0

    return asyncio.run(main())
