"""Request ids: unique within a process and across processes, all of one shape."""

from __future__ import annotations

import re
import subprocess
import sys

from chaosproxy.common.ids import RequestIds

SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}$")


def test_ids_from_one_source_are_unique_and_of_one_shape() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(5000)]
    assert len(set(made)) == len(made)
    assert all(SHAPE.match(i) for i in made)


def test_two_sources_do_not_hand_out_the_same_id() -> None:
    a, b = RequestIds(), RequestIds()
    assert {a.next() for _ in range(100)}.isdisjoint({b.next() for _ in range(100)})


def test_two_processes_do_not_hand_out_the_same_first_id() -> None:
    code = "from chaosproxy.common.ids import RequestIds; print(RequestIds().next())"
    firsts = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(firsts) == 2
    assert all(SHAPE.match(i) for i in firsts)
