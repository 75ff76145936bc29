"""Phase boundaries as results.json annotations and in Grafana's shape."""

from __future__ import annotations

from chaosproxy.experiment.annotations import grafana_annotations, phase_annotations


def test_phase_annotations_and_their_grafana_shape() -> None:
    phases = [
        {"name": "steady", "start": 100.0, "end": 106.0},
        {"name": "broken-release", "start": 106.0, "end": 114.5},
    ]
    ann = phase_annotations(phases, "post-deploy-breakage", run_id="9f2c")
    assert ann[1] == {
        "time": 106.0,
        "end": 114.5,
        "title": "phase broken-release",
        "tags": [
            "chaosproxy",
            "phase",
            "broken-release",
            "scenario:post-deploy-breakage",
            "run:9f2c",
        ],
    }
    assert grafana_annotations(ann)[1] == {
        "time": 106000,
        "timeEnd": 114500,
        "text": "phase broken-release",
        "tags": ann[1]["tags"],
    }
