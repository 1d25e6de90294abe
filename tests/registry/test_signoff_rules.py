"""Sign-off rules: segregation of duties, distinct people, approval on the last sign-off."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import MODEL, passing_results

from audits.ledger import anchor_name
from core.canonical import canonical_bytes
from core.clock import isoformat
from core.errors import InputError, PermissionDenied, TransitionError

NOW = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)

TWO_EYES = """\
id: two-eyes
version: 3
description: two validators, nothing else
decision_cutoff: 0.5
revalidation_days: 30
gates:
  - id: performance
    kind: performance
    blocking: true
    params: {min_auc: 0.7, min_ks: 0.2}
signoffs:
  required:
    - role: validator
      count: 2
"""


def refused(kit: Any, error: type[Exception], message: str, action: Any) -> None:
    """``action`` raises ``error`` with exactly ``message`` and writes nothing."""
    before = kit.state()
    with pytest.raises(error) as caught:
        action()
    assert str(caught.value) == message
    assert kit.state() == before


def test_the_last_signoff_approves_in_the_same_transaction(kit: Any) -> None:
    reg = kit.registry_at(lambda: NOW)
    kit.evaluated()
    evidence = kit.row()["evidence_digest"]
    for who, role in (("validator-1", "validator"), ("compliance-1", "compliance_officer")):
        status = reg.signoff(kit[who], MODEL, 1, role=role, approve=True, comment="fine")
        assert status == "awaiting_signoff"
        assert kit.row()["status"] == "awaiting_signoff"
        assert kit.size() in kit.checkpoint_sizes()  # every commit is signed
    missing = reg.show_version(kit["auditor-1"], MODEL, 1)["signoffs_missing"]
    assert missing == [{"role": "business_owner", "missing": 1}]

    status = reg.signoff(
        kit["owner-1"], MODEL, 1, role="business_owner", approve=True, comment="go"
    )
    assert status == "approved"
    size = kit.size()
    signoff, approval = kit.events(model=MODEL, version=1)[-2:]
    assert (signoff.type, signoff.seq) == ("signoff.recorded", size - 1)
    assert (approval.type, approval.seq) == ("version.approved", size)
    assert signoff.data == {
        "role": "business_owner",
        "decision": "approve",
        "evidence_digest": evidence,
        "comment": "go",
        "person": "owner-1",
        "creators": ["admin"],
    }
    revalidate_by = isoformat(NOW + timedelta(days=365))
    row = kit.row()
    assert approval.data == {
        "revalidate_by": revalidate_by,
        "evidence_digest": evidence,
        "artifact_digest": row["artifact_digest"],
        "signers": ["compliance-1", "owner-1", "validator-1"],
    }
    assert row["status"] == "approved"
    assert row["approved_at"] == approval.recorded_at
    assert row["approval_seq"] == size
    assert row["revalidate_by"] == revalidate_by
    # One signed checkpoint covers the sign-off and the approval (one transaction),
    # and its anchor is on disk.
    assert max(kit.checkpoint_sizes()) == size
    assert size - 1 not in kit.checkpoint_sizes()
    assert (Path(kit.settings.anchors_path) / anchor_name(size)).is_file()
    shown = reg.show_version(kit["auditor-1"], MODEL, 1)
    assert shown["signoffs_missing"] == []
    assert [(s["principal"], s["role"], s["current"]) for s in shown["signoffs"]] == [
        ("validator-1", "validator", True),
        ("compliance-1", "compliance_officer", True),
        ("owner-1", "business_owner", True),
    ]
    kit.verify()


def test_approval_failing_takes_the_last_signoff_with_it(kit: Any, monkeypatch: Any) -> None:
    kit.evaluated()
    kit.sign("validator-1")
    kit.sign("compliance-1")
    kit.people("owner-1")

    def broken(conn: Any, appended: Any = None) -> None:
        raise OSError("signing key unavailable")

    monkeypatch.setattr(kit.ctx.ledger, "checkpoint", broken)
    refused(kit, OSError, "signing key unavailable", lambda: kit.sign("owner-1"))
    assert kit.row()["status"] == "awaiting_signoff"
    assert len(kit.rows("signoffs")) == 2
    monkeypatch.undo()
    assert kit.sign("owner-1") == "approved"
    kit.verify()


def test_a_signoff_signs_the_evidence_digest(kit: Any) -> None:
    results = passing_results()
    kit.evaluated(results=results)
    row = kit.row()
    expected = hashlib.sha256(
        canonical_bytes(
            {
                "artifact": row["artifact_digest"],
                "train": row["train_digest"],
                "validation": row["validation_digest"],
                "policy": row["policy_digest"],
                "gates": {
                    r["gate_id"]: hashlib.sha256(canonical_bytes(r)).hexdigest() for r in results
                },
            }
        )
    ).hexdigest()
    assert row["evidence_digest"] == expected
    kit.sign("validator-1")
    assert [s["evidence_digest"] for s in kit.rows("signoffs")] == [expected]
    kit.verify()


def test_new_evidence_voids_earlier_signoffs(kit: Any) -> None:
    reg = kit.registry
    kit.evaluated()
    old = kit.row()["evidence_digest"]
    kit.sign("validator-1")
    kit.sign("compliance-1")
    # Re-evaluation is allowed while awaiting sign-off; the evidence is gone
    # until the new evaluation completes, and nobody can sign meanwhile.
    assert reg.start_evaluation(kit["validator-2"], MODEL, 1) == 2
    assert kit.row()["status"] == "evaluating"
    assert kit.row()["evidence_digest"] is None
    kit.people("owner-1")
    refused(
        kit,
        TransitionError,
        "cannot sign pd v1: it is evaluating; sign needs one of: awaiting_signoff",
        lambda: kit.sign("owner-1"),
    )
    results = passing_results()
    results[0]["values"] = {"measured": "0.91"}  # different measurements: new evidence
    assert (
        reg.evaluations.record_evaluation(kit["validator-2"], MODEL, 1, 2, results)
        == "awaiting_signoff"
    )
    new = kit.row()["evidence_digest"]
    assert new != old
    shown = reg.show_version(kit["auditor-1"], MODEL, 1)
    assert [(s["principal"], s["current"]) for s in shown["signoffs"]] == [
        ("validator-1", False),
        ("compliance-1", False),
    ]
    assert shown["signoffs_missing"] == [
        {"role": "validator", "missing": 1},
        {"role": "compliance_officer", "missing": 1},
        {"role": "business_owner", "missing": 1},
    ]
    # The last sign-off of the old set no longer approves.
    assert kit.sign("owner-1") == "awaiting_signoff"
    # The earlier signers sign again, on the new evidence.
    assert kit.sign("validator-1") == "awaiting_signoff"
    assert kit.sign("compliance-1") == "approved"
    approval = kit.events(model=MODEL, version=1, types=["version.approved"])
    assert [(e.data["evidence_digest"], e.data["signers"]) for e in approval] == [
        (new, ["compliance-1", "owner-1", "validator-1"])
    ]
    kit.verify()


def test_data_scientists_admins_auditors_and_services_cannot_sign(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.evaluated()
    kit.people("ds-2", "auditor-1", "service-1")
    for who, role in (
        ("ds-1", "data_scientist"),
        ("ds-2", "data_scientist"),
        ("admin", "admin"),
        ("auditor-1", "auditor"),
        ("service-1", "service"),
    ):
        refused(
            kit,
            PermissionDenied,
            f"'{who}' ({role}) may not sign",
            lambda who=who: kit.registry.signoff(
                kit[who], MODEL, 1, role="validator", approve=True, comment="x"
            ),
        )
    kit.verify()


def test_the_submitter_never_signs_their_own_version(kit: Any) -> None:
    kit.evaluated()
    # Even holding a signing role, the submitter is refused (segregation of duties).
    submitter = kit.principal("ds-1", "validator")
    refused(
        kit,
        PermissionDenied,
        "'ds-1' may not sign pd v1: person 'ds-1' submitted this version (as 'ds-1') and "
        "may not sign it (as 'ds-1') (segregation of duties)",
        lambda: kit.registry.signoff(
            submitter, MODEL, 1, role="validator", approve=True, comment="mine"
        ),
    )
    refused(
        kit,
        PermissionDenied,
        "'ds-1' may not sign pd v1: person 'ds-1' submitted this version (as 'ds-1') and "
        "may not sign it (as 'ds-1') (segregation of duties)",
        lambda: kit.registry.signoff(
            submitter, MODEL, 1, role="validator", approve=False, comment="mine"
        ),
    )


def test_one_person_one_signoff(kit: Any) -> None:
    kit.evaluated()
    kit.sign("validator-1")
    # The same person under another signing role still counts once.
    vera_again = kit.principal("validator-1", "compliance_officer")
    refused(
        kit,
        PermissionDenied,
        "'validator-1' may not sign pd v1: person 'validator-1' has already signed this "
        "version (as 'validator-1'); each sign-off needs a distinct person (segregation of duties)",
        lambda: kit.registry.signoff(
            vera_again, MODEL, 1, role="compliance_officer", approve=True, comment="again"
        ),
    )
    refused(
        kit,
        PermissionDenied,
        "'validator-1' may not sign pd v1: person 'validator-1' has already signed this "
        "version (as 'validator-1'); each sign-off needs a distinct person (segregation of duties)",
        lambda: kit.sign("validator-1"),
    )


def test_a_satisfied_role_takes_no_extra_signoff(kit: Any) -> None:
    kit.evaluated()
    kit.sign("validator-1")
    kit.people("validator-2")
    refused(
        kit,
        InputError,
        "pd v1 already has the 1 validator sign-off(s) its policy asks for",
        lambda: kit.sign("validator-2"),
    )
    # An extra reviewer of a satisfied role may still reject.
    assert kit.sign("validator-2", approve=False) == "rejected"
    kit.verify()


def test_signing_as_a_role_one_does_not_hold_is_refused(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.evaluated()
    kit.people("validator-1")
    refused(
        kit,
        PermissionDenied,
        "'validator-1' holds the role validator and cannot sign as compliance_officer",
        lambda: kit.registry.signoff(
            kit["validator-1"], MODEL, 1, role="compliance_officer", approve=True, comment="x"
        ),
    )


def test_a_rejection_needs_a_reason_and_is_final(kit: Any) -> None:
    kit.evaluated()
    kit.people("compliance-1", "owner-1")
    refused(
        kit,
        InputError,
        "a rejection needs a reason: pass --comment",
        lambda: kit.registry.signoff(
            kit["compliance-1"], MODEL, 1, role="compliance_officer", approve=False, comment="  \n"
        ),
    )
    status = kit.registry.signoff(
        kit["compliance-1"],
        MODEL,
        1,
        role="compliance_officer",
        approve=False,
        comment=" bias risk ",
    )
    assert status == "rejected"
    row = kit.row()
    assert (row["status"], row["status_reason"]) == ("rejected", "bias risk")
    assert [(s["principal"], s["decision"]) for s in kit.rows("signoffs")] == [
        ("compliance-1", "reject")
    ]
    for who in ("validator-1", "owner-1"):
        kit.people(who)
        refused(
            kit,
            TransitionError,
            "cannot sign pd v1: it is rejected; sign needs one of: awaiting_signoff",
            lambda who=who: kit.sign(who),
        )
    kit.verify()


def test_a_policy_counts_people_per_role_and_names_what_it_asks_for(
    kit: Any, tmp_path: Path
) -> None:
    kit.adopt(TWO_EYES)
    reg = kit.registry
    kit.submit(policy_id="two-eyes")
    number = reg.start_evaluation(kit["ds-1"], MODEL, 1)
    reg.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, number, passing_results()[:1])
    kit.people("compliance-1")
    refused(
        kit,
        PermissionDenied,
        "policy two-eyes@3 does not ask for a compliance_officer sign-off; it asks for validator",
        lambda: kit.sign("compliance-1"),
    )
    assert kit.sign("validator-1") == "awaiting_signoff"
    assert reg.show_version(kit["auditor-1"], MODEL, 1)["signoffs_missing"] == [
        {"role": "validator", "missing": 1}
    ]
    assert kit.sign("validator-2") == "approved"
    row = kit.row()
    assert (row["policy_id"], row["policy_version"]) == ("two-eyes", 3)
    approved_at = datetime.strptime(row["approved_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    revalidate_by = datetime.strptime(row["revalidate_by"], "%Y-%m-%dT%H:%M:%S.%fZ")
    # revalidate_by comes from the registry's clock, approved_at from the ledger's
    # recorded_at: the same instant up to the time between the two readings.
    assert abs(revalidate_by - approved_at - timedelta(days=30)) < timedelta(seconds=5)
    kit.verify()


def test_cli_signoff_with_a_role_the_principal_does_not_hold(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.evaluated()
    key = kit.key("validator-1")
    before = kit.state()
    result = kit.home.cli(
        "signoff",
        MODEL,
        "1",
        "--role",
        "business_owner",
        "--approve",
        "--comment",
        "ok",
        api_key=key,
    )
    assert result.exit_code == 6
    assert result.stderr == (
        "error: 'validator-1' holds the role validator and cannot sign as business_owner\n"
    )
    assert result.stdout == ""
    assert kit.state() == before
    result = kit.home.cli(
        "signoff",
        MODEL,
        "1",
        "--role",
        "validator",
        "--approve",
        "--comment",
        "ok",
        "--json",
        api_key=key,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("{")
    assert '"status": "awaiting_signoff"' in result.stdout
    kit.verify()
