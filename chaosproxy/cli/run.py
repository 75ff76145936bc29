"""`chaosproxy run`: the proxy itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from typing import Any

from chaosproxy.cli.common import (
    DefaultsHelpFormatter,
    duration,
    host_port,
    http_url,
    positive_int,
    size,
)


def optional_duration(value: str) -> float | None:
    """A duration, or `off`/`none`/`0` for no limit."""
    if value.strip().lower() in ("off", "none", "0"):
        return None
    return duration(value)


def connection_cap(value: str) -> int | None:
    """A number of connections, or `auto` (None: derived from the open-file limit)."""
    if value.strip().lower() == "auto":
        return None
    return positive_int(value)


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


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--upstream", type=http_url, required=True, help="the service to proxy, URL (required)"
    )
    p.add_argument("--listen", type=host_port, default="0.0.0.0:8080", help="HOST:PORT to serve")
    p.add_argument("--admin", type=host_port, default="127.0.0.1:8081", help="admin HOST:PORT")
    p.add_argument(
        "--upstream-timeout",
        type=duration,
        default="30s",
        help="time allowed until the upstream's response headers (504 past it)",
    )
    p.add_argument(
        "--connect-timeout",
        type=duration,
        default="5s",
        help="time allowed to connect to the upstream (502 past it)",
    )
    p.add_argument(
        "--read-timeout",
        type=optional_duration,
        default="5m",
        help="longest silence allowed from the upstream in the middle of a body: past it the "
        "client connection is closed ('off': wait forever; long-lived streams may need more)",
    )
    p.add_argument(
        "--header-timeout",
        type=duration,
        default="30s",
        help="time a client has to send a request's head (slowloris): past it a JSON 408 and "
        "the connection is closed",
    )
    p.add_argument(
        "--idle-timeout",
        type=duration,
        default="75s",
        help="a keep-alive client connection idle this long is closed",
    )
    p.add_argument(
        "--body-timeout",
        type=optional_duration,
        default="30s",
        help="longest silence allowed in the middle of a request body: past it a JSON 408 and "
        "the connection is closed ('off': wait forever)",
    )
    p.add_argument(
        "--max-connections",
        type=connection_cap,
        default="auto",
        help="open client connections; past it a new one gets a JSON 503 and is closed "
        "('auto': the open-file limit minus --pool-size and 128)",
    )
    p.add_argument(
        "--pool-size",
        type=positive_int,
        default="256",
        help="upstream keep-alive pool size (connections)",
    )
    p.add_argument(
        "--keepalive",
        type=duration,
        default="30s",
        help="idle upstream connections are closed after this",
    )
    p.add_argument(
        "--upstream-max-head",
        type=size,
        default="64KiB",
        metavar="SIZE",
        help="largest upstream response head (status line and headers) accepted: past it a "
        "JSON 502 and that upstream connection is closed",
    )
    p.add_argument(
        "--upstream-max-headers",
        type=positive_int,
        default="128",
        metavar="N",
        help="most header lines an upstream response head may have (502 past it)",
    )
    p.add_argument(
        "--upstream-client",
        default="native",
        help="native (own keep-alive pool, fastest) or aiohttp (ClientSession)",
    )
    p.add_argument(
        "--upstream-ca",
        metavar="FILE",
        help="CA bundle to verify an https upstream (default: the system's CAs)",
    )
    p.add_argument(
        "--upstream-insecure",
        action="store_true",
        help="do not verify the https upstream's certificate",
    )
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve TLS with this certificate chain (default: plain HTTP)",
    )
    p.add_argument(
        "--tls-key", metavar="FILE", help="private key for --tls-cert (required with it)"
    )
    p.add_argument(
        "--rewrite-host",
        action="store_true",
        help="send the upstream's host in Host instead of the client's",
    )
    p.add_argument(
        "--no-forwarded-headers",
        dest="forwarded_headers",
        action="store_false",
        help="do not add X-Forwarded-For/-Proto/-Host",
    )
    p.add_argument(
        "--grace",
        type=duration,
        default="10s",
        help="on SIGTERM, how long in-flight requests may take to finish",
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="least severe level logged",
    )
    p.add_argument("--access-log", action="store_true", help="log one line per request")
    p.add_argument(
        "--client-id-header",
        metavar="NAME",
        help="request header that names the client (e.g. X-Client-Id), for per-client "
        "statistics such as early retries after Retry-After; default: the client's address",
    )
    p.add_argument(
        "--seed", type=int, help="seed for fault decisions (default: random, a new one per run)"
    )
    p.add_argument(
        "--workers",
        type=worker_count,
        default="1",
        metavar="N",
        help="proxy processes accepting on --listen (SO_REUSEPORT) behind the one --admin API; "
        "fault state such as rate_limit buckets is per worker (docs/operations.md)",
    )
    add_scenario_arguments(p)
    add_control_arguments(p)


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """The scenario started at boot, where names resolve, the fault journal, hot reload."""
    p.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="start this scenario at boot (a NAME resolves in --scenario-dir; default: none, "
        "start one through the admin API)",
    )
    p.add_argument(
        "--scenario-dir",
        metavar="DIR",
        help="where scenario NAMEs resolve and files are watched (default: the bundled ones)",
    )
    p.add_argument(
        "--journal",
        metavar="FILE",
        help="append one JSON line per injected fault to FILE (default: no journal)",
    )
    p.add_argument(
        "--journal-max-size",
        type=size,
        default="100MiB",
        metavar="SIZE",
        help="rotate the journal past SIZE (FILE -> FILE.1 -> ... FILE.N), never splitting a "
        "line; 0: never rotate (SIGHUP reopens FILE for outside rotation)",
    )
    p.add_argument(
        "--journal-keep",
        type=positive_int,
        default="5",
        metavar="N",
        help="rotated journal files kept (FILE.1 ... FILE.N); the oldest beyond N is deleted",
    )
    p.add_argument(
        "--journal-faults",
        type=fault_names,
        metavar="LIST",
        help="journal only these faults, a comma list (e.g. error,reset); default: all",
    )
    p.add_argument(
        "--reload-interval",
        type=duration,
        default="1s",
        help="how often scenario files are checked for changes (0: no hot reload)",
    )


def add_control_arguments(p: argparse.ArgumentParser) -> None:
    """Admin auth, header faults, injected-marking and guardrail flags."""
    p.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="admin routes (all but /healthz, /readyz, /metrics) require 'Authorization: Bearer "
        "TOKEN' (default: no token, allowed on a loopback --admin only)",
    )
    p.add_argument(
        "--admin-insecure",
        action="store_true",
        help="allow a non-loopback --admin address without --admin-token",
    )
    p.add_argument(
        "--admin-in-proxy-loop",
        action="store_true",
        help="serve the admin API on the proxy's event loop instead of its own thread (admin "
        "calls then wait behind proxied requests when the proxy is saturated)",
    )
    p.add_argument(
        "--allow-header-faults",
        action="store_true",
        help="honour x-envoy-fault-* and x-chaos-fault request headers",
    )
    p.add_argument(
        "--max-header-fault-percentage",
        type=float,
        default=100.0,
        metavar="PCT",
        help="cap on the percentage a fault header may ask for",
    )
    p.add_argument(
        "--mark-injected",
        action="store_true",
        help="add X-Chaos-Injected to responses that carried a fault",
    )
    p.add_argument(
        "--max-active-faults",
        type=positive_int,
        metavar="N",
        help="at most N requests faulted at once; others pass untouched (counted) "
        "(default: no limit)",
    )
    p.add_argument(
        "--max-fault-duration",
        type=optional_duration,
        default="30m",
        help="a scenario or ad-hoc rule injects at most this long ('off': no limit)",
    )


MAX_WORKERS = 64  # a typo (--workers 400) should not start hundreds of processes


def worker_count(value: str) -> int:
    n = positive_int(value)
    if n > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"at most {MAX_WORKERS} workers, got {n}")
    return n


def fault_names(value: str) -> frozenset[str]:
    """A comma list of fault names, each one the proxy knows."""
    from chaosproxy.faults import registry

    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    known = registry()
    unknown = sorted(names - set(known))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault {', '.join(map(repr, unknown)) or 'list (empty)'}; "
            f"known faults: {', '.join(sorted(known))}"
        )
    return names


def settings_from_args(args: argparse.Namespace) -> Any:
    from chaosproxy.runtime import Settings

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


def startup_error(e: BaseException, settings: Any) -> str:
    """One line (or a located list) naming the flag or file a startup failure is about."""
    from chaosproxy.errors import ConfigError

    if isinstance(e, ConfigError):
        if all(p.line == 0 for p in e.problems):  # unknown name, missing or unreadable file
            return "--scenario: " + "; ".join(
                p.message if p.file == "<input>" else str(p) for p in e.problems
            )
        return f"--scenario {settings.scenario}: invalid scenario:\n{e}"
    if isinstance(e, ssl.SSLError):
        return f"--tls-cert/--tls-key: cannot load TLS files: {e.reason or e}"
    if isinstance(e, OSError):
        reason = e.strerror or str(e)
        files = {
            settings.journal: "--journal",
            settings.tls_cert: "--tls-cert",
            settings.tls_key: "--tls-key",
            settings.upstream_ca: "--upstream-ca",
            settings.scenario_dir: "--scenario-dir",
        }
        name = os.fsdecode(e.filename) if e.filename else None
        if name and name in files:
            return f"{files[name]} {name}: {reason}"
        if name:
            return f"{name}: {reason}"
        return f"cannot start: {reason}"
    return str(e)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_command(args: argparse.Namespace) -> int:
    from chaosproxy.errors import ConfigError, UsageError
    from chaosproxy.logs import setup_logging
    from chaosproxy.runtime import Runtime

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
