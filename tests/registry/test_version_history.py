"""VersionHistory.from_events: the one reading of a version's events that the
services, the serving loader, evidence collection and the bundle verifier share."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from audits.records import RecordedEvent
from registry.history import VersionHistory


def _event(seq: int, kind: str, index: dict[str, Any], data: Any = None) -> RecordedEvent:
    return RecordedEvent(seq, kind, "someone", index, data or {})


POLICY_1 = {"id": "credit-risk", "version": 1}
POLICY_2 = {"id": "credit-risk", "version": 2}
EVENTS = [
    _event(
        1, "version.submitted", {"status": "submitted", "policy_digest": "d1"}, {"policy": POLICY_1}
    ),
    _event(2, "evaluation.started", {"evaluation": 1, "status": "evaluating"}),
    _event(3, "gate.evaluated", {"evaluation": 1, "gate_id": "performance", "result_digest": "r1"}),
    _event(4, "gate.evaluated", {"evaluation": 1, "gate_id": "bias", "result_digest": "r2"}),
    _event(5, "evaluation.completed", {"evaluation": 1, "status": "awaiting_signoff"}),
    _event(6, "signoff.recorded", {"role": "validator", "status": "awaiting_signoff"}),
    # a re-evaluation under policy 2 that has started but not completed
    _event(
        7,
        "evaluation.started",
        {"evaluation": 2, "status": "evaluating", "policy_digest": "d2"},
        {"policy": POLICY_2},
    ),
    _event(8, "gate.evaluated", {"evaluation": 2, "gate_id": "performance", "result_digest": "r3"}),
]


def test_the_policy_in_force_is_the_last_one_recorded_and_the_gates_the_last_completed() -> None:
    history = VersionHistory.from_events(reversed(EVENTS))  # any order: by seq
    assert history.submitted is EVENTS[0]
    assert history.status == "evaluating"
    assert (history.policy_event, history.policy_digest) == (EVENTS[6], "d2")
    assert history.policy_document == POLICY_2
    assert history.completed is EVENTS[4]
    assert history.evaluation == 1
    assert history.gates == {"performance": EVENTS[2], "bias": EVENTS[3]}
    assert history.signoffs == (EVENTS[5],)
    assert history.approval is None


def test_an_approval_and_a_suspension_set_the_standing() -> None:
    approved = _event(9, "version.approved", {"status": "approved", "evidence_digest": "e"})
    suspended = _event(10, "version.suspended", {"status": "suspended"})
    history = VersionHistory.from_events([*EVENTS[:6], approved, suspended])
    assert (history.status, history.approval) == ("suspended", approved)
    assert (history.policy_digest, history.policy_document) == ("d1", POLICY_1)


def test_without_the_payloads_the_history_is_the_same_but_the_documents() -> None:
    bare = [RecordedEvent(e.seq, e.type, e.actor, e.index) for e in EVENTS]
    history = VersionHistory.from_events(bare)
    assert (history.policy_digest, history.evaluation, sorted(history.gates)) == (
        "d2",
        1,
        ["bias", "performance"],
    )
    assert history.policy_document is None


def test_no_events_is_a_version_never_submitted() -> None:
    history = VersionHistory.from_events([])
    assert (history.submitted, history.status, history.policy_digest, history.evaluation) == (
        None,
        "submitted",
        None,
        None,
    )
    assert history.gates == {}


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
kinds = st.sampled_from(
    ["version.submitted", "evaluation.started", "evaluation.completed", "gate.evaluated",
     "signoff.recorded", "version.approved", "other"]
)  # fmt: skip
index = st.dictionaries(
    st.sampled_from(["status", "evaluation", "gate_id", "policy_digest", "x"]), values, max_size=5
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(kinds, index, st.one_of(st.none(), index)), max_size=12))
def test_any_indexes_and_payloads_give_a_history_without_raising(events: list[Any]) -> None:
    recorded = [_event(n, kind, i, data) for n, (kind, i, data) in enumerate(events, start=1)]
    history = VersionHistory.from_events(recorded)
    assert isinstance(history.status, str)
    assert history.policy_digest is None or isinstance(history.policy_digest, str)
    assert all(e.type == "gate.evaluated" for e in history.gates.values())
