"""The lifecycle: every legal transition, every illegal one refused with nothing written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import LIFECYCLE_EVENTS, MODEL, passing_results

from core.clock import parse, utcnow
from core.errors import InputError, PermissionDenied, TransitionError

# The rules, written out (not computed from registry.lifecycle) so a change shows here.
NEEDS = {
    "evaluate": "awaiting_signoff, evaluating, submitted",
    "complete evaluation": "evaluating",
    "sign": "awaiting_signoff",
    "promote": "approved, promoted",
    "suspend": "approved, expired, promoted",
    "reinstate": "suspended",
    "retire": (
        "approved, awaiting_signoff, expired, gates_failed, promoted, rejected, "
        "submitted, suspended"
    ),
}
LEGAL = {
    "submitted": {"evaluate", "retire"},
    "evaluating": {"evaluate", "complete evaluation"},
    "gates_failed": {"retire"},
    "awaiting_signoff": {"evaluate", "sign", "retire"},
    "rejected": {"retire"},
    "approved": {"promote", "suspend", "retire"},
    "promoted": {"promote", "suspend", "retire"},
    "suspended": {"reinstate", "retire"},
    "retired": set(),
    "expired": {"suspend", "retire"},
}
ONE_YEAR_ON = timedelta(days=366)
LENIENT = """\
id: lenient
version: 1
description: one blocking gate, one advisory
decision_cutoff: 0.5
revalidation_days: 365
gates:
  - id: performance
    kind: performance
    params: {min_auc: 0.7, min_ks: 0.2}
  - id: latency
    kind: latency
    blocking: false
    params: {max_p99_ms: 100}
signoffs:
  required:
    - role: validator
      count: 1
"""


def event_types(kit: Any, model: str = MODEL, version: int | None = None) -> list[str]:
    return [e.type for e in kit.events(model=model, version=version)]


def reach(kit: Any, state: str) -> Any:
    """Drive ``pd v1`` to ``state``; returns the registry to act with (a later clock
    for ``expired``)."""
    reg = kit.registry
    kit.people("ds-1", "validator-2", "compliance-2", "auditor-1")
    if state == "submitted":
        kit.submit()
    elif state == "evaluating":
        kit.submit()
        reg.start_evaluation(kit["ds-1"], MODEL, 1)
    elif state == "gates_failed":
        kit.evaluated(results=passing_results(fairness="failed"))
    elif state == "awaiting_signoff":
        kit.evaluated()
    elif state == "rejected":
        kit.evaluated()
        kit.sign("validator-1", approve=False)
    else:
        kit.approved()
        if state in ("promoted", "suspended", "retired"):
            reg.promote(kit["compliance-1"], MODEL, 1, alias="champion")
        if state == "suspended":
            reg.suspend(kit["compliance-1"], MODEL, 1, reason="drift")
        if state == "retired":
            reg.retire(kit["compliance-1"], MODEL, 1, reason="replaced")
        if state == "expired":
            return kit.registry_at(lambda: utcnow() + ONE_YEAR_ON)
    return reg


def attempt(kit: Any, reg: Any, move: str) -> None:
    """Try ``move`` on pd v1 as a principal allowed to make it."""
    if move == "evaluate":
        reg.start_evaluation(kit["ds-1"], MODEL, 1)
    elif move == "complete evaluation":
        evaluation = int(kit.row()["evaluation"])
        reg.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, evaluation, passing_results())
    elif move == "sign":
        reg.signoff(kit["validator-2"], MODEL, 1, role="validator", approve=True, comment="ok")
    elif move == "promote":
        reg.promote(kit["compliance-2"], MODEL, 1, alias="challenger")
    elif move in ("suspend", "reinstate", "retire"):
        getattr(reg, move)(kit["compliance-2"], MODEL, 1, reason="because")
    else:  # pragma: no cover - the table above names every move
        raise AssertionError(move)


@pytest.mark.parametrize("state", sorted(LEGAL))
def test_illegal_transitions_are_refused_and_write_nothing(kit: Any, state: str) -> None:
    reg = reach(kit, state)
    shown = reg.show_version(kit["auditor-1"], MODEL, 1)
    assert shown["status"] == state
    for move in sorted(set(NEEDS) - LEGAL[state]):
        before = kit.state()
        with pytest.raises(TransitionError) as caught:
            attempt(kit, reg, move)
        assert str(caught.value) == (
            f"cannot {move} {MODEL} v1: it is {state}; {move} needs one of: {NEEDS[move]}"
        )
        assert kit.state() == before, move
    assert reg.show_version(kit["auditor-1"], MODEL, 1)["status"] == state
    kit.verify()


def test_a_rejection_is_refused_outside_awaiting_signoff(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.submit()
    kit.people("validator-1")
    before = kit.state()
    with pytest.raises(TransitionError, match=r"^cannot sign pd v1: it is submitted; "):
        kit.sign("validator-1", approve=False)
    assert kit.state() == before


def test_the_whole_legal_life_of_a_version(kit: Any) -> None:
    reg = kit.registry
    auditor1 = kit["auditor-1"]

    def status() -> str:
        return str(reg.show_version(auditor1, MODEL, 1)["status"])

    assert kit.submit() == 1
    row = kit.row()
    assert row is not None
    assert (row["status"], row["submitted_by"], row["evaluation"]) == ("submitted", "ds-1", 0)
    assert event_types(kit) == ["model.registered", "version.submitted"]

    assert reg.start_evaluation(kit["ds-1"], MODEL, 1) == 1
    assert status() == "evaluating"
    assert kit.row()["evidence_digest"] is None

    assert reg.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, 1, passing_results()) == (
        "awaiting_signoff"
    )
    row = kit.row()
    assert row["status"] == "awaiting_signoff"
    assert len(row["evidence_digest"]) == 64
    gates = sorted(kit.rows("gate_results"), key=lambda g: g["seq"])
    assert [(g["gate_id"], g["verdict"], g["evaluation"]) for g in gates] == [
        ("performance", "passed", 1),
        ("fairness", "passed", 1),
        ("data-schema", "passed", 1),
        ("explainability", "passed", 1),
        ("stability", "passed", 1),
        ("latency", "passed", 1),
    ]

    assert kit.sign("validator-1") == "awaiting_signoff"
    assert kit.sign("compliance-1") == "awaiting_signoff"
    assert kit.sign("owner-1") == "approved"
    assert status() == "approved"

    reg.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    assert status() == "promoted"
    assert [(a["alias"], a["version"]) for a in kit.rows("aliases")] == [("champion", 1)]

    reg.suspend(kit["validator-1"], MODEL, 1, reason="score drift")
    assert status() == "suspended"
    assert kit.row()["status_reason"] == "score drift"
    assert [a["alias"] for a in kit.rows("aliases")] == ["champion"]

    reg.reinstate(kit["owner-1"], MODEL, 1, reason="drift explained")
    assert status() == "promoted"
    assert kit.row()["status_reason"] == "drift explained"

    reg.retire(kit["owner-1"], MODEL, 1, reason="replaced by v2")
    assert status() == "retired"
    assert kit.rows("aliases") == []
    assert event_types(kit) == LIFECYCLE_EVENTS
    report = kit.verify()
    assert report.size == kit.size()


def test_reinstating_a_version_without_an_alias_returns_it_to_approved(kit: Any) -> None:
    kit.approved()
    kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="incident")
    kit.registry.reinstate(kit["compliance-1"], MODEL, 1, reason="resolved")
    assert kit.row()["status"] == "approved"
    kit.verify()


def test_gates_failed_is_terminal_but_retirable(kit: Any) -> None:
    reach(kit, "gates_failed")
    row = kit.row()
    assert row["status"] == "gates_failed"
    assert row["status_reason"] == "fairness failed"
    kit.registry.retire(kit["compliance-1"], MODEL, 1, reason="cleanup")
    assert kit.row()["status"] == "retired"
    kit.verify()


def test_any_blocking_gate_short_of_passed_fails(kit: Any) -> None:
    results = passing_results(latency="error", stability="insufficient_data")
    kit.evaluated(results=results)
    assert kit.row()["status"] == "gates_failed"
    assert kit.row()["status_reason"] == "stability insufficient_data; latency error"
    kit.evaluated(results=passing_results(stability="failed"))
    assert kit.row(MODEL, 2)["status"] == "gates_failed"
    assert kit.row(MODEL, 2)["status_reason"] == "stability failed"
    kit.verify()


def test_a_warning_does_not_block(kit: Any) -> None:
    # e.g. PSI between the policy's warn (0.10) and fail (0.25) levels
    kit.evaluated(results=passing_results(stability="warned"))
    assert kit.row()["status"] == "awaiting_signoff"
    assert kit.row()["status_reason"] is None
    kit.verify()


def test_the_policy_not_the_results_says_which_gates_block(kit: Any) -> None:
    # A result that calls a blocking gate non-blocking does not make it so.
    relaxed = passing_results(latency="failed")
    relaxed[-1]["blocking"] = False
    kit.evaluated(results=relaxed)
    assert kit.row()["status"] == "gates_failed"
    assert kit.row()["status_reason"] == "latency failed"
    assert {g["gate_id"]: g["blocking"] for g in kit.rows("gate_results")}["latency"] is True
    # A blocking gate of the policy without a result fails closed.
    kit.evaluated(results=passing_results()[:4])
    row = kit.row(MODEL, 2)
    assert row["status"] == "gates_failed"
    assert row["status_reason"] == "stability has no result; latency has no result"
    kit.verify()


def test_a_non_blocking_gate_of_the_policy_does_not_stop_a_version(
    kit: Any, tmp_path: Path
) -> None:
    kit.adopt(LENIENT)
    kit.submit(policy_id="lenient")
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, 1)
    results = [passing_results()[0], passing_results(latency="failed")[-1]]
    results[1]["blocking"] = False
    assert kit.registry.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, number, results) == (
        "awaiting_signoff"
    )
    # Without the non-blocking gate's result it still passes; without the blocking one not.
    kit.submit(policy_id="lenient")
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, 2)
    status = kit.registry.evaluations.record_evaluation(kit["ds-1"], MODEL, 2, number, results[:1])
    assert status == "awaiting_signoff"
    kit.submit(policy_id="lenient")
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, 3)
    status = kit.registry.evaluations.record_evaluation(kit["ds-1"], MODEL, 3, number, results[1:])
    assert status == "gates_failed"
    assert kit.row(MODEL, 3)["status_reason"] == "performance has no result"
    kit.verify()


def test_an_empty_evaluation_fails_closed(kit: Any) -> None:
    kit.evaluated(results=[])
    row = kit.row()
    assert row["status"] == "gates_failed"
    assert row["status_reason"] == "no gate results (an empty evaluation fails closed)"
    kit.verify()


def test_rejected_is_terminal(kit: Any) -> None:
    kit.evaluated()
    assert kit.sign("validator-1", approve=False) == "rejected"
    row = kit.row()
    assert row["status"] == "rejected"
    assert row["status_reason"] == "validator-1 looked at it"
    types = event_types(kit)
    assert types[-2:] == ["signoff.recorded", "version.rejected"]
    kit.people("compliance-1")
    before = kit.state()
    with pytest.raises(TransitionError, match="it is rejected"):
        kit.sign("compliance-1")
    assert kit.state() == before
    kit.verify()


def test_a_second_evaluation_supersedes_the_first(kit: Any) -> None:
    reg = kit.registry
    kit.submit()
    assert reg.start_evaluation(kit["ds-1"], MODEL, 1) == 1
    assert reg.start_evaluation(kit["validator-1"], MODEL, 1) == 2
    before = kit.state()
    with pytest.raises(InputError) as caught:
        reg.evaluations.record_evaluation(kit["ds-1"], MODEL, 1, 1, passing_results())
    assert str(caught.value) == "pd v1 is on evaluation 2, not 1"
    assert kit.state() == before
    assert reg.evaluations.record_evaluation(
        kit["validator-1"], MODEL, 1, 2, passing_results()
    ) == ("awaiting_signoff")
    assert {g["evaluation"] for g in kit.rows("gate_results")} == {2}
    kit.verify()


def test_a_data_scientist_evaluates_only_their_own_versions(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.submit()
    kit.people("ds-2", "compliance-1")
    before = kit.state()
    with pytest.raises(PermissionDenied) as caught:
        kit.registry.start_evaluation(kit["ds-2"], MODEL, 1)
    assert str(caught.value) == (
        "'ds-2' may evaluate only their own versions; pd v1 was submitted by 'ds-1'"
    )
    with pytest.raises(PermissionDenied) as caught:
        kit.registry.start_evaluation(kit["compliance-1"], MODEL, 1)
    assert str(caught.value) == "'compliance-1' (compliance_officer) may not evaluate"
    assert kit.state() == before
    # Nor may another data scientist complete an evaluation the submitter started.
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, 1)
    before = kit.state()
    with pytest.raises(PermissionDenied) as caught:
        kit.registry.evaluations.record_evaluation(kit["ds-2"], MODEL, 1, number, passing_results())
    assert str(caught.value) == (
        "'ds-2' may evaluate only their own versions; pd v1 was submitted by 'ds-1'"
    )
    assert kit.state() == before
    assert kit.registry.evaluations.record_evaluation(
        kit["validator-1"], MODEL, 1, number, passing_results()
    ) == ("awaiting_signoff")


def test_moving_an_alias_returns_the_old_holder_to_approved(kit: Any) -> None:
    reg = kit.registry
    assert kit.approved() == 1
    assert kit.approved() == 2
    reg.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    reg.promote(kit["compliance-1"], MODEL, 2, alias="champion")
    assert kit.row(MODEL, 1)["status"] == "approved"
    assert kit.row(MODEL, 2)["status"] == "promoted"
    assert [(a["alias"], a["version"]) for a in kit.rows("aliases")] == [("champion", 2)]
    moved = kit.events(model=MODEL, version=2, types=["alias.set"])
    assert [e.data["previous_version"] for e in moved] == [1]
    kit.verify()


def test_an_old_holder_keeps_promoted_while_it_holds_another_alias(kit: Any) -> None:
    reg = kit.registry
    kit.approved()
    kit.approved()
    reg.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    reg.promote(kit["owner-1"], MODEL, 1, alias="stable")
    reg.promote(kit["compliance-1"], MODEL, 2, alias="champion")
    assert kit.row(MODEL, 1)["status"] == "promoted"
    assert sorted((a["alias"], a["version"]) for a in kit.rows("aliases")) == [
        ("champion", 2),
        ("stable", 1),
    ]
    reg.retire(kit["compliance-1"], MODEL, 1, reason="old")
    assert [(a["alias"], a["version"]) for a in kit.rows("aliases")] == [("champion", 2)]
    assert kit.row(MODEL, 2)["status"] == "promoted"
    kit.verify()


def test_promoting_to_the_alias_it_already_holds_is_refused(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    before = kit.state()
    with pytest.raises(InputError) as caught:
        kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    assert str(caught.value) == "pd@champion already points to v1"
    assert kit.state() == before


def test_retire_removes_every_alias_of_the_version(kit: Any) -> None:
    reg = kit.registry
    kit.approved()
    reg.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    reg.promote(kit["compliance-1"], MODEL, 1, alias="stable")
    assert len(kit.rows("aliases")) == 2
    reg.retire(kit["owner-1"], MODEL, 1, reason="end of life")
    assert kit.rows("aliases") == []
    assert kit.row()["status"] == "retired"
    kit.verify()


def test_state_changes_need_a_reason_and_the_right_role(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    reg = kit.registry
    kit.approved()
    before = kit.state()
    with pytest.raises(InputError) as caught:
        reg.suspend(kit["compliance-1"], MODEL, 1, reason="   ")
    assert str(caught.value) == "suspend needs a reason: pass --reason"
    with pytest.raises(PermissionDenied) as caught:
        reg.promote(kit["validator-1"], MODEL, 1, alias="champion")
    assert str(caught.value) == "'validator-1' (validator) may not promote"
    with pytest.raises(PermissionDenied) as caught:
        reg.retire(kit["ds-1"], MODEL, 1, reason="mine")
    assert str(caught.value) == "'ds-1' (data_scientist) may not retire"
    with pytest.raises(PermissionDenied) as caught:
        reg.reinstate(kit["validator-1"], MODEL, 1, reason="x")
    assert str(caught.value) == "'validator-1' (validator) may not reinstate"
    with pytest.raises(PermissionDenied) as caught:
        reg.promote(kit["admin"], MODEL, 1, alias="champion")
    assert str(caught.value) == "'admin' (admin) may not promote"
    assert kit.state() == before


def test_expired_is_derived_when_the_revalidation_date_passes(kit: Any) -> None:
    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    row = kit.row()
    revalidate_by = parse(row["revalidate_by"])
    auditor1 = kit["auditor-1"]

    just_before = kit.registry_at(lambda: revalidate_by - timedelta(seconds=1))
    assert just_before.show_version(auditor1, MODEL, 1)["status"] == "promoted"
    at = kit.registry_at(lambda: revalidate_by)
    later = kit.registry_at(lambda: revalidate_by + timedelta(days=1))
    for reg in (at, later):
        shown = reg.show_version(auditor1, MODEL, 1)
        assert (shown["status"], shown["stored_status"]) == ("expired", "promoted")
        assert [v["status"] for v in reg.list_versions(auditor1, MODEL)] == ["expired"]
    # Nothing is written for time passing.
    assert kit.row() == row

    before = kit.state()
    with pytest.raises(TransitionError) as caught:
        later.promote(kit["compliance-1"], MODEL, 1, alias="challenger")
    assert str(caught.value) == (
        "cannot promote pd v1: it is expired; promote needs one of: approved, promoted"
    )
    assert kit.state() == before

    later.suspend(kit["compliance-1"], MODEL, 1, reason="overdue for revalidation")
    assert later.show_version(auditor1, MODEL, 1)["status"] == "suspended"
    later.reinstate(kit["compliance-1"], MODEL, 1, reason="back")
    # Reinstating does not renew the approval: still past its date.
    assert later.show_version(auditor1, MODEL, 1)["status"] == "expired"
    assert kit.registry.show_version(auditor1, MODEL, 1)["status"] == "promoted"
    later.retire(kit["compliance-1"], MODEL, 1, reason="not revalidated")
    assert later.show_version(auditor1, MODEL, 1)["status"] == "retired"
    assert kit.rows("aliases") == []
    kit.verify()


def test_reading_an_unknown_model_or_version(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    from core.errors import NotFoundError

    kit.submit()
    with pytest.raises(NotFoundError) as caught:
        kit.registry.show_version(kit["auditor-1"], "nope", 1)
    assert str(caught.value) == "no model 'nope'; see `govreg versions list`"
    with pytest.raises(NotFoundError) as caught:
        kit.registry.show_version(kit["auditor-1"], MODEL, 9)
    assert str(caught.value) == "model 'pd' has no version 9"
    kit.people("compliance-1")
    before = kit.state()
    with pytest.raises(NotFoundError):
        kit.registry.suspend(kit["compliance-1"], MODEL, 9, reason="x")
    assert kit.state() == before
