"""Per-request cost by part: where chaosproxy's CPU goes on the pass-through path.

Starts nginx (or the aiohttp upstream of passthrough.py) on core 1 and `chaosproxy run` with a
scenario whose rules never match on core 0, drives it with wrk (small body, c=16), samples it
with py-spy (pip-installable: `.venv/bin/pip install py-spy`) and folds every sample into one
part of the request's path. Parts times measured CPU per request give microseconds per request.

    .venv/bin/python bench/costs.py
    .venv/bin/python bench/costs.py --source /tmp/old-tree    # another checkout's chaosproxy

`--source DIR` runs the `chaosproxy` package found in DIR (e.g. `git archive REV chaosproxy`
unpacked there), to put a before and an after side by side.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _procs import free_port, pinned, started
from passthrough import NO_MATCH_SCENARIO, cpu_seconds, nginx_argv, run_wrk

HERE = Path(__file__).resolve().parent
PY = sys.executable

# Frame patterns per part, checked from the innermost frame outwards: the first match wins.
# Some names are only in older trees (aiohttp's server, `upstream_headers`, `fetch_upstream`):
# they keep `--source` measurements of those trees comparable.
PARTS: list[tuple[str, re.Pattern[str]]] = [
    ("id", re.compile(r"RequestIds\.next")),
    ("decide", re.compile(r"Engine\.decide|request_faults|admit")),
    ("events/metrics/stats", re.compile(r"ProxyCore\.done|EventBus\.emit|LoadSignals")),
    (
        "upstream",
        re.compile(
            r"NativeUpstream|\b_?Conn\.|\b_?Response\.|\bPool\.|upstream_lines|upstream_headers|"
            r"Relay\.send|Forwarder\.lines|scan_head|"
            r"fetch_upstream|"
            r"AiohttpUpstream|ClientSession|client_reqrep|connector\.py"
        ),
    ),
    (
        "write",
        re.compile(
            r"send_head|write_body|end_body|response_head|ClientConnection\.write|"
            r"stream_reply|StreamResponse|web_response|http_writer|_OneWriteResponse|respond|"
            r"ProxyExchange\.(send_answer|write|end)\b|Relay\.(head|body|flush|end|answer_error)\b"
        ),
    ),
    (
        "parse",
        re.compile(
            r"ClientConnection\.(data_received|on_)|RequestHead|RequestHandler\.data_received|"
            r"http_parser|web_request|BaseRequest|ProxyExchange\.__init__"
        ),
    ),
]


def classify(stack: list[str]) -> str:
    for frame in reversed(stack):
        for part, pattern in PARTS:
            if pattern.search(frame):
                return part
    return "loop, tasks, glue"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", help="directory holding the chaosproxy package to measure")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--aiohttp-upstream", action="store_true")
    ap.add_argument("--raw", metavar="FILE", help="also keep py-spy's folded samples there")
    a = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    work = Path(tempfile.mkdtemp(prefix="chaosproxy-costs-"))
    scenario = work / "no-match.yaml"
    scenario.write_text(NO_MATCH_SCENARIO)
    up, cp, admin = free_port(), free_port(), free_port()
    use_nginx = bool(shutil.which("nginx")) and not a.aiohttp_upstream
    up_argv = (
        nginx_argv(up, work / "nginx")
        if use_nginx
        else [PY, str(HERE / "passthrough.py"), "--serve-upstream", str(up)]
    )
    env = dict(os.environ)
    if a.source:
        env["PYTHONPATH"] = str(Path(a.source).resolve())
    chaos = [
        PY, "-m", "chaosproxy", "run", "--upstream", f"http://127.0.0.1:{up}",
        "--listen", f"127.0.0.1:{cp}", "--admin", f"127.0.0.1:{admin}",
        "--log-level", "warning", "--scenario", str(scenario), "--reload-interval", "0",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{cp}/small"
    raw = work / "samples.txt"
    with (
        started(pinned(1, up_argv), up),
        started(pinned(0, chaos), cp, env=env, cwd=str(HERE)) as proc,
    ):
        run_wrk(url, a.conns, 1)
        cpu0 = cpu_seconds(proc.pid)
        wrk = subprocess.Popen(
            pinned(1, ["wrk", "-t1", f"-c{a.conns}", f"-d{a.seconds + 2}s", url]),
            stdout=subprocess.PIPE,
            text=True,
        )
        record = [spy, "record", "--nonblocking", "-r", "400", "-d", str(a.seconds)]
        record += ["-f", "raw", "-o", str(raw), "-p", str(proc.pid)]
        subprocess.run(record, capture_output=True, check=True)
        out = wrk.communicate()[0]
        cpu = cpu_seconds(proc.pid) - cpu0
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    us_per_req = cpu / max(1, requests) * 1e6
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        parts[classify(stack.split(";"))] += int(n)
        total += int(n)
    if a.raw:
        shutil.copy(raw, a.raw)
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"chaosproxy from {a.source or 'this tree'}: {requests / (a.seconds + 2):.0f} req/s, "
        f"{us_per_req:.1f} us CPU/request (small body, c={a.conns}, "
        f"{'nginx' if use_nginx else 'aiohttp'} upstream, {total} samples)"
    )
    print(f"  {'part':<22} {'share':>6} {'us/req':>7}")
    order = [p for p, _ in PARTS] + ["loop, tasks, glue"]
    for part in sorted(order, key=lambda p: -parts[p]):
        share = parts[part] / max(1, total)
        print(f"  {part:<22} {share:6.1%} {share * us_per_req:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
