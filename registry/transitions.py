"""Lifecycle use cases after approval: promoting a version to an alias, and
suspending, reinstating or retiring it (each with a reason). Which move is
allowed from which status is the state machine of :mod:`registry.lifecycle`.
"""

from __future__ import annotations

from audits.events import EventType
from core.errors import InputError
from registry import reads
from registry.identity import Principal, check_name
from registry.lifecycle import Move, Status, require
from registry.projection import DatabaseView
from registry.recorder import Service
from registry.roles import Action


class Transitions(Service):
    def promote(self, actor: Principal, model: str, version: int, *, alias: str) -> None:
        rec = self.recorder
        rec.authorize(actor, Action.PROMOTE, model=model, version=version)
        check_name(alias, "alias")
        with rec.transaction() as conn:
            row = reads.version_row(conn, model, version)
            require(Move.PROMOTE, reads.status_of(row, rec.clock()), subject=f"{model} v{version}")
            previous = DatabaseView(conn).get("aliases", (model, alias))
            if previous is not None and previous["version"] == version:
                raise InputError(f"{model}@{alias} already points to v{version}")
            rec.record_event(
                conn,
                tag=EventType.ALIAS_SET,
                actor=actor.name,
                model=model,
                version=version,
                data={
                    "alias": alias,
                    "previous_version": previous["version"] if previous else None,
                    "artifact_digest": row["artifact_digest"],
                },
                index={"alias": alias, "status": Status.PROMOTED.value},
            )
        rec.notify(model, version)

    def suspend(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(actor, model, version, Move.SUSPEND, reason=reason)

    def reinstate(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(actor, model, version, Move.REINSTATE, reason=reason)

    def retire(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(actor, model, version, Move.RETIRE, reason=reason)

    def _change(
        self, actor: Principal, model: str, version: int, move: Move, *, reason: str
    ) -> None:
        action, tag, new_status = _CHANGES[move]
        rec = self.recorder
        rec.authorize(actor, action, model=model, version=version)
        if not reason.strip():
            raise InputError(f"{move} needs a reason: pass --reason")
        with rec.transaction() as conn:
            row = reads.version_row(conn, model, version)
            require(move, reads.status_of(row, rec.clock()), subject=f"{model} v{version}")
            rec.record_event(
                conn,
                tag=tag,
                actor=actor.name,
                model=model,
                version=version,
                data={"reason": reason.strip()},
                index={"status": new_status.value},
            )
        rec.notify(model, version)


# move -> (the action it needs, the event it records, the status it leaves)
_CHANGES = {
    Move.SUSPEND: (Action.SUSPEND, EventType.VERSION_SUSPENDED, Status.SUSPENDED),
    Move.REINSTATE: (Action.REINSTATE, EventType.VERSION_REINSTATED, Status.APPROVED),
    Move.RETIRE: (Action.RETIRE, EventType.VERSION_RETIRED, Status.RETIRED),
}
