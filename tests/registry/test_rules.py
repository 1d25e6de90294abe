"""The approval rules the service layer and the serving loader share (pure functions)."""

from __future__ import annotations

from typing import Any

from policies.loader import find_policy
from registry.rules import Seat, failing_gates, missing_signoffs, seat_conflict, signers_by_role

POLICY = find_policy("credit-risk")
GATES = [g.id for g in POLICY.gates]


def _result(gate_id: str, verdict: str = "passed", blocking: bool = False) -> dict[str, Any]:
    return {"gate_id": gate_id, "verdict": verdict, "blocking": blocking}


SUBMITTER = Seat("ds-1", "ds-1")


def _signoff(
    who: str,
    role: str,
    evidence: str = "e1",
    decision: str = "approve",
    *,
    person: str | None = None,
    creators: tuple[str, ...] = (),
) -> dict[str, Any]:
    signoff = {"principal": who, "role": role, "decision": decision, "evidence_digest": evidence}
    if person is not None:
        signoff |= {"person": person, "creators": list(creators)}
    return signoff


def test_gates_fail_closed() -> None:
    assert failing_gates(POLICY, [_result(g) for g in GATES]) == []
    assert failing_gates(POLICY, [_result(g, "warned") for g in GATES]) == []
    # the policy decides what blocks, whatever the result says
    results = [_result(g, "failed" if g == "fairness" else "passed") for g in GATES]
    assert failing_gates(POLICY, results) == ["fairness failed"]
    assert failing_gates(POLICY, [_result(g, "error") for g in GATES[:1]]) == [
        "performance error",
        *[f"{g} has no result" for g in GATES[1:]],
    ]
    assert failing_gates(POLICY, []) == ["no gate results (an empty evaluation fails closed)"]


def test_signoffs_count_distinct_people_on_current_evidence_never_the_submitter() -> None:
    signoffs = [
        _signoff("ds-1", "validator"),  # the submitter
        _signoff("validator-1", "validator", evidence="old"),  # stale evidence
        _signoff("validator-2", "validator", decision="reject"),
        _signoff("validator-1", "validator"),
        _signoff("validator-1", "compliance_officer"),  # same person, second role
        _signoff("owner-1", "business_owner"),
    ]
    counted = signers_by_role(signoffs, evidence="e1", submitter=SUBMITTER)
    assert counted == {"validator": ["validator-1"], "business_owner": ["owner-1"]}
    assert missing_signoffs(POLICY, counted) == [
        {"role": "compliance_officer", "required": 1, "have": 0, "missing": 1}
    ]
    complete = [*signoffs, _signoff("compliance-1", "compliance_officer")]
    assert (
        missing_signoffs(POLICY, signers_by_role(complete, evidence="e1", submitter=SUBMITTER))
        == []
    )


def test_signoffs_count_persons_not_principal_names() -> None:
    """Two principals of one person count once; the submitter's person never counts."""
    signoffs = [
        _signoff("ds-1-validator", "validator", person="ds-1"),  # the submitter's person
        _signoff("val-a", "validator", person="alice"),
        _signoff("co-a", "compliance_officer", person="alice"),  # alice again, second role
        _signoff("bo-b", "business_owner", person="bob"),
    ]
    counted = signers_by_role(signoffs, evidence="e1", submitter=SUBMITTER)
    assert counted == {"validator": ["val-a"], "business_owner": ["bo-b"]}


def test_creator_independence_refuses_seats_minted_by_a_seat_holder() -> None:
    """An admin who also signs (person alice) mints a principal for a made-up person:
    its sign-off does not count; nor does a signer who created the submitter."""
    submitter = Seat("ds-x", "ds-x", frozenset({"mallory"}))
    signoffs = [
        _signoff("val-a", "validator", person="alice", creators=("admin",)),
        _signoff("co-fake", "compliance_officer", person="fake", creators=("alice",)),
        _signoff("bo-m", "business_owner", person="mallory", creators=("admin",)),
        _signoff("co-c", "compliance_officer", person="carol", creators=("admin", "carol")),
    ]
    counted = signers_by_role(signoffs, evidence="e1", submitter=submitter)
    assert counted == {"validator": ["val-a"], "compliance_officer": ["co-c"]}
    assert seat_conflict(
        Seat("co-fake", "fake", frozenset({"alice"})),
        submitter,
        [Seat("val-a", "alice", frozenset({"admin"}))],
    ) == (
        "principal 'co-fake' (person 'fake') was created by person 'alice', "
        "who has already signed this version"
    )
    assert seat_conflict(Seat("bo-m", "mallory"), submitter, []) == (
        "person 'mallory' created the principal 'ds-x' that submitted this version"
    )
    assert seat_conflict(Seat("v", "ds-x"), submitter, []) == (
        "person 'ds-x' submitted this version (as 'ds-x') and may not sign it (as 'v')"
    )
