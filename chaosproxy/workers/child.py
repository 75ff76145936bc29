"""One worker of `run --workers N`: a whole `Runtime`, told its settings by the supervisor.

What passes between them, over the standard streams:

- stdin: the pickled `Launch` (8-byte length, then the bytes), then nothing; the supervisor
  keeps it open for the worker's life. End of file means the supervisor is gone (even killed
  with SIGKILL): the worker then stops as on SIGTERM, so no worker outlives its supervisor.
- stdout: one JSON line once both listeners are bound: `{"pid", "admin", "instance"}`.
- stderr: the log (each line tagged with the worker's index), shared with the supervisor's.

Exit code: 0 after a signal, 2 when it could not start (the reason on stderr, as `run` says it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import sys
from dataclasses import dataclass

from chaosproxy.process.runtime import Runtime, Settings

log = logging.getLogger("chaosproxy.workers")


@dataclass(frozen=True)
class Launch:
    settings: Settings  # `worker`, `reuse_port` and the private admin already set
    log_format: str
    log_level: str


def encode(launch: Launch) -> bytes:
    payload = pickle.dumps(launch)
    return len(payload).to_bytes(8, "big") + payload


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError("the supervisor closed the pipe before sending the settings")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_launch(fd: int = 0) -> Launch:
    """The settings from the supervisor (a pipe only it holds: unpickling is safe here)."""
    n = int.from_bytes(_read_exact(fd, 8), "big")
    launch = pickle.loads(_read_exact(fd, n))
    if not isinstance(launch, Launch):
        raise TypeError("not a worker launch")
    return launch


def main() -> int:
    # Signals come from the supervisor (a worker has a session of its own); until the runtime
    # takes SIGINT over, one is no KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from chaosproxy.common.logs import setup_logging
    from chaosproxy.process.startup import install_uvloop

    launch = read_launch()
    setup_logging(launch.log_format, launch.log_level, worker=launch.settings.worker)
    install_uvloop()
    return asyncio.run(serve(launch.settings))


async def serve(settings: Settings) -> int:
    from chaosproxy.common.errors import ConfigError, UsageError
    from chaosproxy.process.startup import startup_error

    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            log.warning("the supervisor is gone: stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    def ready(rt: Runtime) -> None:
        line = {"pid": os.getpid(), "admin": rt.admin_url, "instance": rt.instance}
        try:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        except OSError:  # the supervisor is gone already
            os.kill(os.getpid(), signal.SIGTERM)
            return
        loop.add_reader(0, orphaned)

    try:
        await Runtime(settings).serve_until_signal(ready=ready)
    except (OSError, UsageError, ConfigError) as e:
        reason = startup_error(e, settings)
        print(f"chaosproxy run: error: worker {settings.worker}: {reason}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Run as a script this module is `__main__`: the pickled `Launch` names the real module.
    from chaosproxy.workers.child import main as _main

    sys.exit(_main())
