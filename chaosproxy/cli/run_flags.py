"""The flags of `chaosproxy run`: each one's name, type, default and help, in the groups
`--help` shows. `run.py` turns the parsed flags into `Settings` and runs the proxy."""

from __future__ import annotations

import argparse

from chaosproxy.cli.common import duration, host_port, http_url, positive_int, size


def optional_duration(value: str) -> float | None:
    """A duration, or `off`/`none`/`0` for no limit."""
    if value.strip().lower() in ("off", "none", "0"):
        return None
    return duration(value)


MIN_HEAD = 1024  # below this no real response head fits: every answer would be a 502


def head_size(value: str) -> int:
    """A size for a response head: at least 1 KiB (0 would refuse every response)."""
    n = size(value)
    if n < MIN_HEAD:
        raise argparse.ArgumentTypeError(f"at least {MIN_HEAD} bytes (1KiB), got {n}")
    return n


def connection_cap(value: str) -> int | None:
    """A number of connections, or `auto` (None: derived from the open-file limit)."""
    if value.strip().lower() == "auto":
        return None
    return positive_int(value)


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
        "--send-timeout",
        type=optional_duration,
        default="60s",
        help="a client that takes no response bytes this long is closed and its upstream "
        "connection given up (nginx's send_timeout; 'off': wait forever)",
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
        type=head_size,
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
