"""The experiment file the spec tests read: a good one to vary, and the located problems of a
variation (read, then checked against its scenario, as `validate` does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.common.errors import ConfigError
from chaosproxy.experiment.spec import load_experiment_text
from chaosproxy.experiment.spec_scenario import resolve_experiment_scenario

BUNDLED = Path(__file__).resolve().parents[2] / "chaosproxy" / "data" / "experiments"


GOOD = """\
name: checkout
scenario: post-deploy-breakage
proxy:
  upstream: http://127.0.0.1:3000
target: http://127.0.0.1:8000
load:
  users: 50
  spawn_rate: 10
  shape: steady
  requests:
    - {path: /api/items, weight: 5}
    - {path: /api/items/1, weight: 2, user_agent: mobile, method: GET}
checks:
  - name: recovers after rollback
    after_phase: broken-release
    metric: error_rate
    source: client
    below: 0.01
    within: 30s
    for: 5s
  - name: clients stay served
    during_phase: broken-release
    metric: error_rate
    below: 0.02
    halt: true
  - name: p95 no worse than 1.5x
    during_phase: broken-release
    metric: latency_p95
    compare_to: steady
    below: 1.5
"""


def problems(text: str, source: str = "exp.yaml") -> list[str]:
    with pytest.raises(ConfigError) as e:
        exp = load_experiment_text(text, source)
        resolve_experiment_scenario(exp)
    return [str(p) for p in e.value.problems]


PROXY = "proxy:\n  upstream: http://127.0.0.1:3000\n"


def with_proxy(lines: str) -> str:
    return GOOD.replace(PROXY, PROXY + lines, 1)
