"""Every refusal by role or by segregation of duties is in the ledger, once."""

from __future__ import annotations

from typing import Any

import pytest
from govreg_kit import MODEL

from core.errors import InputError, PermissionDenied, TransitionError


def _denied(kit: Any) -> list[Any]:
    return kit.events(types=["access.denied"])


def test_a_role_refusal_is_recorded_and_changes_nothing_else(kit: Any) -> None:
    kit.people("auditor-1")
    before = kit.state()
    size = kit.size()
    with pytest.raises(PermissionDenied) as caught:
        kit.submit(by="auditor-1")
    assert str(caught.value) == "'auditor-1' (auditor) may not submit"
    assert kit.size() == size + 1
    assert kit.state() == before
    [event] = _denied(kit)
    # about the model the refused call named (a submission has no version yet)
    assert (event.seq, event.actor, event.model, event.version) == (
        size + 1,
        "auditor-1",
        MODEL,
        None,
    )
    assert event.index == {"action": "submit", "role": "auditor"}
    assert event.data == {
        "action": "submit",
        "role": "auditor",
        "reason": "'auditor-1' (auditor) may not submit",
    }
    kit.verify()


def test_a_segregation_refusal_inside_a_use_case_is_recorded_after_rollback(kit: Any) -> None:
    kit.evaluated()
    reg = kit.registry
    reg.signoff(kit["validator-1"], MODEL, 1, role="validator", approve=True, comment="ok")
    signoffs = kit.rows("signoffs")
    with pytest.raises(PermissionDenied) as caught:
        reg.signoff(kit["validator-1"], MODEL, 1, role="validator", approve=True, comment="again")
    message = (
        "'validator-1' may not sign pd v1: person 'validator-1' has already signed this "
        "version (as 'validator-1'); each sign-off needs a distinct person (segregation of duties)"
    )
    assert str(caught.value) == message
    assert kit.rows("signoffs") == signoffs
    [event] = _denied(kit)
    assert (event.actor, event.model, event.version) == ("validator-1", MODEL, 1)
    assert event.data == {"action": "signoff", "role": "validator", "reason": message}
    kit.verify()


def test_a_refusal_in_a_nested_use_case_is_recorded_once(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.submit()
    kit.people("ds-2")
    with pytest.raises(PermissionDenied):
        kit.registry.evaluate(kit["ds-2"], MODEL, 1)
    [event] = _denied(kit)
    assert event.actor == "ds-2"
    assert event.data["action"] == "start_evaluation"
    assert event.data["reason"] == (
        "'ds-2' may evaluate only their own versions; pd v1 was submitted by 'ds-1'"
    )


def test_bad_input_and_illegal_transitions_record_nothing(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.submit()
    kit.people("compliance-1")
    size = kit.size()
    with pytest.raises(TransitionError):
        kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    with pytest.raises(InputError):
        kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason=" ")
    assert kit.size() == size
    assert _denied(kit) == []


def test_a_refused_sign_off_names_its_version_and_shows_in_the_models_trail(kit: Any) -> None:
    kit.evaluated()
    with pytest.raises(PermissionDenied):
        kit.registry.signoff(kit["ds-1"], MODEL, 1, role="validator", approve=True, comment="x")
    kit.registry.signoff(kit["validator-1"], MODEL, 1, role="validator", approve=True, comment="ok")
    # a refusal inside the use case, called with keyword arguments, names it too
    with pytest.raises(PermissionDenied):
        kit.registry.signoff(
            kit["validator-1"], model=MODEL, version=1, role="validator", approve=True, comment="2"
        )
    denied = [(e.actor, e.model, e.version, e.data["action"]) for e in _denied(kit)]
    assert denied == [("ds-1", MODEL, 1, "sign"), ("validator-1", MODEL, 1, "signoff")]
    trail = kit.registry.audit_log(kit["auditor-1"], model=MODEL)
    assert [(e.actor, e.version) for e in trail if e.type == "access.denied"] == [
        ("ds-1", 1),
        ("validator-1", 1),
    ]


def test_a_refused_policy_approval_names_no_model(kit: Any) -> None:
    from policies.loader import find_policy
    from policies.schema import Policy

    data = find_policy("credit-risk").canonical()
    data["version"] = 2
    compliance = kit["compliance-1"]
    kit.registry.propose_policy(compliance, Policy.model_validate(data))
    with pytest.raises(PermissionDenied):
        kit.registry.approve_policy(compliance, "credit-risk@2", comment="mine")
    [event] = _denied(kit)
    assert (event.actor, event.model, event.version) == ("compliance-1", None, None)
    assert event.data["action"] == "approve_policy"


@pytest.mark.parametrize(
    ("model", "version", "recorded"),
    [
        ("x" * 300, 1, (None, 1)),
        ("bad\nname", 1, (None, 1)),
        ("pd", 2**31, ("pd", None)),
        ("pd", 0, ("pd", None)),
        ("pd", True, ("pd", None)),
    ],
)
def test_a_refusal_records_only_a_valid_subject(
    sqlite_kit: Any, model: str, version: Any, recorded: tuple[Any, Any]
) -> None:
    """A refusal comes before the input is checked: a name or version the registry
    would refuse is not written to the ledger with it."""
    kit = sqlite_kit
    kit.people("auditor-1")
    with pytest.raises(PermissionDenied):
        kit.registry.promote(kit["auditor-1"], model, version, alias="champion")
    [event] = _denied(kit)
    assert (event.model, event.version) == recorded
