"""What `chaosproxy demo` tells before each of its two experiments (the system, the story,
the checks) and after them (what happened, where it is, what to try next); kept apart from
`demo.py`, which runs them."""

from __future__ import annotations

from typing import Any

INTRO = """\
The demo system: a gateway that clients call; it calls a primary service and, when the primary
fails (5xx, reset, timeout), fails over to a replica. chaosproxy sits in front of the primary.

Experiment 1: Locust users call the gateway while chaosproxy replays a bad deploy of the
primary (post-deploy-breakage: steady -> broken-release -> rollback). Checks: clients stay
served during the outage (halts the run on a breach), errors are gone within 10 s of the
rollback, and p95 latency stays within 4x of the steady phase.
"""

INTRO_CONTROL = """\
The demo system: a gateway that clients call; it calls a primary service and, when the primary
fails (5xx, reset, timeout), fails over to a replica. chaosproxy sits in front of the primary.

Experiment 1: Locust users call the gateway while chaosproxy breaks the primary for half of
them only (a cohort, by their X-Chaos-User id); the other half is the control group. Checks
compare the two in the same seconds: the fault cohort is served like the control group, its
p95 stays within 4x of the control's, and the fault stays inside its cohort (blast radius).
"""

SECOND_CONTROL = """
Experiment 2: the same cohort experiment with failover switched off. The fault cohort sees the
500s that the control group, in the very same seconds, never does: the comparison FAILs.
"""

SECOND = """
Experiment 2: the same experiment, the same checks, the same system with failover switched
off. A verification worth trusting must fail it: clients are no longer served during the
outage, and that check halts the run, so the checks on what comes after it read NOT REACHED.
"""

INTRO_GRPC = """\
The gRPC demo system: a gRPC gateway that clients call; it calls a primary gRPC service
(demo.Items) and, when a call fails (UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED), makes
it on a replica. chaosproxy sits in front of the primary, speaking HTTP/2 (h2c) both ways.

Experiment 1: Locust users make gRPC calls on the gateway while chaosproxy aborts every call
to the primary with UNAVAILABLE, then lets fewer and fewer fail (grpc-primary-outage-short:
steady -> outage -> rollback). Checks: clients stay served during the outage (halts the run on
a breach), and errors are gone within 10 s of the rollback.
"""

SECOND_GRPC = """
Experiment 2: the same experiment with failover switched off: the gateway passes the
primary's UNAVAILABLE on, the clients' check FAILs and halts the run.
"""

INTROS = {"": INTRO, "control-": INTRO_CONTROL, "grpc-": INTRO_GRPC}
SECONDS = {"": SECOND, "control-": SECOND_CONTROL, "grpc-": SECOND_GRPC}


def summary(first: Any, second: Any) -> str:
    """The two runs side by side, then where to go from here."""

    def ttr(outcome: Any) -> str:
        halted = outcome.results.get("halted")
        if halted:
            return (
                f"halted {halted['phase']}: {halted['check']!r} breached "
                f"({halted['value']:.0%} errors), injection stopped"
            )
        for c in outcome.results["checks"]:
            if c["after_phase"]:
                v = c["recovered_after_s"]
                return "never recovered" if v is None else f"recovered {v:.0f}s after the outage"
        for c in outcome.results["checks"]:
            if c.get("compare_to") == "control" and c.get("metric") == "error_rate":
                if c.get("value") is None:
                    return "no cohort data"
                return f"fault cohort {c['value'] * 100:+.1f} points of errors vs control"
        return ""

    lines = [
        "",
        "What happened",
        f"  with failover:    {first.verdict:<5} {ttr(first)}",
        f"                    {first.out}",
        f"  without failover: {second.verdict:<5} {ttr(second)}",
        f"                    {second.out}",
        "",
        "Each results directory holds results.json (the verdict and every check), timeseries.csv",
        "(per second: phase, client view, proxy view), the fault journal and Locust's own stats.",
        "",
        "Next:",
        "  chaosproxy experiment list                     # the bundled experiments",
        "  chaosproxy demo --experiment post-deploy-breakage   # a full-length story (2 min)",
        "  chaosproxy demo --control-group                # judged against a control group",
        "  chaosproxy demo --grpc                         # the same story over gRPC",
        "  chaosproxy demo --explore                      # the demo system and a proxy to poke",
        "  docs/experiments.md                            # write your own",
    ]
    return "\n".join(lines)
