"""Sign-offs count persons, not principal names (issue 12, finding 3): one person
holds one seat on a version's path, and an admin who holds a seat cannot mint the
others. Each refusal names the person and is recorded once."""

from __future__ import annotations

from typing import Any

import pytest
from govreg_kit import MODEL, passing_results

from core.errors import InputError, NotFoundError, PermissionDenied


def _principal(kit: Any, name: str, role: str, person: str, *, by: Any = None) -> Any:
    _made, key = kit.registry.create_principal(by or kit.admin, name, role, person=person)
    return kit.registry.authenticate(key)


def _evaluated_by(kit: Any, ds: Any) -> int:
    reg = kit.registry
    version: int = reg.submit(
        ds,
        MODEL,
        artifact=kit.files.model,
        train=kit.files.train_csv,
        validation=kit.files.validation_parquet,
        target="default",
        protected=["sex", "age_band"],
    )
    number = reg.start_evaluation(ds, MODEL, version)
    reg.evaluations.record_evaluation(ds, MODEL, version, number, passing_results())
    return version


def _sign(kit: Any, who: Any, version: int = 1) -> Any:
    return kit.registry.signoff(who, MODEL, version, role=who.role, approve=True, comment="ok")


def test_one_admin_minting_a_principal_per_role_cannot_approve_alone(kit: Any) -> None:
    """The pen test's admin made one principal per role for one human: the first
    sign-off is already the submitter's person, refused and recorded."""
    people = {
        role: _principal(kit, f"{role}-x", role, "admin")
        for role in ("data_scientist", "validator", "compliance_officer", "business_owner")
    }
    _evaluated_by(kit, people["data_scientist"])
    denied = len(kit.events(types=["access.denied"]))
    for role in ("validator", "compliance_officer", "business_owner"):
        with pytest.raises(PermissionDenied) as caught:
            _sign(kit, people[role])
        assert str(caught.value) == (
            f"'{role}-x' may not sign pd v1: person 'admin' submitted this version (as "
            f"'data_scientist-x') and may not sign it (as '{role}-x') (segregation of duties)"
        )
    assert len(kit.events(types=["access.denied"])) == denied + 3
    assert kit.row()["status"] == "awaiting_signoff"
    assert kit.rows("signoffs") == []
    kit.verify()


def test_one_person_with_two_principals_signs_once_and_never_their_own(kit: Any) -> None:
    kit.registry.create_person(kit.admin, "alice", display="risk analyst")
    val = _principal(kit, "val-alice", "validator", "alice")
    co = _principal(kit, "co-alice", "compliance_officer", "alice")
    ds = _principal(kit, "ds-alice", "data_scientist", "alice")
    kit.evaluated()  # ds-1 submits v1
    assert _sign(kit, val) == "awaiting_signoff"
    with pytest.raises(PermissionDenied) as caught:
        _sign(kit, co)
    assert str(caught.value) == (
        "'co-alice' may not sign pd v1: person 'alice' has already signed this version (as "
        "'val-alice'); each sign-off needs a distinct person (segregation of duties)"
    )
    [event] = kit.events(types=["access.denied"])[-1:]
    assert (event.actor, event.data["action"], event.version) == ("co-alice", "signoff", 1)
    assert [r["person"] for r in kit.rows("signoffs")] == ["alice"]
    # alice's own submission: her validator principal may not sign it
    version = _evaluated_by(kit, ds)
    with pytest.raises(PermissionDenied, match="person 'alice' submitted this version"):
        _sign(kit, val, version)
    shown = kit.registry.show_version(kit["auditor-1"], MODEL, version)
    assert shown["submitted_by_person"] == "alice"
    kit.verify()


def test_an_admin_who_signs_cannot_mint_the_other_signers(kit: Any) -> None:
    """Creator independence: alice is an admin and a validator; the compliance
    officer she mints for a made-up person does not count beside her."""
    reg = kit.registry
    reg.create_person(kit.admin, "alice", display="admin and validator")
    alice_admin = _principal(kit, "alice-admin", "admin", "alice")
    alice_val = _principal(kit, "alice-val", "validator", "alice")
    reg.create_person(alice_admin, "fake", display="made up")
    fake_co = _principal(kit, "co-fake", "compliance_officer", "fake", by=alice_admin)
    kit.evaluated()
    _sign(kit, alice_val)
    with pytest.raises(PermissionDenied) as caught:
        _sign(kit, fake_co)
    assert str(caught.value) == (
        "'co-fake' may not sign pd v1: principal 'co-fake' (person 'fake') was created by "
        "person 'alice', who has already signed this version (segregation of duties)"
    )
    # an independent compliance officer still can, and the version goes on
    _sign(kit, kit["compliance-1"])
    assert _sign(kit, kit["owner-1"]) == "approved"
    kit.verify()


def test_persons_are_recorded_with_their_creator_and_checked(kit: Any) -> None:
    reg = kit.registry
    made = reg.create_person(kit.admin, "p-100", display="Credit risk validator")
    assert (made["id"], made["display"], made["created_by"]) == (
        "p-100",
        "Credit risk validator",
        "admin",
    )
    [event] = kit.events(types=["person.created"])[-1:]
    assert (event.actor, event.data) == (
        "admin",
        {"id": "p-100", "display": "Credit risk validator"},
    )
    with pytest.raises(InputError, match="person 'p-100' exists"):
        reg.create_person(kit.admin, "p-100", display="again")
    with pytest.raises(InputError, match="too like the existing person 'p-100'"):
        reg.create_person(kit.admin, "P-100", display="again")
    with pytest.raises(InputError, match="display"):
        reg.create_person(kit.admin, "p-101", display="a\nb")
    with pytest.raises(NotFoundError, match="no person 'nobody'"):
        reg.create_principal(kit.admin, "v-9", "validator", person="nobody")
    with pytest.raises(PermissionDenied):
        reg.create_person(kit["auditor-1"], "p-102", display="x")
    kit.verify()


def test_service_principals_are_scoped_to_their_models(kit: Any) -> None:
    from registry.roles import Action

    reg = kit.registry
    with pytest.raises(InputError, match="--models scopes a service principal"):
        reg.create_principal(kit.admin, "v-9", "validator", person="admin", models=["pd"])
    _made, key = reg.create_principal(kit.admin, "svc-pd", "service", person="admin", models=["pd"])
    svc = reg.authenticate(key)
    assert svc.models == ("pd",)
    reg.authorize_model(svc, Action.SCORE, "pd")
    with pytest.raises(PermissionDenied) as caught:
        reg.authorize_model(svc, Action.SCORE, "other")
    assert str(caught.value) == (
        "'svc-pd' (service) is scoped to the models pd and may not score 'other'"
    )
    [event] = kit.events(types=["access.denied"])[-1:]
    assert (event.actor, event.model, event.data["action"]) == ("svc-pd", "other", "score")
    kit.verify()
