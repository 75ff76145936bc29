"""What the HTTP/2 benches share: one nginx serving the same bodies over HTTP/1.1 and over h2c
(two ports, one worker process), and `h2load` runs read back as req/s, p50/p99 and errors.

h2load (Debian nghttp2-client, `make tools`) is the load for both protocols (`--h1` for
HTTP/1.1), so the two sides of a comparison have the same client. Its percentiles come from
its per-request log (`--log-file`: one row per request, microseconds to the end of the answer).
"""

from __future__ import annotations

import atexit
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _procs import pinned
from passthrough import BODIES

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 256;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{h1} backlog=1024;
        listen 127.0.0.1:{h2} http2 backlog=1024;
        root {d}/www;
        default_type application/octet-stream;
        location = /small {{ return 200 "hello, world\\n"; }}
        location = /64k {{ }}
    }}
}}
"""


def missing_tools() -> list[str]:
    """The programs these benches need that are not installed (`make tools` installs them)."""
    return [t for t in ("h2load", "nginx") if shutil.which(t) is None]


def require_tools() -> None:
    if missing := missing_tools():
        raise SystemExit(
            f"needs {' and '.join(missing)} (Debian nghttp2-client and nginx: `make tools`)"
        )


def workdir(name: str) -> Path:
    """A fresh temporary directory, removed when the bench exits (normally or not)."""
    d = tempfile.mkdtemp(prefix=f"chaosproxy-{name}-")
    atexit.register(shutil.rmtree, d, True)
    return Path(d)


def nginx_argv(h1_port: int, h2_port: int, d: Path) -> list[str]:
    """One nginx process: HTTP/1.1 on `h1_port`, h2c (prior knowledge) on `h2_port`, the same
    `/small` and `/64k` on both."""
    (d / "www").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    (d / "www" / "64k").write_bytes(BODIES["64k"])
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, h1=h1_port, h2=h2_port))
    return [shutil.which("nginx") or "nginx", "-c", str(conf), "-p", str(d)]


@dataclass
class Load:
    """One h2load run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # failed, errored or timed-out requests, and 4xx/5xx answers
    done: int

    @property
    def clean(self) -> bool:
        """Requests were answered, and none failed: numbers worth reading."""
        return self.done > 0 and self.errors == 0


def h2load(
    url: str, conns: int, streams: int, seconds: float, h1: bool = False, core: int = 1
) -> Load:
    """`conns` connections with `streams` requests in flight on each (HTTP/1.1: pipelined when
    above 1), for `seconds`, pinned to `core`."""
    with tempfile.TemporaryDirectory(prefix="chaosproxy-h2load-") as tmp:
        log = Path(tmp) / "requests.tsv"
        argv = [
            "h2load", "-t1", f"-c{conns}", f"-m{streams}", "-D", f"{round(seconds * 1000)}ms",
            f"--log-file={log}", *(["--h1"] if h1 else []), url,
        ]  # fmt: skip
        try:
            out = subprocess.run(
                pinned(core, argv), capture_output=True, text=True, timeout=seconds + 30
            ).stdout
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"h2load did not finish within {seconds + 30:g} s for {url}: a request that "
                f"was never answered holds it ({' '.join(argv)})"
            ) from e
        rows = [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    if m is None:
        raise RuntimeError(f"h2load gave no result for {url}:\n{out}")
    req = re.search(r"(\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"(\d+) 4xx, (\d+) 5xx", out)
    errors = sum(int(g) for g in req.groups()[1:]) if req else 0
    errors += sum(int(g) for g in codes.groups()) if codes else 0
    durations = sorted(int(r[2]) / 1000 for r in rows if len(r) >= 3)
    if len(durations) >= 2:
        qs = statistics.quantiles(durations, n=100)
        p50, p99 = qs[49], qs[98]
    else:
        p50 = p99 = float("nan")
    return Load(float(m.group(3)), p50, p99, errors, int(req.group(1)) if req else 0)
