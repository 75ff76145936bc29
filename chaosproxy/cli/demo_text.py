"""What `chaosproxy demo` tells before each of its two experiments: the system, the story,
the checks (kept apart from `demo.py`, which runs them)."""

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
