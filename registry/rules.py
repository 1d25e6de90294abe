"""The approval rules as pure functions: which gates block, which sign-offs are
missing, and that a version decides at its policy's cutoff.

The service layer applies them when it records a submission, an evaluation,
a sign-off or shows a version (from its projection tables); the serving
loader applies the very same functions to the version's ledger events before
it serves a byte. One rule, two readers of the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from policies.schema import Policy

# "warned" is a warning (e.g. PSI between 0.10 and 0.25), not a failure;
# every other verdict short of "passed" blocks.
PASSING_VERDICTS = frozenset({"passed", "warned"})


def failing_gates(policy: Policy, results: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why the gate ``results`` (``gate_id``, ``verdict``, ``blocking``) fail ``policy``.

    Fail closed: no results fail; a result that blocks (by its own flag or
    by the policy) and did not pass fails; a blocking gate of the policy
    without a result fails. An empty list means every blocking gate passed.
    """
    policy_blocking = {spec.id: spec.blocking for spec in policy.gates}
    seen: set[str] = set()
    failed: list[str] = []
    for result in results:
        gate_id = str(result["gate_id"])
        seen.add(gate_id)
        blocking = bool(result["blocking"]) or policy_blocking.get(gate_id, False)
        if blocking and result["verdict"] not in PASSING_VERDICTS:
            failed.append(f"{gate_id} {result['verdict']}")
    if not seen:
        return ["no gate results (an empty evaluation fails closed)"]
    failed.extend(
        f"{gate_id} has no result"
        for gate_id, blocks in policy_blocking.items()
        if blocks and gate_id not in seen
    )
    return failed


def signers_by_role(
    signoffs: Iterable[Mapping[str, Any]], *, evidence: str, submitter: str
) -> dict[str, list[str]]:
    """The people whose approving sign-offs count, by role.

    ``signoffs`` (``principal``, ``role``, ``decision``, ``evidence_digest``)
    in the order they were recorded. A sign-off counts when it approves the
    current ``evidence``, is not the submitter's, and its person has not
    already counted (for this role or another).
    """
    counted: dict[str, list[str]] = {}
    people: set[str] = set()
    for s in signoffs:
        who = str(s["principal"])
        if (
            s["decision"] == "approve"
            and s["evidence_digest"] == evidence
            and who != submitter
            and who not in people
        ):
            people.add(who)
            counted.setdefault(str(s["role"]), []).append(who)
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
