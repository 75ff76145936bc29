"""A results directory made from a seeded synthetic run with a control group, through the same
functions a real run ends with (judge, results.json, series.jsonl, timeseries.csv, reports)."""

from __future__ import annotations

from pathlib import Path

from chaosproxy.experiment.align import clients_to_json
from chaosproxy.experiment.control import ClientRecord
from chaosproxy.experiment.rejudge import CLIENTS, SavedRun, judge_run, write_rows
from chaosproxy.experiment.report import write_reports
from chaosproxy.experiment.results import results_document, write_json
from chaosproxy.experiment.spec import load_experiment_file
from tests.experiment.cohort_sim import confounded

SCENARIO = """\
name: half-outage
seed: 3
phases:
  - name: steady
    duration: 20s
  - name: outage
    duration: 20s
    rules:
      - match: {path: "/api/**", cohort: {share: 0.5, by: header X-Chaos-User}}
        fault: {error: {status: 500}}
"""

EXPERIMENT = """\
name: half-outage
scenario: half-outage.yaml
proxy:
  upstream: http://127.0.0.1:3000
checks:
  - name: errors no worse than steady
    during_phase: outage
    metric: error_rate
    compare_to: steady
    below: 2
  - name: fault cohort served like control
    during_phase: outage
    metric: error_rate
    compare_to: control
    below: 0.05
  - name: p95 of the fault cohort within 1.5x of control
    during_phase: outage
    metric: latency_p95
    compare_to: control
    below: 1.5
  - name: at most 60 % of users hurt
    during_phase: outage
    metric: blast_radius
    below: 0.6
"""


def control_results_dir(tmp_path: Path, seed: int = 7) -> Path:
    (tmp_path / "half-outage.yaml").write_text(SCENARIO)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    exp = load_experiment_file(tmp_path / "exp.yaml")
    run = confounded(seed)
    t0, t1 = run.rows[0].t, run.rows[-1].t
    clients = [
        ClientRecord("fault" if i % 2 else "control", t0, t1, (t1 - 5,) if i % 2 else ())
        for i in range(40)
    ]
    verdict = judge_run(exp, SavedRun(run.rows, run.phases, clients=clients))
    out = tmp_path / "run"
    out.mkdir()
    write_rows(out, run.rows, exp, float(t0))
    write_json(out / CLIENTS, clients_to_json(clients))  # as the runner keeps them
    about = {"id": "r1", "started": float(t0), "ended": float(t1 + 1), "seed": None}
    files = {"timeseries": "timeseries.csv", "series": "series.jsonl", "clients": CLIENTS}
    doc = results_document(
        exp,
        SCENARIO,
        verdict,
        about,
        [],
        interrupted=False,
        halted=None,
        proxy_url=None,
        admins=[],
        files=files,
    )
    write_json(out / "results.json", doc)
    write_reports(out)
    return out
