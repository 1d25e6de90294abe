"""Principals: the ledger's first event, persons, principals and their API keys,
authentication, and the rotation of the ledger's keys.

An API key is ``grk_<prefix>_<secret>``; the registry keeps its prefix and the
SHA-256 of the whole key (:func:`key_hash`), never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from audits.events import EventType, NewEvent
from core.clock import isoformat, parse
from core.errors import AuthError, InputError, NotFoundError, TransitionError, quote
from registry.identity import Principal, check_name, principal_from_row, refuse_lookalike
from registry.projection import DatabaseView
from registry.recorder import Service
from registry.roles import Action, Role

BOOTSTRAP_ACTOR = "govreg-init"
KEY_PREFIX = "grk"


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def principal_created(
    actor: str,
    name: str,
    role: str,
    expires_at: str | None,
    *,
    person: str,
    models: list[str] | None = None,
) -> tuple[NewEvent, str]:
    """The ``principal.created`` event of a new principal with a fresh API key, and
    that key (the event holds only its prefix and hash). Not recorded here."""
    prefix = secrets.token_hex(4)
    api_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    data: dict[str, Any] = {
        "name": name,
        "role": role,
        "person": person,
        "key_prefix": prefix,
        "key_hash": key_hash(api_key),
        "expires_at": expires_at,
    }
    if models is not None:
        data["models"] = models
    event = NewEvent(
        type=EventType.PRINCIPAL_CREATED,
        actor=actor,
        data=data,
        index={"name": name, "role": role, "person": person, "key_prefix": prefix},
    )
    return event, api_key


def _person_created(actor: str, person_id: str, display: str) -> NewEvent:
    return NewEvent(
        type=EventType.PERSON_CREATED,
        actor=actor,
        data={"id": person_id, "display": display},
        index={"id": person_id},
    )


def _check_display(value: str) -> str:
    """A person's display name: 1-200 printable characters, as shown in listings."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > 200 or not text.isprintable():
        raise InputError(
            f"display {quote(value)} is not allowed: give 1-200 printable characters "
            '(e.g. --display "Credit risk validator")'
        )
    return text


def _check_scope(role: str, models: Sequence[str] | None) -> list[str] | None:
    """The models a service principal may score and fetch (sorted, no repeats), or
    None for an unscoped principal. Only a service principal has a scope."""
    if models is None:
        return None
    if role != Role.SERVICE:
        raise InputError(f"--models scopes a service principal; a {role} has no model scope")
    names = sorted({check_name(m, "model name in --models") for m in models})
    if not names:
        raise InputError("--models names no model; give one or more, e.g. --models credit-risk")
    return names


class Principals(Service):
    def authenticate(self, api_key: str | None) -> Principal:
        if not api_key:
            raise AuthError("no API key: pass --api-key or set GOVREG_API_KEY")
        parts = api_key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise AuthError("API key is malformed; it looks like grk_<prefix>_<secret>")
        rec = self.recorder
        with rec.reading() as conn:
            row = DatabaseView(conn).where("principals", key_prefix=parts[1])
            if not row or not hmac.compare_digest(row[0]["key_hash"], key_hash(api_key.strip())):
                raise AuthError("API key is not known")
            found = row[0]
            # the row as the ledger records it, or no key at all
            rec.vouch.check(conn, found)
        principal = principal_from_row(found)
        # a genuine key that is no longer valid: refused, and counted
        if found["revoked_at"]:
            raise rec.refused(
                principal,
                AuthError(f"API key of '{found['name']}' was revoked at {found['revoked_at']}"),
                action="authenticate",
            )
        if found["expires_at"] and parse(found["expires_at"]) <= rec.clock():
            raise rec.refused(
                principal,
                AuthError(f"API key of '{found['name']}' expired at {found['expires_at']}"),
                action="authenticate",
            )
        return principal

    def bootstrap(self, *, key_fingerprint: str) -> str | None:
        """First run: the ledger's first event and the admin principal.

        Returns the admin's API key, or None if the ledger already exists.
        """
        rec = self.recorder
        with rec.transaction() as conn:
            if rec.ledger.head(conn)[0] > 0:
                return None
            if not conn.execute(_sql("SELECT count(*) FROM ledger_data_keys")).scalar():
                rec.ledger.keyring.add_data_key(conn)
            init = NewEvent(
                type=EventType.LEDGER_INITIALISED,
                actor=BOOTSTRAP_ACTOR,
                data={"checkpoint_key": key_fingerprint},
                index={"checkpoint_key": key_fingerprint},
            )
            person = _person_created(BOOTSTRAP_ACTOR, "admin", "the first administrator")
            admin, api_key = principal_created(
                BOOTSTRAP_ACTOR, "admin", Role.ADMIN, None, person="admin"
            )
            rec.record(conn, [init, person, admin])
        return api_key

    def record_upgrade(self, *, authenticated: int, key_fingerprint: str) -> None:
        """Record that an upgrade gave the ``authenticated`` events before it their
        authenticators (they are vouched for by the upgrade, not by their writers);
        its checkpoint also signs any events an earlier version left uncovered."""
        with self.recorder.transaction() as conn:
            self.recorder.record_event(
                conn,
                tag=EventType.LEDGER_UPGRADED,
                actor=BOOTSTRAP_ACTOR,
                data={"authenticated_events": authenticated, "revision": "0009"},
                index={"checkpoint_key": key_fingerprint},
            )

    def create_person(self, actor: Principal, person_id: str, *, display: str) -> dict[str, Any]:
        """Record a person: the human that principals belong to, so that sign-offs
        count people, not principal names. Recorded with who created it."""
        self.recorder.authorize(actor, Action.MANAGE_PRINCIPALS)
        check_name(person_id, "person id")
        display = _check_display(display)
        with self.recorder.transaction() as conn:
            view = DatabaseView(conn)
            if view.get("persons", (person_id,)) is not None:
                raise InputError(f"person '{person_id}' exists; choose another id")
            refuse_lookalike(
                [{"name": r["id"]} for r in view.where("persons")], person_id, "person"
            )
            self.recorder.record(conn, [_person_created(actor.name, person_id, display)])
            created = view.get("persons", (person_id,))
        assert created is not None  # just recorded in this transaction
        return created

    def list_persons(self, actor: Principal) -> list[dict[str, Any]]:
        self.recorder.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.recorder.reading() as conn:
            rows = DatabaseView(conn).where("persons")
        return sorted(rows, key=lambda r: r["id"])

    def create_principal(
        self,
        actor: Principal,
        name: str,
        role: str,
        *,
        person: str | None = None,
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Principal, str]:
        """A principal of ``person`` (an existing person record). ``person=None`` records
        a new person of the principal's own name with it (what the upgrade gives every
        earlier principal; the CLI and the API always name the person). ``models``
        scopes a service principal (the CLI and the API require it for one)."""
        self.recorder.authorize(actor, Action.MANAGE_PRINCIPALS)
        check_name(name, "principal name")
        if role not in set(Role):
            raise InputError(f"unknown role {quote(role)}; choose one of {', '.join(Role)}")
        if person is not None:
            check_name(person, "person id")
        scope = _check_scope(role, models)
        if expires_at is not None and expires_at.utcoffset() is None:
            raise InputError("expires_at has no time zone; give one, e.g. 2030-01-31T00:00:00Z")
        if expires_at is not None and expires_at <= self.recorder.clock():
            raise InputError("expiry is in the past; give a future time")
        expiry = isoformat(expires_at) if expires_at else None
        with self.recorder.transaction() as conn:
            view = DatabaseView(conn)
            if view.get("principals", (name,)) is not None:
                raise InputError(f"principal '{name}' exists; choose another name")
            refuse_lookalike(view.where("principals"), name, "principal")
            events: list[NewEvent] = []
            if person is None:
                person = name
                if view.get("persons", (person,)) is not None:
                    raise InputError(
                        f"person '{name}' exists; name the principal's person with --person"
                    )
                events.append(_person_created(actor.name, person, name))
            elif view.get("persons", (person,)) is None:
                raise NotFoundError(
                    f"no person '{person}'; create it first with `govreg persons create "
                    f'{person} --display "..."`'
                )
            event, api_key = principal_created(
                actor.name, name, role, expiry, person=person, models=scope
            )
            self.recorder.record(conn, [*events, event])
        models_out = tuple(scope) if scope is not None else None
        return Principal(name, role, expiry, person=person, models=models_out), api_key

    def revoke_principal(self, actor: Principal, name: str) -> None:
        self.recorder.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.recorder.transaction() as conn:
            # no principal has a NUL byte in its name (and PostgreSQL refuses one in a query)
            row = None if "\x00" in name else DatabaseView(conn).get("principals", (name,))
            if row is None:
                raise NotFoundError(f"no principal {quote(name)}; see `govreg principals list`")
            if row["revoked_at"]:
                # a state the request conflicts with, not bad input (HTTP 409)
                raise TransitionError(f"principal '{name}' is already revoked")
            self.recorder.record_event(
                conn,
                tag=EventType.PRINCIPAL_REVOKED,
                actor=actor.name,
                data={"name": name},
                index={"name": name},
            )

    def list_principals(self, actor: Principal) -> list[Principal]:
        self.recorder.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.recorder.reading() as conn:
            rows = DatabaseView(conn).where("principals")
        return [principal_from_row(r) for r in sorted(rows, key=lambda r: r["name"])]

    # -- keys ------------------------------------------------------------------
    def rotate_data_key(self, actor: Principal) -> str:
        self.recorder.authorize(actor, Action.ROTATE_KEYS)
        with self.recorder.transaction() as conn:
            key_id = self.recorder.ledger.keyring.add_data_key(conn)
            self.recorder.record_event(
                conn,
                tag=EventType.DATA_KEY_ROTATED,
                actor=actor.name,
                data={"key_id": key_id},
                index={"key_id": key_id},
            )
        return key_id

    def rotate_kek(self, actor: Principal) -> tuple[str, int]:
        """Re-wrap every data key under a new KEK; safe to re-run if interrupted."""
        self.recorder.authorize(actor, Action.ROTATE_KEYS)
        keyring = self.recorder.ledger.keyring
        new = keyring.prepare_kek_rotation()
        with self.recorder.transaction() as conn:
            count = keyring.rewrap_all(conn, new)
            self.recorder.record_event(
                conn,
                tag=EventType.KEK_ROTATED,
                actor=actor.name,
                data={"kek_id": new.kek_id, "rewrapped": count},
                index={"kek_id": new.kek_id},
            )
        keyring.finish_kek_rotation()
        return new.kek_id, count


def _sql(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)
