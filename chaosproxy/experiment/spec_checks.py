"""The `checks:` (and `baseline:`) grammar of an experiment file: each check's metric, source,
phase, bound, recovery window or Prometheus query, read from located YAML nodes into
`CheckSpec`s. Every problem is located; nothing raises."""

from __future__ import annotations

import math

import yarl
from yaml.nodes import Node

from chaosproxy.common.cohort import CONTROL
from chaosproxy.config.located import Reader
from chaosproxy.experiment.model import (
    CONTROL_METRICS,
    DEFAULT_BASELINE_ERROR_RATE,
    DEFAULT_FOR,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    METRICS,
    PROMETHEUS_METRIC,
    PROXY_ONLY,
    SOURCES,
    BaselineSpec,
    CheckSpec,
    PrometheusSpec,
)

CHECK_KEYS = (
    "name",
    "metric",
    "source",
    "during_phase",
    "after_phase",
    "compare_to",
    "below",
    "above",
    "within",
    "for",
    "min_samples",
    "halt",
    "prometheus",
)
PROMETHEUS_KEYS = ("url", "query")
BASELINE_KEYS = ("phase", "error_rate_above")


class CheckReader(Reader):
    """Reads `checks` and `baseline`; also the choice and URL readers the rest of the file
    shares."""

    def url(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        try:
            u = yarl.URL(value)
        except (ValueError, TypeError):
            u = None
        if u is None or u.scheme not in ("http", "https") or not u.host:
            self.problem(node, path, f"expected an http:// or https:// URL, got {value!r}")
            return None
        return value.rstrip("/")

    def choice(self, node: Node, path: str, options: tuple[str, ...]) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        if value not in options:
            from chaosproxy.config.located import suggest

            hint = suggest(value, options) or f"; one of: {', '.join(options)}"
            self.problem(node, path, f"unknown {path.rsplit('.', 1)[-1]} {value!r}{hint}")
            return None
        return value

    def baseline(self, node: Node) -> BaselineSpec | None:
        m = self.mapping(node, "baseline", BASELINE_KEYS)
        if m is None:
            return None
        phase = self.text(m["phase"], "baseline.phase") if "phase" in m else None
        rate = DEFAULT_BASELINE_ERROR_RATE
        if "error_rate_above" in m:
            rate = self.number(m["error_rate_above"], "baseline.error_rate_above", 0.0, 1.0) or 0.0
        return BaselineSpec(phase, rate)

    def checks(self, node: Node) -> list[CheckSpec]:
        out = []
        names: set[str] = set()
        items = self.seq(node, "checks")
        if items == []:
            self.problem(node, "checks", "at least one check is needed")
        for i, item in enumerate(items or []):
            c = self.check(item, f"checks[{i}]")
            if c is None:
                continue
            if c.name in names:
                self.problem(item, f"checks[{i}].name", f"duplicate check name {c.name!r}")
                continue
            names.add(c.name)
            out.append(c)
        return out

    def check(self, node: Node, path: str) -> CheckSpec | None:
        m = self.mapping(node, path, CHECK_KEYS, required=("name",))
        if m is None:
            return None
        name = self.label(m["name"], f"{path}.name") if "name" in m else None
        prometheus = "source" in m and self.doc.value(m["source"]) == "prometheus"
        metric: str | None = None
        if prometheus:
            # The check judges what the query returns; a metric name would only mislead.
            metric = PROMETHEUS_METRIC
            if "metric" in m:
                self.problem(
                    m["metric"],
                    f"{path}.metric",
                    "a Prometheus check judges the value its query returns: remove metric "
                    "(write the error rate, latency ... into the query)",
                )
        elif "metric" in m:
            metric = self.choice(m["metric"], f"{path}.metric", METRICS)
        else:
            self.problem(node, path, "missing required key 'metric'")
        source = "proxy" if metric in PROXY_ONLY else "client"
        if "source" in m:
            source = self.choice(m["source"], f"{path}.source", SOURCES) or source
            if metric in PROXY_ONLY and source != "proxy":
                self.problem(m["source"], f"{path}.source", f"{metric} is measured at the proxy")
        during = (
            self.text(m["during_phase"], f"{path}.during_phase") if "during_phase" in m else None
        )
        after = self.text(m["after_phase"], f"{path}.after_phase") if "after_phase" in m else None
        if ("during_phase" in m) == ("after_phase" in m):
            self.problem(
                node,
                path,
                "give exactly one of during_phase (the metric over a phase) or after_phase "
                "(time to recover once it ends)",
            )
        compare = self.text(m["compare_to"], f"{path}.compare_to") if "compare_to" in m else None
        if "compare_to" in m and "during_phase" not in m:
            self.problem(m["compare_to"], f"{path}.compare_to", "compare_to needs during_phase")
        if compare == CONTROL:
            self._control(m, path, metric, source)
        if metric == "blast_radius":
            self._blast_radius(m, path)
        comparison, bound = "below", None
        if ("below" in m) == ("above" in m):
            self.problem(node, path, "give exactly one bound: below or above")
        else:
            comparison = "below" if "below" in m else "above"
            bnode = m[comparison]
            bound = self.bound(bnode, f"{path}.{comparison}", metric, compare)
        within = None
        if "within" in m:
            within = self.duration(m["within"], f"{path}.within", positive=False)
            if "after_phase" not in m:
                self.problem(m["within"], f"{path}.within", "within is for after_phase checks")
        elif "after_phase" in m:
            self.problem(node, f"{path}.within", "an after_phase check needs 'within' (a deadline)")
        for_ = DEFAULT_FOR
        if "for" in m:
            for_ = self.duration(m["for"], f"{path}.for") or DEFAULT_FOR
            if "after_phase" not in m:
                self.problem(m["for"], f"{path}.for", "for is for after_phase checks")
        min_samples = DEFAULT_MIN_SAMPLES
        if "min_samples" in m:
            min_samples = self.integer(m["min_samples"], f"{path}.min_samples", lo=1) or 1
        halt = False
        if "halt" in m:
            halt = bool(self.boolean(m["halt"], f"{path}.halt"))
            if halt and "during_phase" not in m:
                self.problem(m["halt"], f"{path}.halt", "halt is for during_phase checks")
            elif halt and prometheus:
                self.problem(
                    m["halt"],
                    f"{path}.halt",
                    "a Prometheus check cannot halt a run: its points lag the run by the "
                    "scrape interval and the query's range (halt on source: client or proxy)",
                )
        prom = None
        if "prometheus" in m:
            prom = self.prometheus(m["prometheus"], f"{path}.prometheus")
            if source != "prometheus":
                self.problem(m["prometheus"], f"{path}.prometheus", "needs source: prometheus")
        elif source == "prometheus":
            self.problem(node, f"{path}.prometheus", "source: prometheus needs {url, query}")
        if name is None or metric is None or bound is None:
            return None
        return CheckSpec(
            name=name,
            metric=metric,
            source=source,
            during_phase=during,
            after_phase=after,
            compare_to=compare,
            comparison=comparison,
            bound=bound,
            within=within,
            for_=for_,
            min_samples=min_samples,
            halt=halt,
            prometheus=prom,
            path=path,
        )

    def _control(self, m: dict[str, Node], path: str, metric: str | None, source: str) -> None:
        """`compare_to: control`: the fault cohort against the control cohort (`control.py`)."""
        where = f"{path}.compare_to"
        if metric is not None and metric not in CONTROL_METRICS:
            self.problem(
                m["compare_to"],
                where,
                f"compare_to: control compares the cohorts' {', '.join(CONTROL_METRICS)}; "
                f"{metric} is not one of them",
            )
        if source == "prometheus":
            self.problem(
                m["compare_to"], where, "a Prometheus query has no cohorts: source client or proxy"
            )
        if "halt" in m and self.doc.value(m["halt"]) is True and metric in LATENCY:
            self.problem(
                m["halt"],
                f"{path}.halt",
                "a latency comparison with the control group cannot halt a run (its interval is "
                "a bootstrap, which cannot reach the tails spending asks for): halt on "
                "error_rate or served against control",
            )

    def _blast_radius(self, m: dict[str, Node], path: str) -> None:
        """`metric: blast_radius`: the share of a phase's clients hurt, from the proxy's
        per-client record after the run."""
        if "compare_to" in m:
            self.problem(
                m["compare_to"],
                f"{path}.compare_to",
                "blast_radius is a share of clients on its own: remove compare_to",
            )
        if "after_phase" in m:
            self.problem(
                m["after_phase"],
                f"{path}.after_phase",
                "blast_radius is over a phase: use during_phase",
            )
        if "halt" in m and self.doc.value(m["halt"]) is True:
            self.problem(
                m["halt"],
                f"{path}.halt",
                "blast_radius is read from the proxy's per-client record after the run: it "
                "cannot halt one",
            )

    def bound(self, node: Node, path: str, metric: str | None, compare: str | None) -> float | None:
        """A number; for latency metrics (not ratios) a duration like 250ms too. Against the
        control group a share's bound is a difference, so it may be negative."""
        ratio = compare is not None
        if metric in LATENCY and not ratio:
            return self.duration(node, path, positive=False)
        value = self.number(node, path)
        if value is None:
            return None
        if compare == CONTROL and metric in ("error_rate", "served"):
            if not -1.0 <= value <= 1.0:
                self.problem(
                    node,
                    path,
                    f"against the control group {metric} is bounded by a difference of shares, "
                    f"between -1 and 1 (0.01 = one point), got {value:g}",
                )
                return None
            return value
        share = (
            metric in ("error_rate", "served", "early_retry_share", "blast_radius") and not ratio
        )
        if share and not 0.0 <= value <= 1.0:
            self.problem(node, path, f"{metric} is a share between 0 and 1, got {value:g}")
            return None
        if value < 0 or not math.isfinite(value):
            self.problem(node, path, f"must be ≥ 0, got {value:g}")
            return None
        return value

    def prometheus(self, node: Node, path: str) -> PrometheusSpec | None:
        m = self.mapping(node, path, PROMETHEUS_KEYS, required=("url", "query"))
        if m is None:
            return None
        url = self.url(m["url"], f"{path}.url") if "url" in m else None
        query = self.text(m["query"], f"{path}.query") if "query" in m else None
        if url is None or query is None:
            return None
        return PrometheusSpec(url, query)
