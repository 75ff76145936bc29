"""`chaosproxy scenarios` (not yet available)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Registers nothing yet."""
