"""Sign-offs: a person of a role the version's policy asks for signs (or
rejects) its current evidence digest, independent of the submitter and of the
other signers; the last required sign-off approves the version in the same
transaction, with its revalidation date.
"""

from __future__ import annotations

from datetime import timedelta

from audits.events import EventType, NewEvent
from core.clock import isoformat
from core.errors import InputError, PermissionDenied
from registry import reads
from registry.identity import Principal
from registry.lifecycle import Move, Status, require
from registry.recorder import Service, records_refusals
from registry.roles import Action
from registry.rules import missing_signoffs, seat_conflict, seat_of, signers_by_role


class Signoffs(Service):
    @records_refusals()
    def signoff(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        role: str,
        approve: bool,
        comment: str,
    ) -> Status:
        """Record a sign-off; the last required one approves in the same transaction."""
        rec = self.recorder
        rec.authorize(actor, Action.SIGN, model=model, version=version)
        if role != actor.role:
            raise PermissionDenied(
                f"'{actor.name}' holds the role {actor.role} and cannot sign as {role}"
            )
        comment = comment.strip()
        if not approve and not comment:
            raise InputError("a rejection needs a reason: pass --comment")
        with rec.transaction() as conn:
            row = reads.version_row(conn, model, version)
            subject = f"{model} v{version}"
            require(Move.SIGN, reads.status_of(row, rec.clock()), subject=subject)
            policy = reads.recorded_policy(conn, rec.ledger, model, version)
            required = {req.role: req.count for req in policy.signoffs.required}
            if role not in required:
                raise PermissionDenied(
                    f"policy {policy.ref} does not ask for a {role} sign-off; "
                    f"it asks for {', '.join(required)}"
                )
            submitter, signed = reads.path(conn, rec.ledger, model, version)
            current = [
                s
                for s in signed
                if s["evidence_digest"] == row["evidence_digest"] and s["decision"] == "approve"
            ]
            counted = signers_by_role(current, evidence=row["evidence_digest"], submitter=submitter)
            seat = reads.seat(conn, actor)
            holders = [
                seat_of(str(s["principal"]), s)
                for s in current
                if s["principal"] in {p for ps in counted.values() for p in ps}
            ]
            conflict = seat_conflict(seat, submitter, holders)
            if conflict is not None:
                raise PermissionDenied(
                    f"'{actor.name}' may not sign {subject}: {conflict} (segregation of duties)"
                )
            same_role = [s for s in current if s["role"] == role]
            if approve and len(same_role) >= required[role]:
                raise InputError(
                    f"{subject} already has the {required[role]} {role} sign-off(s) its "
                    "policy asks for"
                )
            decision = "approve" if approve else "reject"
            events = [
                NewEvent(
                    type=EventType.SIGNOFF_RECORDED,
                    actor=actor.name,
                    model=model,
                    version=version,
                    data={
                        "role": role,
                        "decision": decision,
                        "evidence_digest": row["evidence_digest"],
                        "comment": comment,
                        "person": seat.person,
                        "creators": sorted(seat.creators),
                    },
                    index={
                        "role": role,
                        "decision": decision,
                        "evidence_digest": row["evidence_digest"],
                    },
                )
            ]
            status = Status.AWAITING_SIGNOFF
            if not approve:
                status = Status.REJECTED
                events.append(
                    NewEvent(
                        type=EventType.VERSION_REJECTED,
                        actor=actor.name,
                        model=model,
                        version=version,
                        data={"reason": comment},
                        index={"status": status.value},
                    )
                )
            else:
                signoffs = [*current, {"principal": actor.name, **events[0].data}]
                counted = signers_by_role(
                    signoffs, evidence=row["evidence_digest"], submitter=submitter
                )
                if not missing_signoffs(policy, counted):
                    status = Status.APPROVED
                    revalidate_by = isoformat(
                        rec.clock() + timedelta(days=policy.revalidation_days)
                    )
                    events.append(
                        NewEvent(
                            type=EventType.VERSION_APPROVED,
                            actor=actor.name,
                            model=model,
                            version=version,
                            data={
                                "revalidate_by": revalidate_by,
                                "evidence_digest": row["evidence_digest"],
                                "artifact_digest": row["artifact_digest"],
                                "signers": sorted(p for ps in counted.values() for p in ps),
                            },
                            index={
                                "status": status.value,
                                "artifact_digest": row["artifact_digest"],
                                "evidence_digest": row["evidence_digest"],
                                "revalidate_by": revalidate_by,
                            },
                        )
                    )
            rec.record(conn, events)
        if status == Status.APPROVED:
            rec.notify(model, version)
        return status
