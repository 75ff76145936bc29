"""Everything `chaosproxy run` can be told, each option declared once on the field it fills.

A declaration (`chaosproxy.process.options`) is the flag, its CHAOSPROXY_<FLAG> variable, its
default, its help text and its `--help` group: the command line (`chaosproxy.process.run_flags`),
the environment defaults, `--help` and the README's table of run options are made from these
fields, and the proxy reads the typed values. Adding an option is one declaration here plus the
code that uses it. Fields without a declaration are set by the program itself, never by a user.

Long on purpose: one declaration per option, each with the help a user reads, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import yarl

from chaosproxy.process.option_values import (
    OneOf,
    connection_cap,
    duration,
    fault_names,
    head_size,
    host_port,
    http_url,
    number,
    optional_duration,
    positive_int,
    size_or_never,
    text,
    whole_number,
    worker_count,
)
from chaosproxy.process.options import Option, option, repeated, required, switch
from chaosproxy.tcp.address import TcpSpec, tcp_specs

# `--help` groups, in the order they are shown.
PROXY = "proxy"
UPSTREAM = "upstream"
CLIENTS = "client limits"
TLS = "TLS"
SCENARIOS = "scenarios and the fault journal"
CONTROL = "admin API, header faults and guardrails"
PROCESS = "logs and processes"

_LISTEN = Option(
    "--listen", host_port, "0.0.0.0:8080", "HOST:PORT to serve", PROXY, metavar="HOST:PORT"
)
_ADMIN = Option(
    "--admin",
    host_port,
    "127.0.0.1:8081",
    "admin HOST:PORT",
    CONTROL,
    metavar="HOST:PORT",
)


@dataclass(frozen=True)
class Settings:
    """What a proxy runs with: by flag, by CHAOSPROXY_* variable, or built by code (tests)."""

    upstream: yarl.URL = required(  # noqa: RUF009 (a dataclasses.Field, as option() gives)
        "--upstream",
        http_url,
        help="the service to proxy, URL (required); https upstreams are verified "
        "(--upstream-ca, --upstream-insecure)",
        group=PROXY,
        metavar="URL",
    )
    listen_host: str = _LISTEN.field(0)
    listen_port: int = _LISTEN.field(1)
    tcp: tuple[TcpSpec, ...] = repeated(
        "--tcp",
        tcp_specs,
        help="also relay TCP, byte for byte: NAME=LISTEN:UPSTREAM, e.g. "
        "pg=127.0.0.1:6432:127.0.0.1:5432 (repeatable; the variable takes a comma list); rules "
        "with match: {tcp: NAME} fault its connections (docs/tcp.md)",
        group=PROXY,
        metavar="NAME=LISTEN:UPSTREAM",
    )
    rewrite_host: bool = switch(
        "--rewrite-host",
        help="send the upstream's host in Host instead of the client's",
        group=PROXY,
    )
    forwarded_headers: bool = switch(
        "--no-forwarded-headers", help="do not add X-Forwarded-For/-Proto/-Host", group=PROXY
    )
    grace: float = option(
        "--grace",
        "10s",
        duration,
        help="on SIGTERM, how long in-flight requests may take to finish",
        group=PROXY,
    )

    # ---------------------------------------------------------------- upstream
    upstream_timeout: float = option(
        "--upstream-timeout",
        "30s",
        duration,
        help="time allowed until the upstream's response headers (504 past it)",
        group=UPSTREAM,
    )
    connect_timeout: float = option(
        "--connect-timeout",
        "5s",
        duration,
        help="time allowed to connect to the upstream (502 past it)",
        group=UPSTREAM,
    )
    read_timeout: float | None = option(
        "--read-timeout",
        "5m",
        optional_duration,
        help="longest silence allowed from the upstream in the middle of a body: past it the "
        "client connection is closed ('off': wait forever; long-lived streams may need more)",
        group=UPSTREAM,
    )
    pool_size: int = option(
        "--pool-size",
        "256",
        positive_int,
        help="upstream keep-alive pool size (connections)",
        group=UPSTREAM,
    )
    keepalive: float = option(
        "--keepalive",
        "30s",
        duration,
        help="idle upstream connections are closed after this",
        group=UPSTREAM,
    )
    upstream_max_head: int = option(
        "--upstream-max-head",
        "64KiB",
        head_size,
        help="largest upstream response head (status line and headers) accepted: past it a "
        "JSON 502 and that upstream connection is closed (docs/reliability.md#broken-upstreams)",
        group=UPSTREAM,
        metavar="SIZE",
    )
    upstream_max_headers: int = option(
        "--upstream-max-headers",
        "128",
        positive_int,
        help="most header lines an upstream response head may have (502 past it)",
        group=UPSTREAM,
        metavar="N",
    )
    upstream_ca: str | None = option(
        "--upstream-ca",
        None,
        text,
        help="CA bundle to verify an https upstream (default: the system's CAs)",
        group=UPSTREAM,
        metavar="FILE",
    )
    upstream_insecure: bool = switch(
        "--upstream-insecure",
        help="do not verify the https upstream's certificate",
        group=UPSTREAM,
    )
    upstream_h2: bool = switch(
        "--upstream-h2",
        help="forward every request of an HTTP/2 client to the upstream over HTTP/2 (h2c with "
        "prior knowledge; ALPN h2 to an https upstream); gRPC requests always go that way "
        "(docs/http2.md)",
        group=UPSTREAM,
    )

    # ---------------------------------------------------------------- clients
    header_timeout: float = option(
        "--header-timeout",
        "30s",
        duration,
        help="time a client has to send a request's head (slowloris): past it a JSON 408 and "
        "the connection is closed",
        group=CLIENTS,
    )
    body_timeout: float | None = option(
        "--body-timeout",
        "30s",
        optional_duration,
        help="longest silence allowed in the middle of a request body: past it a JSON 408 and "
        "the connection is closed ('off': wait forever)",
        group=CLIENTS,
    )
    idle_timeout: float = option(
        "--idle-timeout",
        "75s",
        duration,
        help="a keep-alive client connection idle this long is closed",
        group=CLIENTS,
    )
    send_timeout: float | None = option(
        "--send-timeout",
        "60s",
        optional_duration,
        help="a client that takes no response bytes this long is closed and its upstream "
        "connection given up (nginx's send_timeout; 'off': wait forever)",
        group=CLIENTS,
    )
    max_connections: int | None = option(
        "--max-connections",
        "auto",
        connection_cap,
        help="open client connections; past it a new one gets a JSON 503 and is closed "
        "('auto': the open-file limit minus --pool-size and 128; docs/reliability.md)",
        group=CLIENTS,
    )
    client_id_header: str | None = option(
        "--client-id-header",
        None,
        text,
        help="request header that names the client (e.g. X-Client-Id), for per-client "
        "statistics such as early retries after Retry-After; default: the client's address",
        group=CLIENTS,
        metavar="NAME",
    )

    # ---------------------------------------------------------------- TLS
    tls_cert: str | None = option(
        "--tls-cert",
        None,
        text,
        help="serve TLS with this certificate chain (default: plain HTTP)",
        group=TLS,
        metavar="FILE",
    )
    tls_key: str | None = option(
        "--tls-key",
        None,
        text,
        help="private key for --tls-cert (required with it)",
        group=TLS,
        metavar="FILE",
    )

    # ---------------------------------------------------------------- scenarios, journal
    scenario: str | None = option(
        "--scenario",
        None,
        text,
        help="start this scenario at boot (a NAME resolves in --scenario-dir; default: none, "
        "start one through the admin API)",
        group=SCENARIOS,
        metavar="NAME|FILE",
    )
    scenario_dir: str | None = option(
        "--scenario-dir",
        None,
        text,
        help="where scenario NAMEs resolve and files are watched (default: the bundled ones)",
        group=SCENARIOS,
        metavar="DIR",
    )
    reload_interval: float = option(
        "--reload-interval",
        "1s",
        duration,
        help="how often scenario files are checked for changes (0: no hot reload)",
        group=SCENARIOS,
    )
    seed: int | None = option(
        "--seed",
        None,
        whole_number,
        help="seed for fault decisions (default: random, a new one per run)",
        group=SCENARIOS,
    )
    journal: str | None = option(
        "--journal",
        None,
        text,
        help="append one JSON line per injected fault to FILE (default: no journal; "
        "docs/journal.md)",
        group=SCENARIOS,
        metavar="FILE",
    )
    journal_max_size: int | None = option(
        "--journal-max-size",
        "100MiB",
        size_or_never,
        help="rotate the journal past SIZE (FILE -> FILE.1 -> ... FILE.N), never splitting a "
        "line; 0: never rotate (SIGHUP reopens FILE for outside rotation)",
        group=SCENARIOS,
        metavar="SIZE",
    )
    journal_keep: int = option(
        "--journal-keep",
        "5",
        positive_int,
        help="rotated journal files kept (FILE.1 ... FILE.N); the oldest beyond N is deleted",
        group=SCENARIOS,
        metavar="N",
    )
    journal_faults: frozenset[str] | None = option(
        "--journal-faults",
        None,
        fault_names,
        help="journal only these faults, a comma list (e.g. error,reset); default: all",
        group=SCENARIOS,
        metavar="LIST",
    )

    # ---------------------------------------------------------------- admin, guardrails
    admin_host: str = _ADMIN.field(0)
    admin_port: int = _ADMIN.field(1)
    admin_token: str | None = option(
        "--admin-token",
        None,
        text,
        help="admin routes (all but /healthz, /readyz, /metrics) require 'Authorization: Bearer "
        "TOKEN' (default: no token, allowed on a loopback --admin only; "
        "docs/admin-api.md#authentication)",
        group=CONTROL,
        metavar="TOKEN",
    )
    admin_insecure: bool = switch(
        "--admin-insecure",
        help="allow a non-loopback --admin address without --admin-token",
        group=CONTROL,
    )
    admin_in_proxy_loop: bool = switch(
        "--admin-in-proxy-loop",
        help="serve the admin API on the proxy's event loop instead of its own thread (admin "
        "calls then wait behind proxied requests when the proxy is saturated)",
        group=CONTROL,
    )
    toxiproxy_api: tuple[str, int] | None = option(
        "--toxiproxy-api",
        None,
        host_port,
        help="also serve a Toxiproxy-compatible HTTP API on HOST:PORT (Toxiproxy's own is "
        "127.0.0.1:8474): its clients drive the TCP proxies unchanged (docs/toxiproxy.md); "
        "off loopback only with --admin-insecure",
        group=CONTROL,
        metavar="HOST:PORT",
    )
    allow_header_faults: bool = switch(
        "--allow-header-faults",
        help="honour x-envoy-fault-* and x-chaos-fault request headers",
        group=CONTROL,
    )
    max_header_fault_percentage: float = option(
        "--max-header-fault-percentage",
        "100",
        number,
        help="cap on the percentage a fault header may ask for",
        group=CONTROL,
        metavar="PCT",
    )
    mark_injected: bool = switch(
        "--mark-injected",
        help="add X-Chaos-Injected to responses that carried a fault",
        group=CONTROL,
    )
    max_active_faults: int | None = option(
        "--max-active-faults",
        None,
        positive_int,
        help="at most N requests faulted at once; others pass untouched (counted) "
        "(default: no limit)",
        group=CONTROL,
        metavar="N",
    )
    max_fault_duration: float | None = option(
        "--max-fault-duration",
        "30m",
        optional_duration,
        help="a scenario or ad-hoc rule injects at most this long ('off': no limit)",
        group=CONTROL,
    )

    # ---------------------------------------------------------------- logs, processes
    log_format: str = option(
        "--log-format",
        "text",
        OneOf("text", "json"),
        help="log line format",
        group=PROCESS,
    )
    log_level: str = option(
        "--log-level",
        "info",
        OneOf("debug", "info", "warning", "error"),
        help="least severe level logged",
        group=PROCESS,
    )
    access_log: bool = switch("--access-log", help="log one line per request", group=PROCESS)
    workers: int = option(
        "--workers",
        "1",
        worker_count,
        help="proxy processes accepting on --listen (SO_REUSEPORT) behind the one --admin API; "
        "fault state such as rate_limit buckets is per worker (docs/operations.md)",
        group=PROCESS,
        metavar="N",
    )

    address_file: str | None = option(
        "--address-file",
        None,
        text,
        help="once every listener is bound, write where (JSON: listen, admin, toxiproxy_api, "
        "tcp) to FILE, removed at exit: how a script learns the ports of ':0' addresses "
        "(docs/operations.md)",
        group=PROCESS,
        metavar="FILE",
    )

    # ---------------------------------------------------------------- set by the program
    # `run --workers N` (chaosproxy/workers/): set in each worker process by the supervisor.
    worker: int | None = None  # this worker's index; None: the proxy owns its process alone
    reuse_port: bool = False  # SO_REUSEPORT on the proxy listener (workers share the port)
    scenario_at: float | None = None  # wall-clock origin of --scenario's timeline (None: now)
