"""`chaosproxy run`: the proxy itself. Its flags are made from the options declared on
`Settings` (process/run_flags.py); here, the checks across flags and files, then the proxy or the
`--workers` supervisor."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from typing import Any

from chaosproxy.cli.common import DefaultsHelpFormatter
from chaosproxy.process.run_flags import add_run_arguments, settings_of
from chaosproxy.process.settings import Settings
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


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from the parsed flags, once the checks that involve several flags or the
    files they name have passed (SystemExit with the one line naming the flag otherwise)."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("chaosproxy run: error: --tls-cert and --tls-key go together")
    problem = check_files(args)
    if problem:
        raise SystemExit(f"chaosproxy run: error: {problem}")
    return settings_of(args, Settings)


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
    from chaosproxy.common.logs import setup_logging
    from chaosproxy.process.runtime import Runtime

    try:
        settings = settings_from_args(args)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    install_uvloop()

    async def main() -> int:
        try:
            if settings.workers > 1:
                from chaosproxy.workers.supervisor import Supervisor

                s = settings
                sup = Supervisor(s, s.workers, s.log_format, s.log_level)
                return await sup.run()
            rt = Runtime(settings)
            await rt.serve_until_signal()
        except (OSError, UsageError, ConfigError) as e:  # ssl.SSLError is an OSError
            print(f"chaosproxy run: error: {startup_error(e, settings)}", file=sys.stderr)
            return 2
        return 0

    return asyncio.run(main())
