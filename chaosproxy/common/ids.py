"""Request ids: cheap, unique, and the same shape wherever one is made (the proxy, its admin
API, the `--workers` supervisor). A leaf module: the standard library only."""

from __future__ import annotations

import itertools
import os


class RequestIds:
    """Cheap unique ids: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._n = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._n):08x}"
