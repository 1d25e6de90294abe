"""The approval rules the service layer and the serving loader share (pure functions)."""

from __future__ import annotations

from typing import Any

from policies.loader import find_policy
from registry.rules import failing_gates, missing_signoffs, signers_by_role

POLICY = find_policy("credit-risk")
GATES = [g.id for g in POLICY.gates]


def _result(gate_id: str, verdict: str = "passed", blocking: bool = False) -> dict[str, Any]:
    return {"gate_id": gate_id, "verdict": verdict, "blocking": blocking}


def _signoff(
    who: str, role: str, evidence: str = "e1", decision: str = "approve"
) -> dict[str, Any]:
    return {"principal": who, "role": role, "decision": decision, "evidence_digest": evidence}


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
    counted = signers_by_role(signoffs, evidence="e1", submitter="ds-1")
    assert counted == {"validator": ["validator-1"], "business_owner": ["owner-1"]}
    assert missing_signoffs(POLICY, counted) == [
        {"role": "compliance_officer", "required": 1, "have": 0, "missing": 1}
    ]
    complete = [*signoffs, _signoff("compliance-1", "compliance_officer")]
    assert (
        missing_signoffs(POLICY, signers_by_role(complete, evidence="e1", submitter="ds-1")) == []
    )
