"""The CLI against a running server (GOVREG_URL): same commands, same output, same rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from api_server import Server


def _cli(server: Server, *args: str, key: str) -> Any:
    # a client machine: no govreg home, only the server's address and a key
    return server.home.cli(
        *args,
        api_key=key,
        env={"GOVREG_URL": server.url, "GOVREG_HOME": "/nonexistent-govreg-home"},
    )


def test_the_whole_flow_through_the_cli_against_a_server(
    server: Server, candidate: dict[str, Path], tmp_path: Path
) -> None:
    admin = server.home.admin_key
    keys = {}
    for name, role in (
        ("ds-1", "data_scientist"),
        ("validator-1", "validator"),
        ("compliance-1", "compliance_officer"),
        ("owner-1", "business_owner"),
        ("auditor-1", "auditor"),
    ):
        person = _cli(server, "persons", "create", name, "--display", role, key=admin)
        assert person.exit_code == 0, person.output
        made = _cli(
            server, "principals", "create", name, "--role", role, "--person", name, "--json",
            key=admin,
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        keys[role] = json.loads(made.stdout)["api_key"]
    listed = _cli(server, "principals", "list", "--json", key=admin)
    assert [p["name"] for p in json.loads(listed.stdout)] == [
        "admin",
        "auditor-1",
        "compliance-1",
        "ds-1",
        "owner-1",
        "validator-1",
    ]

    submitted = _cli(
        server,
        "submit",
        "pd",
        "--artifact",
        str(candidate["artifact"]),
        "--train",
        str(candidate["train"]),
        "--validation",
        str(candidate["validation"]),
        "--target",
        "default",
        "--protected",
        "sex,age_band",
        "--reasons",
        str(candidate["reasons"]),
        key=keys["data_scientist"],
    )
    assert (submitted.exit_code, submitted.stdout) == (0, "submitted pd v1\n")
    evaluated = _cli(server, "evaluate", "pd", "1", "--json", key=keys["data_scientist"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["status"] == "awaiting_signoff"

    # the same refusal, message and exit code as locally
    refused = _cli(
        server,
        "signoff",
        "pd",
        "1",
        "--role",
        "validator",
        "--approve",
        "--comment",
        "mine",
        key=keys["data_scientist"],
    )
    assert (refused.exit_code, refused.stderr) == (
        6,
        "error: 'ds-1' (data_scientist) may not sign\n",
    )
    for role in ("validator", "compliance_officer", "business_owner"):
        signed = _cli(
            server,
            "signoff",
            "pd",
            "1",
            "--role",
            role,
            "--approve",
            "--comment",
            "reviewed",
            key=keys[role],
        )
        assert signed.exit_code == 0, signed.output
    assert signed.stdout == "signed pd v1 as business_owner; status approved\n"
    promoted = _cli(
        server, "promote", "pd", "1", "--alias", "champion", key=keys["compliance_officer"]
    )
    assert promoted.stdout == "pd@champion -> v1\n"
    illegal = _cli(server, "reinstate", "pd", "1", "--reason", "x", key=keys["compliance_officer"])
    assert illegal.exit_code == 7
    assert illegal.stderr.startswith("error: cannot reinstate pd v1: it is promoted")

    shown = json.loads(
        _cli(server, "versions", "show", "pd", "1", "--json", key=keys["auditor"]).stdout
    )
    assert (shown["status"], shown["aliases"]) == ("promoted", ["champion"])
    log = json.loads(
        _cli(server, "audit", "log", "--model", "pd", "--json", key=keys["auditor"]).stdout
    )
    assert [e["type"] for e in log][-2:] == ["version.approved", "alias.set"]
    verified = _cli(server, "audit", "verify", key=keys["auditor"])
    assert verified.exit_code == 0
    assert verified.stdout.startswith("ledger intact: ")

    # the report and the bundle are the server's: fetched, with the digest it sent
    pdf, bundle = tmp_path / "pd-1.pdf", tmp_path / "pd-1.zip"
    report = _cli(server, "report", "pd", "1", "-o", str(pdf), key=keys["auditor"])
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert (report.exit_code, report.stdout) == (
        0,
        f"wrote {pdf} ({pdf.stat().st_size} bytes, sha256 {digest})\n",
    )
    exported = _cli(server, "evidence", "export", "pd", "1", "-o", str(bundle), key=keys["auditor"])
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert (exported.exit_code, exported.stdout) == (0, f"wrote {bundle}: sha256 {digest}\n")
    rotate = _cli(server, "keys", "rotate", key=admin)
    assert (rotate.exit_code, rotate.stderr) == (
        3,
        "error: keys rotate runs on the server's host, not through GOVREG_URL\n",
    )


def test_an_unreachable_server_is_a_clear_error(sqlite_home: Any) -> None:
    result = sqlite_home.cli(
        "versions", "list", env={"GOVREG_URL": "http://127.0.0.1:9", "GOVREG_HOME": "/nowhere"}
    )
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot reach the govreg server at http://127.0.0.1:9")
