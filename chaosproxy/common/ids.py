"""Request ids: cheap, unique, and the same shape wherever one is made (the proxy, its admin
API, the `--workers` supervisor). A leaf module: the standard library only."""

from __future__ import annotations

import itertools
import os


class RequestIds:
    """Cheap unique ids: a random per-process prefix and a counter (eight hex digits, more
    past 2**32). The admin API's thread takes ids too: `next` on the shared counter is one
    atomic step."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex() + "-"
        self._n = itertools.count(1)

    def next(self) -> str:
        # `%`, not an f-string's format spec: compiled, that costs twice as much per request.
        return self._prefix + "%08x" % next(self._n)  # noqa: UP031
