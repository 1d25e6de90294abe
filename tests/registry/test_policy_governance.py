"""A new policy version takes effect only after a compliance officer approves it."""

from __future__ import annotations

from typing import Any

import pytest
from govreg_kit import MODEL

from core.errors import InputError, NotFoundError, PermissionDenied
from policies.loader import find_policy
from policies.schema import Policy, PolicyError


def _newer(version: int = 2, min_auc: str = "0.82") -> Policy:
    data = find_policy("credit-risk").canonical()
    data["version"] = version
    data["gates"][0]["params"]["min_auc"] = min_auc
    return Policy.model_validate(data)


def test_proposal_then_approval_puts_a_version_in_force(kit: Any) -> None:
    reg = kit.registry
    newer = _newer()
    reg.propose_policy(kit["validator-1"], newer)
    listed = {(p["id"], p["version"]): p for p in reg.list_policies(kit["auditor-1"])}
    assert listed[("credit-risk", 1)]["status"] == "shipped"
    assert listed[("credit-risk", 2)] == {
        "id": "credit-risk",
        "version": 2,
        "digest": newer.digest,
        "status": "proposed",
        "proposed_by": "validator-1",
        "approved_by": None,
    }
    # proposed is not in force: new submissions still get version 1 ...
    assert kit.submit() == 1
    assert kit.row(MODEL, 1)["policy_version"] == 1
    # ... and asking for version 2 is refused, saying who must act
    with pytest.raises(PolicyError) as waiting:
        kit.submit(policy_id="credit-risk@2")
    assert str(waiting.value) == (
        "policy credit-risk@2 is not adopted: it was proposed by 'validator-1' and waits "
        "for a compliance officer (govreg policies approve credit-risk@2)"
    )
    adopted = reg.approve_policy(kit["compliance-1"], "credit-risk@2", comment="tighter AUC")
    assert adopted.digest == newer.digest
    assert kit.submit() == 2
    assert (kit.row(MODEL, 2)["policy_version"], kit.row(MODEL, 2)["policy_digest"]) == (
        2,
        newer.digest,
    )
    events = kit.events(types=["policy.proposed", "policy.approved"])
    assert [(e.type, e.actor) for e in events] == [
        ("policy.proposed", "validator-1"),
        ("policy.approved", "compliance-1"),
    ]
    assert events[1].data == {
        "id": "credit-risk",
        "version": 2,
        "digest": newer.digest,
        "comment": "tighter AUC",
    }
    # an approval signs a checkpoint
    assert events[1].seq in kit.checkpoint_sizes()
    kit.verify()


def test_the_proposer_cannot_approve_and_the_refusal_is_recorded(kit: Any) -> None:
    reg = kit.registry
    compliance = kit["compliance-1"]
    reg.propose_policy(compliance, _newer())
    with pytest.raises(PermissionDenied) as caught:
        reg.approve_policy(compliance, "credit-risk@2", comment="mine")
    message = (
        "'compliance-1' proposed policy credit-risk@2 and may not approve it "
        "(segregation of duties)"
    )
    assert str(caught.value) == message
    assert kit.refusals() == [("compliance-1", message)]
    assert [p["status"] for p in reg.list_policies(compliance) if p["version"] == 2] == ["proposed"]
    kit.verify()


def test_roles_and_bad_requests_are_refused(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    reg = kit.registry
    with pytest.raises(
        PermissionDenied, match=r"^'ds-1' \(data_scientist\) may not propose policy$"
    ):
        reg.propose_policy(kit["ds-1"], _newer())
    reg.propose_policy(kit["validator-1"], _newer())
    with pytest.raises(
        PermissionDenied, match=r"^'validator-2' \(validator\) may not approve policy$"
    ):
        reg.approve_policy(kit["validator-2"], "credit-risk@2", comment="x")
    with pytest.raises(InputError) as twice:
        reg.propose_policy(kit["validator-2"], _newer(min_auc="0.9"))
    assert (
        str(twice.value)
        == "policy credit-risk@2 was already proposed with other text; raise its version"
    )
    with pytest.raises(InputError) as shipped:
        reg.propose_policy(kit["validator-1"], find_policy("credit-risk"))
    assert str(shipped.value) == (
        "policy credit-risk@1 ships with govreg and is in force; propose a new version instead"
    )
    with pytest.raises(InputError, match=r"^approving a policy needs a comment: pass --comment$"):
        reg.approve_policy(kit["compliance-1"], "credit-risk@2", comment="  ")
    with pytest.raises(InputError, match=r"^name the version to approve: credit-risk@VERSION$"):
        reg.approve_policy(kit["compliance-1"], "credit-risk", comment="x")
    with pytest.raises(NotFoundError) as unknown:
        reg.approve_policy(kit["compliance-1"], "credit-risk@9", comment="x")
    assert str(unknown.value) == "no policy credit-risk@9 was proposed; see `govreg policies list`"
    reg.approve_policy(kit["compliance-1"], "credit-risk@2", comment="ok")
    with pytest.raises(InputError, match=r"^policy credit-risk@2 is already adopted$"):
        reg.approve_policy(kit["compliance-2"], "credit-risk@2", comment="again")
    kit.verify()
