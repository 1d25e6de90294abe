"""What several domain services read inside their transactions: a version's row
and status, the policy it is judged by, its path (submitter and sign-offs), a
principal's seat, and the policy in force for a reference. Reads only: every
function takes the open connection (and the ledger where events are read).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from core.errors import NotFoundError
from policies.loader import all_policies
from policies.schema import Policy, PolicyError
from registry.history import VersionHistory
from registry.identity import Principal
from registry.lifecycle import Status, effective_status
from registry.projection import DatabaseView
from registry.rules import Seat, seat_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from audits.ledger import Ledger


def version_row(conn: Connection, model: str, version: int) -> dict[str, Any]:
    """The version's projection row; NotFoundError naming the model or the version."""
    view = DatabaseView(conn)
    row = view.get("versions", (model, version))
    if row is None:
        if view.get("models", (model,)) is None:
            raise NotFoundError(f"no model '{model}'; see `govreg versions list`")
        raise NotFoundError(f"model '{model}' has no version {version}")
    return row


def status_of(row: dict[str, Any], now: datetime) -> Status:
    """The version's status as served at ``now`` (past its revalidation date: expired)."""
    return effective_status(row["status"], row["revalidate_by"], now)


def submission(conn: Connection, ledger: Ledger, model: str, version: int) -> dict[str, Any]:
    """The decrypted payload of the version's ``version.submitted`` event."""
    version_row(conn, model, version)
    for event in ledger.events(
        conn, model=model, version=version, types=[EventType.VERSION_SUBMITTED]
    ):
        return event.data
    raise NotFoundError(f"{model} v{version} has no submission event")


def recorded_policy(conn: Connection, ledger: Ledger, model: str, version: int) -> Policy:
    """The policy the version is judged by now (submission or re-evaluation)."""
    history = VersionHistory.from_events(
        ledger.events(
            conn,
            model=model,
            version=version,
            types=[EventType.VERSION_SUBMITTED, EventType.EVALUATION_STARTED],
        )
    )
    document = history.policy_document
    if history.submitted is None or document is None:
        raise NotFoundError(f"{model} v{version} has no submission event")
    return Policy.model_validate(document)


def path(
    conn: Connection, ledger: Ledger, model: str, version: int
) -> tuple[Seat, list[dict[str, Any]]]:
    """The version's submitter seat and its sign-offs (``principal`` plus the
    event's data), oldest first, from the ledger events the serving loader
    reads too: both count persons from the same recorded evidence."""
    submitter: Seat | None = None
    signoffs: list[dict[str, Any]] = []
    for event in ledger.events(
        conn,
        model=model,
        version=version,
        types=[EventType.VERSION_SUBMITTED, EventType.SIGNOFF_RECORDED],
    ):
        if event.type == EventType.VERSION_SUBMITTED:
            submitter = seat_of(event.actor, event.data)
        else:
            signoffs.append({"principal": event.actor, **event.data})
    if submitter is None:
        raise NotFoundError(f"{model} v{version} has no submission event")
    return submitter, signoffs


def _person_of(view: DatabaseView, principal_name: str) -> str:
    """The person behind a principal name; a name no principal has (``govreg-init``)
    stands for itself."""
    row = view.get("principals", (principal_name,))
    return str(row["person"]) if row is not None else principal_name


def seat(conn: Connection, principal: Principal) -> Seat:
    """``principal``'s seat on a version's path: its person, and the persons who
    created its principal record and its person record (what creator
    independence compares). A principal not in the table (OpenID Connect) has
    its token's person and no creators: the identity provider vouches for it."""
    view = DatabaseView(conn)
    row = view.get("principals", (principal.name,))
    if row is None:
        return Seat(principal.name, principal.person_id)
    creators = {_person_of(view, row["created_by"])}
    person = view.get("persons", (row["person"],))
    if person is not None:
        creators.add(_person_of(view, person["created_by"]))
    return Seat(principal.name, row["person"], frozenset(creators))


def adopted_policy(conn: Connection, ref: str) -> Policy:
    """The policy in force for ``id`` (its newest adopted version) or ``id@version``.

    The policies shipped with govreg (``policies/*.yaml``) are in force as
    shipped; every other policy or version takes effect only when a
    compliance officer has approved it in the ledger.
    """
    wanted, _, number = ref.partition("@")
    rows = DatabaseView(conn).where("policies", id=wanted)
    candidates = [p for p in all_policies() if p.id == wanted] + [
        Policy.model_validate(json.loads(r["canonical"])) for r in rows if r["status"] == "adopted"
    ]
    if number:
        candidates = [p for p in candidates if str(p.version) == number]
    if not candidates:
        waiting = [r for r in rows if not number or str(r["version"]) == number]
        if waiting:
            row = max(waiting, key=lambda r: r["version"])
            raise PolicyError(
                f"policy {wanted}@{row['version']} is not adopted: it was proposed by "
                f"'{row['proposed_by']}' and waits for a compliance officer "
                f"(govreg policies approve {wanted}@{row['version']})"
            )
        raise PolicyError(
            f"no policy '{ref}' is adopted; propose it with `govreg policies propose FILE`"
        )
    return max(candidates, key=lambda p: p.version)


def next_policy_version(conn: Connection, policy: Policy) -> int:
    """The first version of ``policy.id`` neither shipped nor proposed yet."""
    taken = [p.version for p in all_policies() if p.id == policy.id]
    taken += [r["version"] for r in DatabaseView(conn).where("policies", id=policy.id)]
    return max([policy.version, *taken]) + 1
