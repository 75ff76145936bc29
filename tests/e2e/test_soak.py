"""The soak (bench/soak.py): its short form runs the real proxy under paced load and admin churn
and must report no growth and no unexplained client error; its judgement (bench/_soakjudge.py)
is checked on made-up outcomes and series, so it is known to fail when it should."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import _soakjudge as judge  # noqa: E402  (bench/ is not a package)


def entry(n: int, fault: str, outcome: str) -> dict[str, object]:
    return {"request_id": f"soak-{n}", "fault": fault, "outcome": outcome}


def test_every_failure_a_fault_explains_is_explained() -> None:
    outcomes = bytes([judge.OK, judge.STATUS, judge.RESET, judge.CLOSED, judge.OK, judge.STATUS])
    journal = [
        entry(1, "error", "status=503"),
        entry(2, "reset", "at=request"),
        entry(3, "truncate", "bytes=4"),
        entry(4, "latency", "delay=0.020"),  # the client sees nothing but time
        entry(5, "latency", "delay=0.005"),
        entry(5, "hang", "duration=0.05 then=error"),
    ]
    explained, bad = judge.reconcile(outcomes, {1: 503, 5: 504}, journal)
    assert bad == []
    assert explained == {"status 503": 1, "reset": 1, "closed": 1, "status 504": 1}


@pytest.mark.parametrize(
    ("outcome", "status", "journal"),
    [
        (judge.STATUS, 502, []),  # an error nothing injected
        (judge.STATUS, 500, [entry(0, "error", "status=503")]),  # not the injected status
        (judge.OK, None, [entry(0, "reset", "at=request")]),  # an injected reset never seen
        (judge.RESET, None, [entry(0, "truncate", "bytes=4")]),  # a reset, not a clean close
        (judge.TIMEOUT, None, []),
        (judge.BADBODY, None, []),  # a 2xx whose body differs from the upstream's
        (judge.CLOSED, None, [entry(0, "truncate", "bytes=4"), entry(0, "reset", "at=request")]),
    ],
)
def test_a_failure_no_single_fault_explains_is_unexplained(
    outcome: int, status: int | None, journal: list[dict[str, object]]
) -> None:
    statuses = {0: status} if status is not None else {}
    _, bad = judge.reconcile(bytes([outcome]), statuses, journal)
    assert len(bad) == 1 and bad[0].startswith("soak-0: client saw")


def test_a_journal_entry_for_a_request_nobody_sent_is_unexplained() -> None:
    _, bad = judge.reconcile(bytes([judge.OK]), {}, [entry(7, "error", "status=503")])
    assert len(bad) == 1 and "nobody sent" in bad[0]


def rows(values: list[float], metric: str = "fds", per_second: float = 100.0) -> list[dict]:
    out = []
    for t, v in enumerate(values):
        row = {m: 10.0 for m in judge.LIMITS}
        row.update(t=float(t), requests=t * per_second, connections=t * per_second)
        row[metric] = v
        out.append(row)
    return out


def test_flat_noisy_series_do_not_grow() -> None:
    noisy = [100.0 + (5 if t % 3 == 0 else -5) for t in range(120)]
    assert not any(m["grows"] for m in judge.judge_growth(rows(noisy)).values())


def test_steady_growth_past_the_allowance_grows() -> None:
    # One fd per second at 100 connections a second: one per 100 connections, ten times the
    # allowance's rate, and well past its floor over the 60 s second half.
    result = judge.judge_growth(rows([100.0 + t for t in range(120)]))
    assert result["fds"]["grows"] and result["fds"]["growth"] == pytest.approx(59.0)
    assert not result["rss_mib"]["grows"]


def test_growth_during_warm_up_only_is_not_growth() -> None:
    warm = [50.0 + min(t, 40) for t in range(120)]  # fills up, then flat
    assert not judge.judge_growth(rows(warm, "rss_mib"))["rss_mib"]["grows"]


def test_a_metric_that_was_not_measured_fails() -> None:
    result = judge.judge_growth(rows([math.nan] * 10, "tasks"))
    assert result["tasks"]["grows"]


@pytest.mark.slow
def test_short_soak_finds_no_growth_and_no_unexplained_error(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "25", "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["unexplained"] == [] and result["admin_failures"] == []
    assert result["log_problems"] == []
    assert not [name for name, m in result["growth"].items() if m["grows"]]
    assert result["soak_requests"] > 0 and result["admin_ops"] > 0
    # Faults really fired and were reconciled: resets and injected statuses at the least.
    assert result["explained"].get("reset", 0) > 0
    assert any(k.startswith("status ") for k in result["explained"])
