"""`proxy.args` read as `chaosproxy run` reads them: the runner's own flags refused, an unknown
or ambiguous flag located with a suggestion, a value `run` would refuse refused at `validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosproxy.experiment.model import RUNNER_FLAGS
from chaosproxy.experiment.spec import load_experiment_text
from tests.experiment.support_spec import problems, with_proxy


@pytest.mark.parametrize("flag", sorted(RUNNER_FLAGS))
@pytest.mark.parametrize("form", ["apart", "joined"])
def test_the_runners_own_flags_are_refused_in_proxy_args(flag: str, form: str) -> None:
    args = f"    - {flag}\n    - x\n" if form == "apart" else f"    - {flag}=x\n"
    found = problems(with_proxy("  args:\n    - --access-log\n" + args))
    assert found == [f"exp.yaml:7:7: proxy.args[1]: {flag} is the runner's own flag: "
                     f"{RUNNER_FLAGS[flag]}"]  # fmt: skip


def test_every_flag_the_runner_passes_is_one_proxy_args_refuses(tmp_path: Path) -> None:
    from chaosproxy.experiment.processes import proxy_argv

    exp = load_experiment_text(with_proxy("  args: [--access-log]\n"))
    argv = proxy_argv(exp, tmp_path, ("127.0.0.1", 1), ("127.0.0.1", 2), tmp_path)
    own = [a for a in argv[: argv.index("--access-log")] if a.startswith("--")]
    assert own and set(own) <= set(RUNNER_FLAGS)
    assert argv[-1] == "--access-log"  # the experiment's own flags come last


def test_proxy_args_are_read_as_chaosproxy_run_reads_them() -> None:
    ok = load_experiment_text(with_proxy("  args: [--pool-size, '64', --seed, '-3']\n"))
    assert ok.proxy is not None and ok.proxy.args == ("--pool-size", "64", "--seed", "-3")
    assert problems(with_proxy("  args: [--pool-sise, '3']\n")) == [
        "exp.yaml:5:10: proxy.args[0]: chaosproxy run has no flag '--pool-sise'; "
        "did you mean --pool-size?"
    ]
    assert problems(with_proxy("  args: [--journ, x]\n")) == [
        "exp.yaml:5:10: proxy.args[0]: --journ is ambiguous: --journal, --journal-faults, "
        "--journal-keep, --journal-max-size"
    ]
    (found,) = problems(with_proxy("  args: [--access-log, --pool-size, lots]\n"))
    assert found.startswith("exp.yaml:5:24: proxy.args[1]: chaosproxy run would refuse this: ")
    assert "--pool-size" in found and "lots" in found
