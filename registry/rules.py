"""The approval rules as pure functions: which gates block, which sign-offs are
missing, and that a version decides at its policy's cutoff.

The service layer applies them when it records a submission, an evaluation,
a sign-off or shows a version (from its projection tables); the serving
loader applies the very same functions to the version's ledger events before
it serves a byte. One rule, two readers of the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from policies.schema import Policy

# "warned" is a warning (e.g. PSI between 0.10 and 0.25), not a failure;
# every other verdict short of "passed" blocks.
PASSING_VERDICTS = frozenset({"passed", "warned"})


def blocks(policy: Policy, result: Mapping[str, Any]) -> bool:
    """Whether a gate result blocks: by its own flag, or because the policy says its
    gate does (the recorded policy decides, not the caller's results)."""
    gate_id = str(result["gate_id"])
    return bool(result["blocking"]) or any(
        spec.blocking for spec in policy.gates if spec.id == gate_id
    )


def failing_gates(policy: Policy, results: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why the gate ``results`` (``gate_id``, ``verdict``, ``blocking``) fail ``policy``.

    Fail closed: no results fail; a result that blocks (by its own flag or
    by the policy) and did not pass fails; a blocking gate of the policy
    without a result fails. An empty list means every blocking gate passed.
    """
    seen: set[str] = set()
    failed: list[str] = []
    for result in results:
        gate_id = str(result["gate_id"])
        seen.add(gate_id)
        if blocks(policy, result) and result["verdict"] not in PASSING_VERDICTS:
            failed.append(f"{gate_id} {result['verdict']}")
    if not seen:
        return ["no gate results (an empty evaluation fails closed)"]
    failed.extend(
        f"{gate_id} has no result"
        for gate_id in (spec.id for spec in policy.gates if spec.blocking)
        if gate_id not in seen
    )
    return failed


@dataclass(frozen=True)
class Seat:
    """Who holds a place on a version's path (its submission or one sign-off).

    ``person`` is the human behind the principal; ``creators`` the persons who
    created the principal and its person record (empty for an OpenID Connect
    principal, whose person the identity provider vouches for, and for events
    recorded before persons existed).
    """

    principal: str
    person: str
    creators: frozenset[str] = frozenset()


def seat_of(actor: str, data: Mapping[str, Any]) -> Seat:
    """The seat an event's ``actor`` took, from the event's recorded ``person`` and
    ``creators``. Events recorded before persons existed name none: their person is
    the principal's own name (as the upgrade maps every earlier principal)."""
    return Seat(
        principal=actor,
        person=str(data.get("person") or actor),
        creators=frozenset(str(c) for c in data.get("creators") or ()),
    )


def seat_conflict(seat: Seat, submitter: Seat, counted: Iterable[Seat]) -> str | None:
    """Why ``seat`` may not count beside the ``submitter`` and the ``counted`` signers,
    or None. One person holds one seat on a version's path; and a person who holds a
    seat did not create the principal (or person record) of another seat, so an
    admin who also submits or signs cannot mint the other seats ("creator
    independence"). The sentence names the person and the reason."""
    if seat.person == submitter.person:
        return (
            f"person '{seat.person}' submitted this version (as '{submitter.principal}') "
            f"and may not sign it (as '{seat.principal}')"
        )
    if submitter.person in seat.creators:
        return (
            f"principal '{seat.principal}' (person '{seat.person}') was created by person "
            f"'{submitter.person}', who submitted this version"
        )
    if seat.person in submitter.creators:
        return (
            f"person '{seat.person}' created the principal '{submitter.principal}' that "
            "submitted this version"
        )
    for other in counted:
        if seat.person == other.person:
            return (
                f"person '{seat.person}' has already signed this version (as "
                f"'{other.principal}'); each sign-off needs a distinct person"
            )
        if other.person in seat.creators:
            return (
                f"principal '{seat.principal}' (person '{seat.person}') was created by person "
                f"'{other.person}', who has already signed this version"
            )
        if seat.person in other.creators:
            return (
                f"person '{seat.person}' created the principal '{other.principal}' that has "
                "already signed this version"
            )
    return None


def signers_by_role(
    signoffs: Iterable[Mapping[str, Any]], *, evidence: str, submitter: Seat
) -> dict[str, list[str]]:
    """The principals whose approving sign-offs count, by role.

    ``signoffs`` (``principal``, ``role``, ``decision``, ``evidence_digest`` and,
    when recorded, ``person`` and ``creators``) in the order they were recorded.
    A sign-off counts when it approves the current ``evidence`` and its seat has
    no :func:`seat_conflict` with the submitter and the sign-offs counted before
    it: sign-offs count distinct persons, never the submitter's.
    """
    counted: dict[str, list[str]] = {}
    seats: list[Seat] = []
    for s in signoffs:
        seat = seat_of(str(s["principal"]), s)
        if (
            s["decision"] == "approve"
            and s["evidence_digest"] == evidence
            and seat_conflict(seat, submitter, seats) is None
        ):
            seats.append(seat)
            counted.setdefault(str(s["role"]), []).append(seat.principal)
    return counted


def missing_signoffs(policy: Policy, counted: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """Each required role still short: ``role``, ``required``, ``have``, ``missing``."""
    return [
        {"role": req.role, "required": req.count, "have": have, "missing": req.count - have}
        for req in policy.signoffs.required
        if (have := len(counted.get(req.role, []))) < req.count
    ]


def check_cutoff(policy: Policy, given: str, *, next_version: int) -> None:
    """Refuse a submitted cutoff other than ``policy``'s ``decision_cutoff``.

    The cutoff decides who is declined, and with it the fairness verdict, so
    it is the policy's: another cutoff is another policy version, proposed and
    adopted like any policy change. A cutoff numerically equal to the policy's
    (``0.50`` for ``0.5``) is accepted, so scripts that pass it keep working.
    ``next_version`` is the policy version the refusal tells the user to propose.
    """
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(given)
    except InvalidOperation:
        raise InputError(f"--cutoff {_short(given)!r} is not a number") from None
    if not value.is_finite():
        raise InputError(f"--cutoff {_short(given)!r} is not a number")
    if not Decimal(0) < value < Decimal(1):
        raise InputError(f"--cutoff {_short(str(value))} must be strictly between 0 and 1")
    if value == policy.decision_cutoff:
        return
    cut = _short(str(value))
    new = f"{policy.id}@{next_version}"
    file = f"{policy.id}-v{next_version}.yaml"
    raise InputError(
        f"--cutoff {cut} differs from the decision_cutoff {policy.decision_cutoff} of "
        f"policy {policy.ref}, and the cutoff is the policy's. To decide at {cut}, write "
        f"{file}, a copy of {policy.ref} with version: {next_version} and decision_cutoff: "
        f"{cut}; propose it with `govreg policies propose {file}`, have a compliance "
        f"officer who did not propose it adopt it with `govreg policies approve {new} "
        f'--comment "..."`, then submit with --policy {new}'
    )


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
