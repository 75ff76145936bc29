"""What a new user meets first: help with defaults, and startup errors that name their flag."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trustme

from chaosproxy.cli import main
from tests.cli.test_run_cli import LOCAL, run_cli

UPSTREAM = ("--upstream", "http://127.0.0.1:9")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------- help


def test_run_help_shows_the_default_of_every_flag_with_a_value() -> None:
    out = " ".join(run_cli("run", "--help").stdout.split())
    for shown in (
        "HOST:PORT to serve (default: 0.0.0.0:8080)",
        "admin HOST:PORT (default: 127.0.0.1:8081)",
        "(default: 30s)",
        "(default: 256)",
        "(default: text)",
        "(default: info)",
        "cap on the percentage a fault header may ask for (default: 100)",
        "(default: 30m)",
    ):
        assert shown in out, shown
    assert "(default: None)" not in out and "(default: False)" not in out


# ---------------------------------------------------------------- files the flags name


def test_journal_in_a_missing_directory_names_the_journal_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", *UPSTREAM, *LOCAL, "--journal", "/nonexistent/dir/j.jsonl"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("chaosproxy run: error: --journal /nonexistent/dir/j.jsonl:")
    assert "no such directory" in line and "listen" not in line


def test_journal_that_is_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *UPSTREAM, *LOCAL, "--journal", str(tmp_path)]) == 2
    assert "--journal" in one_error_line(capsys)


def test_missing_scenario_dir_exits_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", *UPSTREAM, *LOCAL, "--scenario-dir", "/nonexistent"]) == 2
    assert one_error_line(capsys) == (
        "chaosproxy run: error: --scenario-dir: no such directory: /nonexistent"
    )


@pytest.fixture(scope="module")
def leaf() -> trustme.LeafCert:
    return trustme.CA().issue_cert("127.0.0.1")


def test_tls_cert_that_is_not_a_certificate_names_tls_cert(
    tmp_path: Path, leaf: trustme.LeafCert, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    leaf.private_key_pem.write_to_path(str(key))
    assert main(["run", *UPSTREAM, *LOCAL, "--tls-cert", str(cert), "--tls-key", str(key)]) == 2
    assert one_error_line(capsys).startswith(f"chaosproxy run: error: --tls-cert {cert}:")


def test_tls_key_that_does_not_belong_to_the_certificate_names_tls_key(
    tmp_path: Path, leaf: trustme.LeafCert, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))
    assert main(["run", *UPSTREAM, *LOCAL, "--tls-cert", str(cert), "--tls-key", str(key)]) == 2
    assert one_error_line(capsys).startswith(f"chaosproxy run: error: --tls-key {key}:")


def test_upstream_ca_that_holds_no_certificate_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("garbage\n")
    args = ["run", "--upstream", "https://127.0.0.1:9", *LOCAL, "--upstream-ca", str(ca)]
    assert main(args) == 2
    assert one_error_line(capsys).startswith(f"chaosproxy run: error: --upstream-ca {ca}:")


# ---------------------------------------------------------------- listeners and scenarios


def test_busy_listen_port_names_listen_and_busy_admin_port_names_admin() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listen = run_cli(
            "run", *UPSTREAM, "--listen", f"127.0.0.1:{port}", "--admin", "127.0.0.1:0"
        )
        admin = run_cli("run", *UPSTREAM, "--listen", "127.0.0.1:0", "--admin", f"127.0.0.1:{port}")
    assert (listen.returncode, admin.returncode) == (2, 2)
    assert listen.stderr.strip() == (
        f"chaosproxy run: error: --listen 127.0.0.1:{port}: cannot listen: Address already in use"
    )
    assert admin.stderr.strip() == (
        f"chaosproxy run: error: --admin 127.0.0.1:{port}: cannot listen: Address already in use"
    )


def test_unknown_boot_scenario_names_the_flag_and_suggests() -> None:
    r = run_cli("run", *UPSTREAM, *LOCAL, "--scenario", "post-deploy-breakag")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert line.startswith(
        "chaosproxy run: error: --scenario: unknown scenario 'post-deploy-breakag'; "
        "did you mean post-deploy-breakage?"
    )
    assert "<input>" not in line


def test_invalid_boot_scenario_file_names_the_flag_and_the_located_problem(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nphases:\n  - name: a\n    duration: soon\n")
    r = run_cli("run", *UPSTREAM, *LOCAL, "--scenario", str(bad))
    assert r.returncode == 2
    first, *located = r.stderr.strip().splitlines()
    assert first == f"chaosproxy run: error: --scenario {bad}: invalid scenario:"
    assert located and located[0].startswith(f"{bad}:4:")


# ---------------------------------------------------------------- environment


@pytest.mark.parametrize("spelling", ["1", "true", "YES", "On"])
def test_boolean_environment_accepts_the_usual_true_spellings(
    spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosproxy.cli import build_parser

    monkeypatch.setenv("CHAOSPROXY_ALLOW_HEADER_FAULTS", spelling)
    args = build_parser().parse_args(["run", *UPSTREAM])
    assert args.allow_header_faults is True


@pytest.mark.parametrize("spelling", ["0", "false", "No", "OFF"])
def test_boolean_environment_accepts_the_usual_false_spellings(
    spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosproxy.cli import build_parser

    monkeypatch.setenv("CHAOSPROXY_ALLOW_HEADER_FAULTS", spelling)
    monkeypatch.setenv("CHAOSPROXY_FORWARDED_HEADERS", spelling)
    args = build_parser().parse_args(["run", *UPSTREAM])
    assert args.allow_header_faults is False
    assert args.forwarded_headers is False


def test_boolean_environment_with_another_word_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHAOSPROXY_ALLOW_HEADER_FAULTS", "maybe")
    assert main(["run", *UPSTREAM, *LOCAL]) == 2
    assert one_error_line(capsys) == (
        "chaosproxy run: error: $CHAOSPROXY_ALLOW_HEADER_FAULTS: 'maybe' is not a boolean "
        "(1/0, true/false, yes/no, on/off)"
    )


def test_a_bad_boolean_for_run_does_not_break_other_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHAOSPROXY_ALLOW_HEADER_FAULTS", "maybe")
    assert main(["validate", "post-deploy-breakage"]) == 0


# ---------------------------------------------------------------- validate


def test_validate_a_directory_checks_every_scenario_file_in_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chaosproxy.config.loader import bundled_scenario_dir, scenario_files

    assert main(["validate", str(bundled_scenario_dir())]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(scenario_files(bundled_scenario_dir())) > 1
    assert all(line.startswith("ok: ") for line in out)


def test_validate_a_directory_without_scenarios_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert one_error_line(capsys) == (
        f"{tmp_path}: a directory without scenario files (*.yaml, *.yml)"
    )


def test_missing_boot_scenario_file_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    r = run_cli("run", *UPSTREAM, *LOCAL, "--scenario", str(missing))
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"chaosproxy run: error: --scenario: {missing}: no such scenario file"
    )


def test_validate_with_a_missing_scenario_dir_names_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "--scenario-dir", "/nonexistent", "small"]) == 2
    assert one_error_line(capsys) == (
        "chaosproxy validate: error: --scenario-dir: no such directory: /nonexistent"
    )


async def test_a_journal_the_runtime_cannot_open_is_named_by_its_flag(tmp_path: Path) -> None:
    """Past the early checks (a directory removed in between, say), the open still names it."""
    import yarl

    from chaosproxy.process.runtime import Runtime, Settings
    from chaosproxy.process.startup import startup_error

    journal = tmp_path / "gone" / "j.jsonl"
    settings = Settings(
        upstream=yarl.URL("http://127.0.0.1:9"),
        listen_host="127.0.0.1",
        listen_port=0,
        admin_port=0,
        journal=str(journal),
    )
    rt = Runtime(settings)
    with pytest.raises(OSError) as info:
        await rt.start()
    await rt.stop()
    assert startup_error(info.value, settings) == (
        f"--journal {journal}: No such file or directory"
    )


def test_experiment_run_without_locust_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "locust" else real(name, *a)
    )
    assert main(["experiment", "run", "demo-failover"]) == 2
    err = capsys.readouterr().err
    assert "Locust is not installed" in err and "chaosproxy[loadtest]" in err
