"""The registry tables as a function of the ledger.

:func:`apply` is the one reducer: use cases call it on a database view inside
the transaction that appends the event, and verification calls it on an
in-memory view while replaying the ledger, then compares the two. A table
edited behind the ledger's back therefore fails verification.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from audits.events import Event, EventType
from registry.lifecycle import Status
from registry.tables import PROJECTION_TABLES

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

Row = dict[str, Any]


def _table(name: str) -> Table:
    return PROJECTION_TABLES[name].__table__  # type: ignore[attr-defined,no-any-return]


def primary_key(name: str) -> tuple[str, ...]:
    return tuple(col.name for col in _table(name).primary_key.columns)


class View(Protocol):
    def get(self, table: str, key: tuple[Any, ...]) -> Row | None: ...
    def put(self, table: str, row: Row) -> None: ...
    def delete(self, table: str, key: tuple[Any, ...]) -> None: ...
    def where(self, table: str, **equals: Any) -> list[Row]: ...


class MemoryView:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Row]] = {n: {} for n in PROJECTION_TABLES}

    def get(self, table: str, key: tuple[Any, ...]) -> Row | None:
        row = self.tables[table].get(key)
        return dict(row) if row is not None else None

    def put(self, table: str, row: Row) -> None:
        key = tuple(row[c] for c in primary_key(table))
        self.tables[table][key] = dict(row)

    def delete(self, table: str, key: tuple[Any, ...]) -> None:
        self.tables[table].pop(key, None)

    def where(self, table: str, **equals: Any) -> list[Row]:
        return [
            dict(r)
            for r in self.tables[table].values()
            if all(r.get(k) == v for k, v in equals.items())
        ]


class DatabaseView:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _pk_clause(self, table: str, key: tuple[Any, ...]) -> Any:
        from sqlalchemy import and_

        t = _table(table)
        return and_(*(t.c[c] == v for c, v in zip(primary_key(table), key, strict=True)))

    def get(self, table: str, key: tuple[Any, ...]) -> Row | None:
        from sqlalchemy import select

        row = self.conn.execute(select(_table(table)).where(self._pk_clause(table, key))).first()
        return dict(row._mapping) if row is not None else None

    def put(self, table: str, row: Row) -> None:
        from sqlalchemy import insert, update

        t = _table(table)
        key = tuple(row[c] for c in primary_key(table))
        result = self.conn.execute(update(t).where(self._pk_clause(table, key)).values(**row))
        if result.rowcount == 0:
            self.conn.execute(insert(t).values(**row))

    def delete(self, table: str, key: tuple[Any, ...]) -> None:
        from sqlalchemy import delete

        self.conn.execute(delete(_table(table)).where(self._pk_clause(table, key)))

    def where(self, table: str, **equals: Any) -> list[Row]:
        from sqlalchemy import select

        t = _table(table)
        stmt = select(t)
        for column, value in equals.items():
            stmt = stmt.where(t.c[column] == value)
        return [dict(r._mapping) for r in self.conn.execute(stmt)]

    def dump(self) -> Iterator[tuple[str, tuple[Any, ...], Row]]:
        from sqlalchemy import select

        for name in PROJECTION_TABLES:
            for r in self.conn.execute(select(_table(name))):
                row = dict(r._mapping)
                yield name, tuple(row[c] for c in primary_key(name)), row


PROJECTED_EVENTS: frozenset[str] = frozenset(
    {
        EventType.POLICY_PROPOSED,
        EventType.POLICY_APPROVED,
        EventType.PERSON_CREATED,
        EventType.PRINCIPAL_CREATED,
        EventType.PRINCIPAL_REVOKED,
        EventType.MODEL_REGISTERED,
        EventType.VERSION_SUBMITTED,
        EventType.EVALUATION_STARTED,
        EventType.GATE_EVALUATED,
        EventType.EVALUATION_COMPLETED,
        EventType.SIGNOFF_RECORDED,
        EventType.VERSION_APPROVED,
        EventType.VERSION_REJECTED,
        EventType.ALIAS_SET,
        EventType.VERSION_SUSPENDED,
        EventType.VERSION_REINSTATED,
        EventType.VERSION_RETIRED,
    }
)
"""The event types :func:`apply` changes the tables for; the rest are skipped."""


def _subject(event: Event) -> tuple[str, int]:
    if event.model is None or event.version is None:
        raise KeyError(f"seq {event.seq}: {event.type} names no model version")
    return event.model, event.version


def _version(view: View, event: Event) -> Row:
    row = view.get("versions", _subject(event))
    if row is None:
        raise KeyError(f"seq {event.seq}: {event.type} for unknown version")
    row["updated_at"] = event.recorded_at
    return row


def _status_after_alias_change(view: View, model: str, version: int) -> Status:
    holds = view.where("aliases", model=model, version=version)
    return Status.PROMOTED if holds else Status.APPROVED


def apply(view: View, event: Event) -> None:
    """Apply one event to the projection held by ``view``."""
    d = event.data
    kind = event.type
    if kind == EventType.PERSON_CREATED:
        view.put(
            "persons",
            {
                "id": d["id"],
                "display": d["display"],
                "created_at": event.recorded_at,
                "created_by": event.actor,
            },
        )
    elif kind == EventType.PRINCIPAL_CREATED:
        person = d.get("person")
        if person is None:
            # recorded before persons existed: the principal is a person of its own name
            person = d["name"]
            if view.get("persons", (person,)) is None:
                view.put(
                    "persons",
                    {
                        "id": person,
                        "display": person,
                        "created_at": event.recorded_at,
                        "created_by": event.actor,
                    },
                )
        models = d.get("models")
        view.put(
            "principals",
            {
                "name": d["name"],
                "role": d["role"],
                "person": person,
                "models": json.dumps(models, separators=(",", ":")) if models is not None else None,
                "key_prefix": d["key_prefix"],
                "key_hash": d["key_hash"],
                "created_at": event.recorded_at,
                "created_by": event.actor,
                "expires_at": d.get("expires_at"),
                "revoked_at": None,
            },
        )
    elif kind == EventType.PRINCIPAL_REVOKED:
        principal = view.get("principals", (d["name"],))
        if principal is not None:
            principal["revoked_at"] = event.recorded_at
            view.put("principals", principal)
    elif kind == EventType.POLICY_PROPOSED:
        view.put(
            "policies",
            {
                "id": d["policy"]["id"],
                "version": d["policy"]["version"],
                "digest": d["digest"],
                "status": "proposed",
                "canonical": json.dumps(d["policy"], sort_keys=True, separators=(",", ":")),
                "proposed_by": event.actor,
                "proposed_at": event.recorded_at,
                "approved_by": None,
                "approved_at": None,
            },
        )
    elif kind == EventType.POLICY_APPROVED:
        policy = view.get("policies", (d["id"], d["version"]))
        if policy is None:
            raise KeyError(f"seq {event.seq}: approval of an unknown policy")
        policy["status"] = "adopted"
        policy["approved_by"] = event.actor
        policy["approved_at"] = event.recorded_at
        view.put("policies", policy)
    elif kind == EventType.MODEL_REGISTERED:
        view.put(
            "models",
            {"name": d["name"], "created_at": event.recorded_at, "created_by": event.actor},
        )
    elif kind == EventType.VERSION_SUBMITTED:
        model, version = _subject(event)
        for blob in (d["train"], d["validation"]):
            if view.get("datasets", (blob["digest"],)) is None:
                view.put(
                    "datasets",
                    {
                        "digest": blob["digest"],
                        "size": blob["size"],
                        "format": blob["format"],
                        "rows": blob["rows"],
                        "columns": json.dumps(blob["columns"], sort_keys=True),
                        "stored_at": event.recorded_at,
                    },
                )
        artifact = d["artifact"]
        if view.get("artifacts", (artifact["digest"],)) is None:
            view.put(
                "artifacts",
                {
                    "digest": artifact["digest"],
                    "size": artifact["size"],
                    "format": artifact["format"],
                    "stored_at": event.recorded_at,
                },
            )
        view.put(
            "versions",
            {
                "model": model,
                "version": version,
                "status": Status.SUBMITTED.value,
                "policy_id": d["policy"]["id"],
                "policy_version": d["policy"]["version"],
                "policy_digest": d["policy_digest"],
                "artifact_digest": artifact["digest"],
                "train_digest": d["train"]["digest"],
                "validation_digest": d["validation"]["digest"],
                "target": d["target"],
                "protected": json.dumps(d["protected"]),
                "features": json.dumps(d["features"]),
                "cutoff": d["cutoff"],
                "submitted_by": event.actor,
                "submitted_at": event.recorded_at,
                "evaluation": 0,
                "evidence_digest": None,
                "approved_at": None,
                "approval_seq": None,
                "revalidate_by": None,
                "status_reason": None,
                "updated_at": event.recorded_at,
            },
        )
    elif kind == EventType.EVALUATION_STARTED:
        row = _version(view, event)
        row["status"] = Status.EVALUATING.value
        row["evaluation"] = d["evaluation"]
        row["evidence_digest"] = None
        if "policy" in d:  # re-evaluation under another policy, explicitly asked for
            row["policy_id"] = d["policy"]["id"]
            row["policy_version"] = d["policy"]["version"]
            row["policy_digest"] = d["policy_digest"]
        view.put("versions", row)
    elif kind == EventType.GATE_EVALUATED:
        view.put(
            "gate_results",
            {
                "model": event.model,
                "version": event.version,
                "evaluation": d["evaluation"],
                "gate_id": d["gate_id"],
                "kind": d["kind"],
                "verdict": d["verdict"],
                "blocking": d["blocking"],
                "policy_digest": d["policy_digest"],
                "result_digest": d["result_digest"],
                "seq": event.seq,
            },
        )
    elif kind == EventType.EVALUATION_COMPLETED:
        row = _version(view, event)
        row["status"] = d["status"]
        row["evidence_digest"] = d["evidence_digest"]
        row["status_reason"] = d.get("reason")
        view.put("versions", row)
    elif kind == EventType.SIGNOFF_RECORDED:
        view.put(
            "signoffs",
            {
                "seq": event.seq,
                "model": event.model,
                "version": event.version,
                "role": d["role"],
                "principal": event.actor,
                "person": d.get("person") or event.actor,
                "decision": d["decision"],
                "evidence_digest": d["evidence_digest"],
                "signed_at": event.recorded_at,
            },
        )
    elif kind == EventType.VERSION_APPROVED:
        row = _version(view, event)
        row["status"] = Status.APPROVED.value
        row["approved_at"] = event.recorded_at
        row["approval_seq"] = event.seq
        row["revalidate_by"] = d["revalidate_by"]
        row["status_reason"] = None
        view.put("versions", row)
    elif kind in (EventType.VERSION_REJECTED, EventType.VERSION_SUSPENDED):
        row = _version(view, event)
        row["status"] = (
            Status.REJECTED if kind == EventType.VERSION_REJECTED else Status.SUSPENDED
        ).value
        row["status_reason"] = d["reason"]
        view.put("versions", row)
    elif kind == EventType.VERSION_REINSTATED:
        row = _version(view, event)
        row["status"] = _status_after_alias_change(view, *_subject(event)).value
        row["status_reason"] = d["reason"]
        view.put("versions", row)
    elif kind == EventType.ALIAS_SET:
        model, version = _subject(event)
        previous = view.get("aliases", (model, d["alias"]))
        view.put(
            "aliases",
            {
                "model": model,
                "alias": d["alias"],
                "version": version,
                "set_at": event.recorded_at,
                "set_by": event.actor,
            },
        )
        row = _version(view, event)
        row["status"] = Status.PROMOTED.value
        view.put("versions", row)
        if previous is not None and previous["version"] != version:
            old = view.get("versions", (model, previous["version"]))
            if old is not None and old["status"] == Status.PROMOTED:
                old["status"] = _status_after_alias_change(view, model, previous["version"]).value
                old["updated_at"] = event.recorded_at
                view.put("versions", old)
    elif kind == EventType.VERSION_RETIRED:
        row = _version(view, event)
        row["status"] = Status.RETIRED.value
        row["status_reason"] = d["reason"]
        view.put("versions", row)
        model, version = _subject(event)
        for alias in view.where("aliases", model=model, version=version):
            view.delete("aliases", (model, alias["alias"]))
