"""The ``govreg`` command line: exit codes, one-line errors, JSON output, keys."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from govreg_kit import LIFECYCLE_EVENTS, MODEL, TARGET, passing_results

from core.clock import isoformat, utcnow

SECRET_FILES = ("keys/kek.json", "keys/checkpoint.key", "admin.key")


def run(kit: Any, *args: str, who: str = "admin") -> Any:
    return kit.home.cli(*args, api_key=kit.key(who))


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_of(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, mode(p), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_help_lists_the_commands() -> None:
    from govreg.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "no model reaches production without proof" in result.stdout
    for command in (
        "init",
        "principals",
        "submit",
        "evaluate",
        "signoff",
        "versions",
        "promote",
        "suspend",
        "reinstate",
        "retire",
        "audit",
        "keys",
    ):
        assert re.search(rf"^  {command}\b", result.stdout, re.MULTILINE), command


def test_init_creates_private_key_files(tmp_path: Path) -> None:
    from audits.signing import fingerprint, load_public_key
    from govreg.cli import cli

    home = tmp_path / "fresh"
    env = {"GOVREG_HOME": str(home), "GOVREG_DATABASE_URL": None, "GOVREG_API_KEY": None}
    result = CliRunner().invoke(cli, ["init"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    keys = home / "keys"
    fpr = fingerprint(load_public_key(keys / "checkpoint.pub"))
    lines = result.stdout.splitlines()
    assert lines[0] == f"created the key-encryption key {keys / 'kek.json'} (0600)"
    assert lines[1] == f"created the checkpoint signing key {keys / 'checkpoint.key'} (0600)"
    assert re.fullmatch(r"database schema at revision \w+ \(sqlite\)", lines[2])
    assert lines[3] == (
        f"created principal 'admin' (admin); its API key is in {home / 'admin.key'} (0600)"
    )
    assert lines[4:] == [f"checkpoint public key fingerprint: {fpr}"]
    for name in SECRET_FILES:
        assert mode(home / name) == 0o600, name
    assert (keys / "checkpoint.pub").is_file()
    assert mode(home) == 0o700
    assert mode(keys) == 0o700
    assert (home / "govreg.db").is_file()
    assert (home / "admin.key").read_text().startswith("grk_")


def test_init_twice_changes_nothing(kit: Any) -> None:
    home = kit.home.path
    files = files_of(home)
    db_file = Path(kit.settings.db_url.removeprefix("sqlite:///"))
    db_before = db_file.stat().st_mtime_ns if db_file.is_file() else None
    state = kit.state()
    for name in SECRET_FILES:
        assert mode(home / name) == 0o600, name
    assert (home / "keys" / "checkpoint.pub").is_file()

    result = kit.home.cli("init")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()
    assert first == f"govreg home {home} is already initialised; nothing changed"
    assert second.startswith("checkpoint public key fingerprint: ")
    result = kit.home.cli("init", "--json")
    data = as_json(result)
    assert data["created"] is False
    assert data["messages"] == [f"govreg home {home} is already initialised; nothing changed"]
    assert data["admin_key_path"] == str(home / "admin.key")

    assert files_of(home) == files
    assert kit.state() == state
    if db_before is not None:
        assert db_file.stat().st_mtime_ns == db_before


def test_principals_create_list_revoke(kit: Any) -> None:
    created = as_json(
        run(
            kit,
            "principals",
            "create",
            "val-1",
            "--role",
            "validator",
            "--person",
            "admin",
            "--json",
        )
    )
    key = created.pop("api_key")
    assert created == {
        "name": "val-1",
        "role": "validator",
        "person": "admin",
        "models": None,
        "expires_at": None,
        "revoked_at": None,
    }
    assert re.fullmatch(r"grk_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}", key)
    human = ok(
        run(kit, "principals", "create", "owner-1", "--role", "business_owner", "--person", "admin")
    )
    lines = human.stdout.splitlines()
    assert lines[0] == "created owner-1 (business_owner) for person admin"
    assert lines[1].startswith("API key (shown once, keep it secret): grk_")

    listed = as_json(run(kit, "principals", "list", "--json"))
    assert [(p["name"], p["role"], p["revoked_at"]) for p in listed] == [
        ("admin", "admin", None),
        ("owner-1", "business_owner", None),
        ("val-1", "validator", None),
    ]
    # The key is shown once: never listed, never in the trail, stored only as a hash.
    listing = run(kit, "principals", "list", "--json").stdout
    log = run(kit, "audit", "log", "--json").stdout
    assert key not in listing
    assert key not in log
    assert key.split("_", 2)[2] not in log
    assert as_json(kit.home.cli("versions", "list", "--json", api_key=key)) == []

    before = kit.state()
    for args, code, message in (
        (
            ("principals", "create", "val-1", "--role", "auditor", "--person", "admin"),
            2,
            "principal 'val-1' exists; choose another name",
        ),
        (
            ("principals", "create", "bad name", "--role", "auditor", "--person", "admin"),
            2,
            "principal name 'bad name' is not allowed: use 1-100 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit",
        ),
        (
            ("principals", "revoke", "nobody"),
            4,
            "no principal 'nobody'; see `govreg principals list`",
        ),
    ):
        result = run(kit, *args)
        assert (result.exit_code, result.stderr) == (code, f"error: {message}\n"), args
    result = kit.home.cli(
        "principals", "create", "x", "--role", "auditor", "--person", "admin", api_key=key
    )
    assert result.exit_code == 6
    assert result.stderr == "error: 'val-1' (validator) may not manage principals\n"
    result = kit.home.cli("principals", "list", api_key=key)
    assert result.exit_code == 6
    assert kit.state() == before
    # both refusals are counted: the first at once, the repeat (same principal and
    # action, same interval) in the aggregated event an admin's flush appends
    assert kit.refusals() == [("val-1", "'val-1' (validator) may not manage principals")]
    flushed = as_json(run(kit, "audit", "flush-denials", "--json"))
    assert flushed == {"events": 1, "refusals": 1, "seqs": [kit.size()]}
    [aggregated] = kit.events(types=["access.denied.aggregated"])
    assert (aggregated.actor, aggregated.data["action"], aggregated.data["count"]) == (
        "val-1",
        "manage_principals",
        1,
    )

    assert ok(run(kit, "principals", "revoke", "val-1")).stdout == "revoked val-1\n"
    listed = {p["name"]: p for p in as_json(run(kit, "principals", "list", "--json"))}
    revoked_at = listed["val-1"]["revoked_at"]
    assert revoked_at is not None
    result = kit.home.cli("versions", "list", api_key=key)
    assert result.exit_code == 5
    assert result.stderr == f"error: API key of 'val-1' was revoked at {revoked_at}\n"
    result = run(kit, "principals", "revoke", "val-1")
    assert (result.exit_code, result.stderr) == (
        7,
        "error: principal 'val-1' is already revoked\n",
    )
    log = as_json(run(kit, "audit", "log", "--json"))
    assert [e["type"] for e in log][-6:] == [
        "principal.created",
        "principal.created",
        "access.denied",
        "access.denied.aggregated",  # the repeated refusal, counted
        "principal.revoked",
        "access.denied",  # the revoked key was used: refused and recorded at once
    ]
    assert log[-1]["actor"] == "val-1"
    assert log[-1]["data"] == {
        "action": "authenticate",
        "role": "validator",
        "reason": f"API key of 'val-1' was revoked at {revoked_at}",
    }
    kit.verify()


def test_bad_credentials_are_refused(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    missing = {"GOVREG_API_KEY": None}
    result = kit.home.cli("versions", "list", env=missing)
    assert result.exit_code == 5
    assert result.stderr == "error: no API key: pass --api-key or set GOVREG_API_KEY\n"
    prefix = kit.home.admin_key.split("_")[1]
    for key, message in (
        ("hunter2", "API key is malformed; it looks like grk_<prefix>_<secret>"),
        (f"grk_{prefix}_not-the-secret", "API key is not known"),
        ("grk_00000000_whatever", "API key is not known"),
    ):
        result = kit.home.cli("versions", "list", api_key=key)
        assert (result.exit_code, result.stderr) == (5, f"error: {message}\n"), key
    # --api-key wins over the environment.
    result = kit.home.cli("--api-key", kit.home.admin_key, "principals", "list", env=missing)
    assert result.exit_code == 0


def test_an_expired_key_is_refused(sqlite_kit: Any, monkeypatch: Any) -> None:
    kit = sqlite_kit
    import registry.services

    result = run(
        kit,
        "principals",
        "create",
        "temp",
        "--role",
        "auditor",
        "--person",
        "admin",
        "--expires",
        "2020-01-01T00:00:00",
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "error: expiry is in the past; give a future time\n",
    )
    result = run(
        kit,
        "principals",
        "create",
        "temp",
        "--role",
        "auditor",
        "--person",
        "admin",
        "--expires",
        "soon",
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --expires 'soon' is not an ISO-8601 time\n",
    )
    expires = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    created = as_json(
        run(
            kit,
            "principals",
            "create",
            "temp",
            "--role",
            "auditor",
            "--person",
            "admin",
            "--expires",
            expires.strftime("%Y-%m-%dT%H:%M:%S"),
            "--json",
        )
    )
    assert created["expires_at"] == isoformat(expires)
    assert ok(kit.home.cli("versions", "list", api_key=created["api_key"]))

    later = expires + timedelta(seconds=1)

    class Later(registry.services.Registry):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs, clock=lambda: later)

    monkeypatch.setattr(registry.services, "Registry", Later)
    result = kit.home.cli("versions", "list", api_key=created["api_key"])
    assert result.exit_code == 5
    assert result.stderr == f"error: API key of 'temp' expired at {isoformat(expires)}\n"
    assert ok(run(kit, "versions", "list"))  # the admin's key has no expiry


def test_a_version_through_the_cli(kit: Any) -> None:
    files = kit.files
    submitted = as_json(
        run(
            kit,
            "submit",
            MODEL,
            "--artifact",
            str(files.model),
            "--train",
            str(files.train_csv),
            "--validation",
            str(files.validation_parquet),
            "--target",
            TARGET,
            "--protected",
            "sex,age_band",
            "--json",
            who="ds-1",
        )
    )
    assert submitted == {"model": MODEL, "version": 1, "status": "submitted"}

    result = run(kit, "promote", MODEL, "1", "--alias", "champion", who="compliance-1")
    assert (result.exit_code, result.stderr) == (
        7,
        "error: cannot promote pd v1: it is submitted; promote needs one of: approved, promoted\n",
    )
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, 1)
    kit.registry.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, number, passing_results())
    for who, role in (
        ("validator-1", "validator"),
        ("compliance-1", "compliance_officer"),
        ("owner-1", "business_owner"),
    ):
        result = run(
            kit,
            "signoff",
            MODEL,
            "1",
            "--role",
            role,
            "--approve",
            "--comment",
            f"{who} agrees",
            who=who,
        )
        ok(result)
    assert result.stdout == "signed pd v1 as business_owner; status approved\n"

    listed = as_json(run(kit, "versions", "list", "--json", who="auditor-1"))
    row = kit.row()
    assert listed == [
        {
            "model": MODEL,
            "version": 1,
            "status": "approved",
            "policy": "credit-risk@1",
            "submitted_by": "ds-1",
            "submitted_at": row["submitted_at"],
            "artifact_digest": row["artifact_digest"],
        }
    ]
    shown = as_json(run(kit, "versions", "show", MODEL, "1", "--json", who="auditor-1"))
    assert shown["status"] == "approved"
    assert shown["approved_at"] == row["approved_at"]
    assert shown["revalidate_by"] == row["revalidate_by"]
    assert shown["evidence_digest"] == row["evidence_digest"]
    assert shown["protected"] == ["sex", "age_band"]
    assert shown["target"] == TARGET
    assert shown["policy"]["id"] == "credit-risk"
    assert [g["gate_id"] for g in shown["gates"]] == [r["gate_id"] for r in passing_results()]
    assert [
        (s["principal"], s["role"], s["decision"], s["current"]) for s in shown["signoffs"]
    ] == [
        ("validator-1", "validator", "approve", True),
        ("compliance-1", "compliance_officer", "approve", True),
        ("owner-1", "business_owner", "approve", True),
    ]
    assert shown["signoffs_missing"] == []
    human = ok(run(kit, "versions", "show", MODEL, "1", who="auditor-1")).stdout
    assert human.startswith("pd v1: approved\n")

    assert ok(
        run(kit, "promote", MODEL, "1", "--alias", "champion", who="compliance-1")
    ).stdout == ("pd@champion -> v1\n")
    assert ok(run(kit, "suspend", MODEL, "1", "--reason", "drift", who="validator-1")).stdout == (
        "suspended pd v1\n"
    )
    assert as_json(run(kit, "versions", "show", MODEL, "1", "--json"))["status"] == "suspended"
    result = run(kit, "suspend", MODEL, "1", "--reason", "again", who="validator-1")
    assert result.exit_code == 7
    assert ok(run(kit, "reinstate", MODEL, "1", "--reason", "fixed", who="owner-1")).stdout == (
        "reinstated pd v1\n"
    )
    shown = as_json(run(kit, "versions", "show", MODEL, "1", "--json"))
    assert (shown["status"], shown["aliases"]) == ("promoted", ["champion"])
    result = run(kit, "retire", MODEL, "1", "--reason", "  ", who="owner-1")
    assert (result.exit_code, result.stderr) == (2, "error: retire needs a reason: pass --reason\n")
    result = run(kit, "retire", MODEL, "1", "--reason", "end", who="validator-1")
    assert (result.exit_code, result.stderr) == (
        6,
        "error: 'validator-1' (validator) may not retire\n",
    )
    assert ok(run(kit, "retire", MODEL, "1", "--reason", "end", who="owner-1")).stdout == (
        "retired pd v1\n"
    )
    shown = as_json(run(kit, "versions", "show", MODEL, "1", "--json"))
    assert (shown["status"], shown["aliases"], shown["status_reason"]) == ("retired", [], "end")

    log = as_json(run(kit, "audit", "log", "--json", who="auditor-1"))
    assert [e["seq"] for e in log] == list(range(1, kit.size() + 1))
    assert log[0]["type"] == "ledger.initialised"
    ours = as_json(run(kit, "audit", "log", "--model", MODEL, "--json", who="auditor-1"))
    assert [e["type"] for e in ours if e["type"] != "access.denied"] == LIFECYCLE_EVENTS
    # the refusal above is about pd v1, so it is in pd's trail
    assert [
        (e["actor"], e["version"], e["data"]["reason"])
        for e in ours
        if e["type"] == "access.denied"
    ] == [("validator-1", 1, "'validator-1' (validator) may not retire")]
    assert ours == [e for e in log if e["model"] == MODEL]
    # Decrypted payloads: comments, reasons, digests.
    by_type = {e["type"]: e for e in ours}
    assert by_type["version.submitted"]["data"]["artifact"]["digest"] == row["artifact_digest"]
    assert [e["data"]["comment"] for e in ours if e["type"] == "signoff.recorded"] == [
        "validator-1 agrees",
        "compliance-1 agrees",
        "owner-1 agrees",
    ]
    assert by_type["version.suspended"]["data"] == {"reason": "drift"}
    assert by_type["version.retired"]["actor"] == "owner-1"
    human = ok(run(kit, "audit", "log", who="auditor-1")).stdout.splitlines()
    assert len(human) == len(log)
    result = run(kit, "audit", "log", who="service-1")
    assert (result.exit_code, result.stderr) == (6, "error: 'service-1' (service) may not read\n")

    verified = as_json(run(kit, "audit", "verify", "--json", who="auditor-1"))
    assert verified["ok"] is True
    assert verified["size"] == kit.size()
    assert verified["checkpoints"] >= 1
    kit.verify()


def test_keys_rotate_as_admin_only(kit: Any) -> None:
    keys = kit.home.path / "keys"
    kek_before = (keys / "kek.json").read_bytes()
    kit.people("validator-1", "auditor-1", "ds-1")
    before = kit.state()
    for args in (("keys", "rotate"), ("keys", "rotate-kek")):
        for who, role in (("validator-1", "validator"), ("auditor-1", "auditor")):
            result = run(kit, *args, who=who)
            assert (result.exit_code, result.stderr) == (
                6,
                f"error: '{who}' ({role}) may not rotate keys\n",
            )
    assert kit.state() == before
    assert (keys / "kek.json").read_bytes() == kek_before
    assert not (keys / "kek.next.json").exists()

    assert ok(run(kit, "keys", "rotate")).stdout == "new data key dk-000002\n"
    kit.submit()  # written under the new data key
    log = as_json(run(kit, "audit", "log", "--json"))
    assert log[-1]["key_id"] == "dk-000002"
    assert log[0]["key_id"] == "dk-000001"
    assert [e["type"] for e in log if e["type"].startswith("key.")] == ["key.data_key_rotated"]

    result = ok(run(kit, "keys", "rotate-kek"))
    kek = json.loads((keys / "kek.json").read_bytes())
    assert result.stdout == (f"key-encryption key is now {kek['kek_id']}; re-wrapped 2 data keys\n")
    assert json.loads(kek_before)["kek_id"] != kek["kek_id"]
    assert mode(keys / "kek.json") == 0o600
    assert not (keys / "kek.next.json").exists()
    # A fresh process reads every event under the new KEK.
    log = as_json(run(kit, "audit", "log", "--json"))
    assert log[-1]["type"] == "key.kek_rotated"
    assert log[-1]["data"] == {"kek_id": kek["kek_id"], "rewrapped": 2}
    assert log[2]["data"]["name"] == "admin"  # after the admin's person.created
    fresh = kit.home.context()
    try:
        from audits.signing import load_public_key

        fresh.registry.verify(
            None,
            load_public_key(fresh.settings.public_key_path),
            anchor_dir=fresh.settings.anchors_path,
        )
    finally:
        fresh.close()


def test_evaluate_with_real_gates(sqlite_kit: Any) -> None:
    """The only CLI run of the real gates (a small model fails some; fail closed)."""
    kit = sqlite_kit
    kit.submit()
    evaluated = run(kit, "evaluate", MODEL, "1", "--json", who="ds-1")
    # the command ran and printed every result; the outcome refuses the version
    assert (evaluated.exit_code, evaluated.stderr) == (10, "")
    shown = json.loads(evaluated.stdout)
    assert [g["gate_id"] for g in shown["gates"]] == [
        "performance",
        "fairness",
        "data-schema",
        "explainability",
        "stability",
        "latency",
    ]
    verdicts = {g["gate_id"]: g["verdict"] for g in shown["gates"]}
    assert set(verdicts.values()) <= {"passed", "warned", "failed", "insufficient_data", "error"}
    not_passed = [f"{g} {v}" for g, v in verdicts.items() if v != "passed"]
    # 20 trees on 800 rows, no monotone constraints and no reason texts: the
    # explainability gate cannot pass, so the version fails its gates.
    assert verdicts["explainability"] == "failed"
    assert shown["status"] == "gates_failed"
    assert shown["status_reason"] == "; ".join(not_passed)
    gate_events = kit.events(model=MODEL, version=1, types=["gate.evaluated"])
    assert [e.data["result_digest"] for e in gate_events] == [
        g["result_digest"] for g in sorted(kit.rows("gate_results"), key=lambda g: g["seq"])
    ]
    result = run(
        kit,
        "signoff",
        MODEL,
        "1",
        "--role",
        "validator",
        "--approve",
        "--comment",
        "x",
        who="validator-1",
    )
    assert (result.exit_code, result.stderr) == (
        7,
        "error: cannot sign pd v1: it is gates_failed; sign needs one of: awaiting_signoff\n",
    )
    kit.verify()


def govreg_script() -> Path:
    return Path(sys.executable).with_name("govreg")


def test_the_console_script(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    script = govreg_script()
    assert script.is_file(), f"{script} is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVREG_")}
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: govreg ")

    kit.approved()
    env.update(kit.home.env)
    env["GOVREG_API_KEY"] = kit.key("auditor-1")
    result = subprocess.run(
        [str(script), "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ledger intact: {kit.size()} events, root ")
    env["GOVREG_API_KEY"] = "grk_00000000_nope"
    result = subprocess.run(
        [str(script), "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        5,
        "",
        "error: API key is not known\n",
    )


@pytest.mark.parametrize("when", ["2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00"])
def test_expiry_is_read_as_utc(sqlite_kit: Any, when: str) -> None:
    created = as_json(
        run(
            sqlite_kit,
            "principals",
            "create",
            "t",
            "--role",
            "auditor",
            "--person",
            "admin",
            "--expires",
            when,
            "--json",
        )
    )
    assert created["expires_at"] == isoformat(datetime(2030, 1, 1, tzinfo=UTC))
