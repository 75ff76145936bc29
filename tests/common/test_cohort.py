"""Cohort membership: one answer from (seed, client) everywhere, uniform positions, nested
cohorts, and a request without a client id is control traffic."""

from __future__ import annotations

import hashlib

from chaosproxy.common.cohort import CONTROL, FAULT, cohort_of, label_of, position


def test_position_is_the_documented_hash_so_other_parties_can_compute_it() -> None:
    digest = hashlib.blake2b(b"42\x00user-7").digest()
    assert position(42, "user-7") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0.0 <= position(42, "user-7") < 1.0


def test_a_share_takes_about_that_share_of_clients_and_the_seed_reshuffles_them() -> None:
    clients = [f"c{i}" for i in range(4000)]
    inside = [c for c in clients if cohort_of(1, c, 0.25)]
    assert 800 < len(inside) < 1200  # 25 % of 4000, more than 6 sigma either side
    other_seed = {c for c in clients if cohort_of(2, c, 0.25)}
    assert other_seed != set(inside)


def test_a_smaller_cohort_is_inside_a_larger_one() -> None:
    clients = [f"c{i}" for i in range(2000)]
    small = {c for c in clients if cohort_of(9, c, 0.1)}
    large = {c for c in clients if cohort_of(9, c, 0.25)}
    assert small and small < large


def test_no_client_value_means_control_and_labels_follow_membership() -> None:
    assert not cohort_of(1, None, 1.0) and not cohort_of(1, "", 1.0)
    assert label_of(1, None, 1.0) == CONTROL
    assert label_of(1, "anyone", 1.0) == FAULT
    assert label_of(1, "anyone", 0.0) == CONTROL
