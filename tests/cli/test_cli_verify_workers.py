"""`govreg audit verify --workers N|auto`: the same output and exit codes as without it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ledger_helpers import append, drop_guard_rails, event_row, flip, sql, verify

WANTED = "give a whole number from 1 to 64, or auto"


@pytest.fixture
def ctx(home: Any) -> Any:
    context = home.context()
    append(context, range(4, 11))  # 10 events, a checkpoint per transaction
    yield context
    context.close()


@pytest.mark.parametrize("workers", ["1", "2", "auto", "64"])
def test_same_output(home: Any, ctx: Any, workers: str) -> None:
    report = verify(ctx, authenticators=True)  # the CLI has the home's signing key
    plain = home.cli("audit", "verify")
    result = home.cli("audit", "verify", "--workers", workers)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == plain.stdout == report.summary() + "\n"
    as_json = home.cli("audit", "verify", "--workers", workers, "--json")
    assert json.loads(as_json.stdout) == json.loads(home.cli("audit", "verify", "--json").stdout)


def test_tampered_same_failure(home: Any, ctx: Any) -> None:
    drop_guard_rails(ctx)
    ciphertext = bytes(event_row(ctx, 6).ciphertext)
    sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = 6", {"c": flip(ciphertext)})
    plain = home.cli("audit", "verify")
    result = home.cli("audit", "verify", "--workers", "2")
    assert (result.exit_code, result.stdout) == (8, "")
    assert result.stderr == plain.stderr
    assert result.stderr.startswith("error: seq 6: ciphertext does not match its leaf hash")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("0", "0 worker processes is out of range"),
        ("65", "65 worker processes is out of range"),
        ("-1", "'-1' is not a number of worker processes"),
        ("two", "'two' is not a number of worker processes"),
        ("", "'' is not a number of worker processes"),
    ],
)
def test_bad_values_exit_2(sqlite_home: Any, given: str, problem: str) -> None:
    home = sqlite_home
    result = home.cli("audit", "verify", "--workers", given)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith(f"Error: Invalid value for '--workers': {problem}: {WANTED}\n")
    as_json = home.cli("audit", "verify", "--workers", given, "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {
        "error": {
            "type": "InputError",
            "message": f"Invalid value for '--workers': {problem}: {WANTED}",
            "exit_code": 2,
        },
    }


def test_remote_home_refuses_workers(sqlite_home: Any) -> None:
    result = sqlite_home.cli(
        "audit",
        "verify",
        "--workers",
        "2",
        env={"GOVREG_URL": "http://127.0.0.1:9", "GOVREG_HOME": "/nonexistent-govreg-home"},
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith(
        "Error: --workers applies to a local home: through GOVREG_URL the server verifies "
        "its ledger itself, with one process\n"
    )
