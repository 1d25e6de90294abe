"""Exit codes and the JSON error object of every command that takes --json.

The same outcomes through GOVREG_URL: tests/api/test_remote_exit_codes.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from govreg_kit import MODEL, passing_results

from govreg.cli import REFUSED, cli

README = Path(__file__).resolve().parents[2] / "README.md"


def json_commands() -> list[tuple[list[str], click.Command]]:
    """(command path, command) of every command with a --json option."""
    found: list[tuple[list[str], click.Command]] = []

    def walk(path: list[str], command: click.Command) -> None:
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk([*path, name], sub)
        elif any(p.name == "as_json" for p in command.params):
            found.append((path, command))

    walk([], cli)
    return found


def placeholder_args(command: click.Command) -> list[str]:
    """The least a command line needs to parse: each argument and required option."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append("1" if isinstance(param.type, click.types.IntParamType) else "x")
        elif isinstance(param, click.Option) and param.required:
            if param.secondary_opts:  # --approve/--reject
                args.append(param.opts[0])
            elif isinstance(param.type, click.Choice):
                args += [param.opts[0], str(param.type.choices[0])]
            else:
                args += [param.opts[0], "x"]
    return args


def test_json_commands_are_found() -> None:
    names = {" ".join(path) for path, _ in json_commands()}
    assert {"evaluate", "signoff", "submit", "audit verify", "policies approve", "init"} <= names
    assert {"persons create", "persons list"} <= names
    assert "evidence verify" not in names  # prints one line, no --json
    assert len(names) == 26  # with audit flush-denials


@pytest.mark.parametrize("path", [p for p, _ in json_commands()], ids=" ".join)
def test_every_json_command_reports_an_error_as_json_on_stdout(
    path: list[str], tmp_path: Path
) -> None:
    """Without a home (or, for init, with a home path under a file) each fails as JSON."""
    from click.testing import CliRunner

    [command] = [c for p, c in json_commands() if p == path]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    home = blocker / "home" if path == ["init"] else tmp_path / "no-home"
    env = {"GOVREG_HOME": str(home), "GOVREG_API_KEY": "grk_x_y", "GOVREG_DATABASE_URL": None}
    args = [*path, *placeholder_args(command), "--json"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.stderr == ""
    body = json.loads(result.stdout)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "message", "exit_code"}
    assert error["exit_code"] == result.exit_code
    assert (result.exit_code, error["type"]) in {(2, "InputError"), (3, "ConfigError")}, error
    assert "\n" not in error["message"]

    plain = CliRunner().invoke(cli, args[:-1], env=env, catch_exceptions=False)
    assert (plain.exit_code, plain.stdout) == (result.exit_code, "")
    assert plain.stderr == f"error: {error['message']}\n"


def test_usage_errors_are_json_with_json(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    cases = {
        ("signoff", MODEL, "1", "--role", "validator", "--approve", "--json"): (
            "Missing option '--comment'."
        ),
        ("signoff", MODEL, "1", "--json", "--role", "nobody"): (
            "Invalid value for '--role': 'nobody' is not one of 'business_owner', "
            "'compliance_officer', 'validator'."
        ),
        ("versions", "show", MODEL, "--json", "--bogus"): "No such option '--bogus'.",
    }
    for args, message in cases.items():
        result = kit.home.cli(*args)
        assert (result.exit_code, result.stderr) == (2, ""), args
        assert json.loads(result.stdout) == {
            "error": {"type": "InputError", "message": message, "exit_code": 2}
        }, args
    # without --json, click's usage text as always
    result = kit.home.cli("signoff", MODEL, "1", "--role", "validator", "--approve")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: Missing option '--comment'.\n")
    assert result.stdout == ""


def test_evaluate_exits_refused_when_every_gate_errored(kit: Any) -> None:
    """On SQLite and PostgreSQL: the results are recorded and printed, then exit 10."""
    version = kit.submit()
    shown = kit.registry.show_version(kit["ds-1"], MODEL, version)
    kit.registry.store.path_for(shown["validation_digest"]).unlink()
    size = kit.size()
    result = kit.home.cli("evaluate", MODEL, "1", api_key=kit.key("ds-1"))
    assert result.exit_code == REFUSED == 10
    lines = result.stdout.splitlines()
    assert lines[-1] == "pd v1: gates_failed"
    assert [line.split()[:2] for line in lines[:-1]] == [
        [gate, "error"]
        for gate in (
            "performance",
            "fairness",
            "data-schema",
            "explainability",
            "stability",
            "latency",
        )
    ]
    assert kit.size() == size + 8  # started, six gates, completed: all recorded
    assert kit.row()["status"] == "gates_failed"


def test_a_signoff_that_approves_exits_0_and_one_that_rejects_exits_10(
    sqlite_kit: Any,
) -> None:
    kit = sqlite_kit
    version = kit.evaluated(results=passing_results())  # constructed: every gate passed
    assert kit.row()["status"] == "awaiting_signoff"
    signed = kit.home.cli(
        "signoff", MODEL, str(version), "--role", "validator", "--approve",
        "--comment", "ok", "--json", api_key=kit.key("validator-1"),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["status"] == "awaiting_signoff"
    rejected = kit.home.cli(
        "signoff", MODEL, str(version), "--role", "compliance_officer", "--reject",
        "--comment", "calibration poor", "--json", api_key=kit.key("compliance-1"),
    )  # fmt: skip
    assert (rejected.exit_code, rejected.stderr) == (REFUSED, "")
    assert json.loads(rejected.stdout) == {"model": MODEL, "version": 1, "status": "rejected"}
    assert kit.row()["status"] == "rejected"


# -- the README's table -----------------------------------------------------------------
def readme_codes() -> dict[int, str]:
    """code -> the `type` column of the README's "Exit codes" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, re.MULTILINE)
    return {int(code): kind.strip().strip("`") for code, kind in rows}


def test_the_readme_lists_every_exit_code_the_cli_returns() -> None:
    import audits.merkle
    import audits.verify
    import policies.schema
    import reports.bundle
    import serving.errors
    import validation.runner
    from core import errors
    from govreg.cli.core import error_type

    codes = readme_codes()
    assert sorted(codes) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, REFUSED, 11]
    assert codes[0] == codes[REFUSED] == ""  # outcomes, not errors
    for code, kind in codes.items():
        if kind:
            assert error_type(code, "?") == kind
    # every error a command can raise has a listed code
    raised = (
        audits.merkle.MerkleError,
        audits.verify.VerificationFailed,
        policies.schema.PolicyError,
        reports.bundle.BundleInvalid,
        serving.errors.LoadRefused,
        validation.runner.EmptyPolicyError,
    )

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    everything = set(subclasses(errors.GovregError)) | set(raised)
    for cls in everything:
        assert cls.exit_code in codes, cls
