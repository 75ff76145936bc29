"""Cohort membership: which clients a `match: {cohort: ...}` rule may fault.

One function of (seed, client value), so every party that needs the answer computes the same
one without talking to the others: each proxy of a fleet, a replay of the run with the same
seed, and the load generator's plugin labelling its users. A client's position is uniform in
[0, 1); it is in a cohort of share s when its position is below s, so a 10 % cohort is inside
the 25 % one and growing the share only adds clients.

A leaf: stdlib only (the Locust plugin imports it inside Locust's own process).
"""

from __future__ import annotations

import hashlib

FAULT = "fault"  # in the cohort: the rule may fault its requests
CONTROL = "control"  # outside: never faulted by a cohort rule, the same run's baseline

_SCALE = 1.0 / 2**64


def position(seed: int, value: str) -> float:
    """The client's place in [0, 1): the first 8 bytes of blake2b(f"{seed}\\x00{value}")
    (UTF-8, the default 64-byte digest), big-endian, over 2^64."""
    digest = hashlib.blake2b(f"{seed}\x00{value}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") * _SCALE


def cohort_of(seed: int, value: str | None, share: float) -> bool:
    """True when the client `value` is in the cohort of `share` for `seed`. A request without
    a value (the header missing or empty) is in no cohort: it is control traffic."""
    return bool(value) and position(seed, value or "") < share


def label_of(seed: int, value: str | None, share: float) -> str:
    """`FAULT` or `CONTROL`: the label requests of this client carry."""
    return FAULT if cohort_of(seed, value, share) else CONTROL
