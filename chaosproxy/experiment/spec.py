"""The experiment file: which scenario replays, where load goes, and the checks that judge it.

Read like scenario files (every problem located as `file:line:col: key.path: message`, all of
them in one pass), then checked against the scenario it names: a check's phases must exist.
"""

from __future__ import annotations

import math
import os
import re

import yarl
from yaml.nodes import Node, ScalarNode

from chaosproxy.config.located import (
    Collector,
    Doc,
    Reader,
    describe,
    problem_order,
    read_file,
)
from chaosproxy.config.model import Scenario
from chaosproxy.errors import ConfigError
from chaosproxy.experiment.model import (
    DEFAULT_BASELINE_ERROR_RATE,
    DEFAULT_FOR,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    METHODS,
    METRICS,
    PROXY_ONLY,
    SHAPES,
    SOURCES,
    BaselineSpec,
    CheckSpec,
    Experiment,
    LoadSpec,
    PrometheusSpec,
    ProxySpec,
    RequestSpec,
    Stage,
)

EXPERIMENT_KEYS = (
    "name",
    "description",
    "scenario",
    "seed",
    "proxy",
    "admin",
    "target",
    "load",
    "checks",
    "baseline",
)
PROXY_KEYS = ("upstream", "listen", "args")
LOAD_KEYS = (
    "users",
    "spawn_rate",
    "shape",
    "stages",
    "base_users",
    "wait",
    "locustfile",
    "requests",
    "settle",
    "cooldown",
)
STAGE_KEYS = ("phase", "users", "spawn_rate")
REQUEST_KEYS = ("path", "method", "weight", "user_agent", "headers", "body", "name")
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

# ---------------------------------------------------------------- loading


def load_experiment_file(path: str | os.PathLike[str]) -> Experiment:
    source = os.fspath(path)
    return load_experiment_text(read_file(source), source)


def load_experiment_text(text: str, source: str = "<input>") -> Experiment:
    """Parse and validate an experiment; ConfigError lists every problem, located."""
    col = Collector()
    doc = Doc.parse(text, source, col)
    exp = None if doc is None else _ExperimentReader(col, doc).experiment(doc.root, text)
    if col.problems or exp is None:
        raise ConfigError(sorted(col.problems, key=problem_order))
    return exp


def resolve_experiment_scenario(exp: Experiment) -> Scenario:
    """Load the scenario the experiment names (bundled name, or a path relative to the file)
    and check every phase the experiment refers to exists in it."""
    from chaosproxy.config.loader import load_scenario_file, resolve_scenario

    ref = exp.scenario
    candidate = exp.base_dir / ref
    try:
        if ("/" in ref or ref.endswith((".yaml", ".yml"))) and candidate.is_file():
            scenario = load_scenario_file(candidate)
        else:
            scenario = load_scenario_file(resolve_scenario(ref))
    except ConfigError as e:
        if all(p.line == 0 for p in e.problems) and len(e.problems) == 1:
            raise ConfigError(exp.problem("scenario", e.problems[0].message)) from None
        raise
    names = [p.name for p in scenario.phases]
    problems = []
    for c in exp.checks:
        for key in ("during_phase", "after_phase", "compare_to"):
            phase = getattr(c, key)
            if phase is not None and phase not in names:
                problems.append(
                    exp.problem(
                        f"{c.path}.{key}",
                        f"scenario {scenario.name!r} has no phase {phase!r}; "
                        f"its phases: {', '.join(names)}",
                    )
                )
    for i, st in enumerate(exp.load.stages):
        if st.phase not in names:
            problems.append(
                exp.problem(
                    f"load.stages[{i}].phase",
                    f"scenario {scenario.name!r} has no phase {st.phase!r}; "
                    f"its phases: {', '.join(names)}",
                )
            )
    if exp.baseline.phase is not None and exp.baseline.phase not in names:
        problems.append(
            exp.problem("baseline.phase", f"scenario {scenario.name!r} has no such phase")
        )
    if problems:
        raise ConfigError(problems)
    return scenario


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _ExperimentReader(Reader):
    def text(self, node: Node, path: str, *, nonempty: bool = True) -> str | None:
        """Text, with `${VAR}` and `${VAR:-default}` taken from the environment (CI pipelines
        pass URLs that way)."""
        value = super().text(node, path, nonempty=nonempty)
        if value is None or "${" not in value:
            return value
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            found = os.environ.get(m.group(1))
            if found is not None:
                return found
            if m.group(2) is not None:
                return m.group(2)
            missing.append(m.group(1))
            return ""

        out = _VAR.sub(sub, value)
        if missing:
            self.problem(
                node,
                path,
                f"environment variable {missing[0]} is not set "
                f"(write ${{{missing[0]}:-DEFAULT}} to give a default)",
            )
            return None
        return out

    def experiment(self, node: Node, text: str) -> Experiment | None:
        m = self.mapping(
            node,
            "",
            EXPERIMENT_KEYS,
            required=("name", "scenario", "checks"),
            what="an experiment mapping",
        )
        if m is None:
            return None
        name = self.name(m["name"], "name") if "name" in m else None
        scenario = self.text(m["scenario"], "scenario") if "scenario" in m else None
        description = ""
        if "description" in m:
            description = self.text(m["description"], "description", nonempty=False) or ""
        seed = self.integer(m["seed"], "seed") if "seed" in m else None
        proxy = self.proxy(m["proxy"]) if "proxy" in m else None
        admin = self.admins(m["admin"]) if "admin" in m else ()
        if "proxy" in m and "admin" in m:
            self.problem(m["admin"], "admin", "give either proxy (start one) or admin, not both")
        if "proxy" not in m and "admin" not in m:
            self.problem(
                node,
                "<top>",
                "missing 'proxy' (start a proxy for the experiment) or 'admin' (drive a "
                "running one)",
            )
        target = self.url(m["target"], "target") if "target" in m else None
        if "admin" in m and "target" not in m:
            self.problem(m["admin"], "target", "with 'admin', say where load goes: 'target: URL'")
        load = self.load(m["load"]) if "load" in m else LoadSpec()
        checks = self.checks(m["checks"]) if "checks" in m else []
        baseline = self.baseline(m["baseline"]) if "baseline" in m else BaselineSpec()
        if name is None or scenario is None or load is None or baseline is None:
            return None
        return Experiment(
            name=name,
            scenario=scenario,
            load=load,
            checks=tuple(checks),
            description=description,
            seed=seed,
            proxy=proxy,
            admin=admin,
            target=target,
            baseline=baseline,
            source=self.doc.source,
            text=text,
            locations=self.col.locations,
        )

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

    def proxy(self, node: Node) -> ProxySpec | None:
        m = self.mapping(node, "proxy", PROXY_KEYS, required=("upstream",))
        if m is None:
            return None
        upstream = self.url(m["upstream"], "proxy.upstream") if "upstream" in m else None
        listen = None
        if "listen" in m:
            listen = self.text(m["listen"], "proxy.listen")
            if listen is not None:
                _, sep, port = listen.rpartition(":")
                if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
                    self.problem(m["listen"], "proxy.listen", f"expected HOST:PORT, got {listen!r}")
                    listen = None
        args: list[str] = []
        if "args" in m:
            for i, item in enumerate(self.seq(m["args"], "proxy.args") or []):
                t = self.text(item, f"proxy.args[{i}]")
                if t is not None:
                    args.append(t)
        if upstream is None:
            return None
        return ProxySpec(upstream, listen, tuple(args))

    def admins(self, node: Node) -> tuple[str, ...]:
        out = []
        for i, item in enumerate(self.seq(node, "admin", allow_single=True) or []):
            path = "admin" if isinstance(node, ScalarNode) else f"admin[{i}]"
            value = self.text(item, path)
            if value is not None:
                out.append(value if "://" in value else f"http://{value}")
        return tuple(out)

    def load(self, node: Node) -> LoadSpec | None:
        m = self.mapping(node, "load", LOAD_KEYS)
        if m is None:
            return None
        d = LoadSpec()
        users = self.integer(m["users"], "load.users", lo=1) if "users" in m else d.users
        spawn = (
            self.positive_number(m["spawn_rate"], "load.spawn_rate")
            if "spawn_rate" in m
            else d.spawn_rate
        )
        shape = d.shape
        if "shape" in m:
            shape = self.choice(m["shape"], "load.shape", SHAPES) or d.shape
        stages: list[Stage] = []
        if "stages" in m:
            if "shape" in m and shape != "stages":
                self.problem(m["stages"], "load.stages", f"stages need shape: stages, not {shape}")
            shape = "stages"
            for i, item in enumerate(self.seq(m["stages"], "load.stages") or []):
                st = self.stage(item, f"load.stages[{i}]")
                if st is not None:
                    stages.append(st)
        elif shape == "stages":
            self.problem(m["shape"], "load.stages", "shape: stages needs a 'stages' list")
        base = None
        if "base_users" in m:
            base = self.integer(m["base_users"], "load.base_users", lo=1)
            if shape != "spike":
                self.problem(m["base_users"], "load.base_users", "only used with shape: spike")
        wait = self.duration(m["wait"], "load.wait", positive=False) if "wait" in m else d.wait
        locustfile = d.locustfile
        if "locustfile" in m:
            locustfile = self.text(m["locustfile"], "load.locustfile") or d.locustfile
        requests: list[RequestSpec] = []
        if "requests" in m:
            if locustfile != "default":
                self.problem(
                    m["requests"], "load.requests", "requests are for the default locustfile only"
                )
            for i, item in enumerate(self.seq(m["requests"], "load.requests") or []):
                r = self.request(item, f"load.requests[{i}]")
                if r is not None:
                    requests.append(r)
        settle = (
            self.duration(m["settle"], "load.settle", positive=False) if "settle" in m else d.settle
        )
        cooldown = (
            self.duration(m["cooldown"], "load.cooldown", positive=False)
            if "cooldown" in m
            else d.cooldown
        )
        if None in (users, spawn, wait, settle, cooldown):
            return None
        assert users is not None and spawn is not None and wait is not None
        assert settle is not None and cooldown is not None
        return LoadSpec(
            users=users,
            spawn_rate=spawn,
            shape=shape,
            stages=tuple(stages),
            base_users=base,
            wait=wait,
            locustfile=locustfile,
            requests=tuple(requests) or d.requests,
            settle=settle,
            cooldown=cooldown,
        )

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

    def stage(self, node: Node, path: str) -> Stage | None:
        m = self.mapping(node, path, STAGE_KEYS, required=("phase", "users"))
        if m is None:
            return None
        phase = self.text(m["phase"], f"{path}.phase") if "phase" in m else None
        users = self.integer(m["users"], f"{path}.users", lo=0) if "users" in m else None
        rate = (
            self.positive_number(m["spawn_rate"], f"{path}.spawn_rate")
            if "spawn_rate" in m
            else None
        )
        if phase is None or users is None:
            return None
        return Stage(phase, users, rate)

    def request(self, node: Node, path: str) -> RequestSpec | None:
        m = self.mapping(node, path, REQUEST_KEYS, required=("path",))
        if m is None:
            return None
        rpath = self.text(m["path"], f"{path}.path") if "path" in m else None
        if rpath is not None and not rpath.startswith("/"):
            self.problem(
                m["path"], f"{path}.path", f"expected a path starting with /, got {rpath!r}"
            )
            rpath = None
        method = "GET"
        if "method" in m:
            method = (self.choice(m["method"], f"{path}.method", METHODS) or "GET").upper()
        weight = self.integer(m["weight"], f"{path}.weight", lo=1) if "weight" in m else 1
        ua = self.text(m["user_agent"], f"{path}.user_agent") if "user_agent" in m else None
        headers: list[tuple[str, str]] = []
        if "headers" in m:
            hm = self.mapping(m["headers"], f"{path}.headers", None)
            for k, v in (hm or {}).items():
                hv = self.scalar(v, f"{path}.headers.{k}")
                if hv is not None:
                    headers.append((k, hv))
        body = self.text(m["body"], f"{path}.body", nonempty=False) if "body" in m else None
        name = self.text(m["name"], f"{path}.name") if "name" in m else None
        if rpath is None or weight is None:
            return None
        return RequestSpec(rpath, method, weight, ua, tuple(headers), body, name)

    def scalar(self, node: Node, path: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(node, path, f"expected text, got {describe(node)}")
            return None
        return str(node.value)

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
        m = self.mapping(node, path, CHECK_KEYS, required=("name", "metric"))
        if m is None:
            return None
        name = self.text(m["name"], f"{path}.name") if "name" in m else None
        metric = self.choice(m["metric"], f"{path}.metric", METRICS) if "metric" in m else None
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
        comparison, bound = "below", None
        if ("below" in m) == ("above" in m):
            self.problem(node, path, "give exactly one bound: below or above")
        else:
            comparison = "below" if "below" in m else "above"
            bnode = m[comparison]
            bound = self.bound(bnode, f"{path}.{comparison}", metric, compare is not None)
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

    def bound(self, node: Node, path: str, metric: str | None, ratio: bool) -> float | None:
        """A number; for latency metrics (not ratios) a duration like 250ms too."""
        if metric in LATENCY and not ratio:
            return self.duration(node, path, positive=False)
        value = self.number(node, path)
        if value is None:
            return None
        share = metric in ("error_rate", "served", "early_retry_share") and not ratio
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
