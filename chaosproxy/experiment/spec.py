"""The experiment file: which scenario replays, where load goes, and the checks that judge it.

Read like scenario files (every problem located as `file:line:col: key.path: message`, all of
them in one pass): the top-level keys, `proxy`, `admin` and `load` here, the checks in
`spec_checks.py`, `proxy.args` against `run`'s own flags in `spec_proxy_args.py`. What needs the
scenario it names (its phases, the control group) is `spec_scenario.py`.
"""

from __future__ import annotations

import os
import re

from yaml.nodes import Node, ScalarNode

from chaosproxy.common.errors import ConfigError
from chaosproxy.config.located import Collector, Doc, describe, problem_order, read_file
from chaosproxy.experiment.model import (
    BUNDLED_LOCUSTFILES,
    DEFAULT_CONFIDENCE,
    DEFAULT_HALT_FALSE_ALARM,
    GRPC_KINDS,
    MAX_MESSAGES,
    METHODS,
    SHAPES,
    BaselineSpec,
    Experiment,
    LoadSpec,
    ProxySpec,
    RequestSpec,
    Stage,
)
from chaosproxy.experiment.spec_checks import CheckReader
from chaosproxy.experiment.spec_proxy_args import run_args_problems

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
    "confidence",
    "halt_false_alarm",
)
PROXY_KEYS = ("upstream", "listen", "admin", "args")
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
REQUEST_KEYS = (
    "path",
    "method",
    "weight",
    "user_agent",
    "headers",
    "body",
    "name",
    "kind",
    "messages",
)

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


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _ExperimentReader(CheckReader):
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
        confidence = DEFAULT_CONFIDENCE
        if "confidence" in m:
            confidence = self.number(m["confidence"], "confidence", 0.5, 0.9999) or confidence
        halt_alpha = DEFAULT_HALT_FALSE_ALARM
        if "halt_false_alarm" in m:
            halt_alpha = (
                self.number(m["halt_false_alarm"], "halt_false_alarm", 0.0001, 0.5) or halt_alpha
            )
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
            confidence=confidence,
            halt_false_alarm=halt_alpha,
            source=self.doc.source,
            text=text,
            locations=self.col.locations,
        )

    def proxy(self, node: Node) -> ProxySpec | None:
        m = self.mapping(node, "proxy", PROXY_KEYS, required=("upstream",))
        if m is None:
            return None
        upstream = self.url(m["upstream"], "proxy.upstream") if "upstream" in m else None
        listen = self.host_port(m["listen"], "proxy.listen") if "listen" in m else None
        admin = self.host_port(m["admin"], "proxy.admin") if "admin" in m else None
        args: list[str] = []
        if "args" in m:
            items = self.seq(m["args"], "proxy.args") or []
            for i, item in enumerate(items):
                t = self.text(item, f"proxy.args[{i}]")
                if t is not None:
                    args.append(t)
            if len(args) == len(items):
                for at, message in run_args_problems(args):
                    if at is None:
                        self.problem(m["args"], "proxy.args", message)
                    else:
                        self.problem(items[at], f"proxy.args[{at}]", message)
        if upstream is None:
            return None
        return ProxySpec(upstream, listen, tuple(args), admin)

    def host_port(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problem(node, path, f"expected HOST:PORT, got {value!r}")
            return None
        return value

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
            if locustfile not in BUNDLED_LOCUSTFILES:
                self.problem(
                    m["requests"],
                    "load.requests",
                    "requests are for the bundled locustfiles only (default, grpc)",
                )
            for i, item in enumerate(self.seq(m["requests"], "load.requests") or []):
                r = self.request(item, f"load.requests[{i}]", grpc=locustfile == "grpc")
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

    def request(self, node: Node, path: str, grpc: bool = False) -> RequestSpec | None:
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
        kind, messages = self.grpc_call(m, path, grpc)
        if rpath is None or weight is None or kind is None or messages is None:
            return None
        return RequestSpec(rpath, method, weight, ua, tuple(headers), body, name, kind, messages)

    def grpc_call(self, m: dict[str, Node], path: str, grpc: bool) -> tuple[str | None, int | None]:
        """A gRPC request's `kind` (unary or streaming) and `messages` (what a client or
        bidirectional stream sends): `locustfile: grpc` only."""
        kind: str | None = "unary"
        if "kind" in m:
            kind = self.choice(m["kind"], f"{path}.kind", GRPC_KINDS)
            if not grpc:
                self.problem(m["kind"], f"{path}.kind", "kind is for gRPC calls (locustfile: grpc)")
        messages: int | None = 1
        if "messages" in m:
            messages = self.integer(m["messages"], f"{path}.messages", lo=1)
            if messages is not None and messages > MAX_MESSAGES:
                self.problem(
                    m["messages"], f"{path}.messages", f"must be ≤ {MAX_MESSAGES}, got {messages}"
                )
                messages = None
            if kind not in ("client_stream", "bidi_stream"):
                self.problem(
                    m["messages"],
                    f"{path}.messages",
                    "messages is for kind: client_stream or bidi_stream (the messages it sends)",
                )
        return kind, messages

    def scalar(self, node: Node, path: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(node, path, f"expected text, got {describe(node)}")
            return None
        return str(node.value)
