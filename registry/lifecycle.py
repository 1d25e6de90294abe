"""A version's life (ARCHITECTURE.md):

    submitted -> evaluating -> gates_failed (terminal for this version)
                            -> awaiting_signoff -> rejected (terminal)
                                                -> approved -> promoted -> suspended <-> promoted
                                                                        -> retired
    approved/promoted past its revalidation date -> expired (derived, never served)

``expired`` is not stored: time passes without events, so it is computed when
a version is read.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from core.clock import parse
from core.errors import TransitionError


class Status(StrEnum):
    SUBMITTED = "submitted"
    EVALUATING = "evaluating"
    GATES_FAILED = "gates_failed"
    AWAITING_SIGNOFF = "awaiting_signoff"
    REJECTED = "rejected"
    APPROVED = "approved"
    PROMOTED = "promoted"
    SUSPENDED = "suspended"
    RETIRED = "retired"
    EXPIRED = "expired"


class Move(StrEnum):
    EVALUATE = "evaluate"
    COMPLETE_EVALUATION = "complete evaluation"
    SIGN = "sign"
    APPROVE = "approve"
    REJECT = "reject"
    PROMOTE = "promote"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    RETIRE = "retire"


S = Status
ALLOWED: dict[Move, frozenset[Status]] = {
    # evaluating: an evaluation that was interrupted is run again;
    # awaiting_signoff: re-evaluation (e.g. under a newer policy) replaces the
    # evidence, so earlier sign-offs stop counting.
    Move.EVALUATE: frozenset({S.SUBMITTED, S.EVALUATING, S.AWAITING_SIGNOFF}),
    Move.COMPLETE_EVALUATION: frozenset({S.EVALUATING}),
    Move.SIGN: frozenset({S.AWAITING_SIGNOFF}),
    Move.APPROVE: frozenset({S.AWAITING_SIGNOFF}),
    Move.REJECT: frozenset({S.AWAITING_SIGNOFF}),
    Move.PROMOTE: frozenset({S.APPROVED, S.PROMOTED}),
    Move.SUSPEND: frozenset({S.APPROVED, S.PROMOTED, S.EXPIRED}),
    Move.REINSTATE: frozenset({S.SUSPENDED}),
    Move.RETIRE: frozenset(
        {
            S.SUBMITTED,
            S.GATES_FAILED,
            S.AWAITING_SIGNOFF,
            S.REJECTED,
            S.APPROVED,
            S.PROMOTED,
            S.SUSPENDED,
            S.EXPIRED,
        }
    ),
}


def effective_status(stored: str, revalidate_by: str | None, now: datetime) -> Status:
    status = Status(stored)
    if status in (S.APPROVED, S.PROMOTED) and revalidate_by and parse(revalidate_by) <= now:
        return S.EXPIRED
    return status


def require(move: Move, status: Status, *, subject: str) -> None:
    """Refuse an illegal transition with a message that says what is allowed."""
    if status not in ALLOWED[move]:
        allowed = ", ".join(sorted(ALLOWED[move]))
        raise TransitionError(
            f"cannot {move} {subject}: it is {status}; {move} needs one of: {allowed}"
        )
