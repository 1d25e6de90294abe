"""The use cases: the one service layer the CLI, the API and the tests call.

Every state change appends its events to the ledger and applies them to the
projection tables in the same transaction, after taking the writers' lock,
and re-reads what it decides on inside that transaction. Rules of governance
(who may act, which transition is allowed, who may sign and when a version is
approved) live here and in :mod:`registry.roles` / :mod:`registry.lifecycle`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import inspect
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from audits.events import Event, EventType, NewEvent
from audits.verify import VerificationFailed, VerifyReport, Workers, verify_ledger
from core.canonical import canonical_bytes
from core.clock import isoformat, parse, utcnow
from core.db import read_only
from core.errors import (
    AuthError,
    GovregError,
    InputError,
    NotFoundError,
    PermissionDenied,
    TooManyRequests,
    TransitionError,
    quote,
)
from core.files import ImportedPath
from core.turns import folder_turn
from policies.loader import DEFAULT_POLICY, all_policies
from policies.schema import Policy, PolicyError
from registry import denials, inputs
from registry.decoding import DecodeLimits
from registry.denials import Denial, DenialLimits
from registry.history import VersionHistory
from registry.lifecycle import Move, Status, effective_status, require
from registry.mlflow_source import redact
from registry.projection import PROJECTED_EVENTS, DatabaseView, MemoryView, apply
from registry.roles import Action, Role, allowed
from registry.rules import (
    Seat,
    blocks,
    check_cutoff,
    failing_gates,
    missing_signoffs,
    seat_conflict,
    seat_of,
    signers_by_role,
)
from registry.store import BlobStore
from registry.vouching import PrincipalVouch

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection, Engine

    from audits.ledger import Ledger
    from registry.mlflow_source import ArtifactRules

log = logging.getLogger(__name__)

# ASCII letters, digits, '.', '_', '-'. The pattern's '^' and '$' are for the API's
# JSON Schema readers (where '$' ends the text); Python checks with fullmatch,
# since its '$' also matches before a final newline.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
BOOTSTRAP_ACTOR = "govreg-init"
KEY_PREFIX = "grk"


@dataclass(frozen=True)
class Principal:
    """Who acts. ``person`` is the human behind it (a person record, or ``oidc:<sub>``;
    empty means the principal's own name). ``models`` scopes a service principal to
    the models it may score and fetch; None is unscoped (every model)."""

    name: str
    role: str
    expires_at: str | None = None
    revoked_at: str | None = None
    person: str = ""
    models: tuple[str, ...] | None = None

    @property
    def person_id(self) -> str:
        return self.person or self.name

    def may_serve(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "person": self.person_id,
            "models": list(self.models) if self.models is not None else None,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def _principal_from_row(row: dict[str, Any]) -> Principal:
    models = row.get("models")
    return Principal(
        row["name"],
        row["role"],
        row["expires_at"],
        row["revoked_at"],
        person=row["person"],
        models=tuple(json.loads(models)) if models is not None else None,
    )


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InputError(
            f"{what} {quote(value)} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def name_key(name: str) -> str:
    """What two names must not share: NFKC-normalised and case-folded (``DS-1`` is
    ``ds-1``; ``ｄｓ-1`` too, should a name with such characters exist)."""
    import unicodedata

    return unicodedata.normalize("NFKC", name).casefold()


def _refuse_lookalike(rows: list[dict[str, Any]], name: str, what: str) -> None:
    """Refuse a new name that only case or compatibility forms tell from an existing one."""
    key = name_key(name)
    for row in rows:
        if row["name"] != name and name_key(row["name"]) == key:
            raise InputError(
                f"{what} '{name}' is too like the existing {what} {quote(row['name'])} "
                "(names may not differ only in case or Unicode form); choose another name"
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
    names = sorted({_check_name(m, "model name in --models") for m in models})
    if not names:
        raise InputError("--models names no model; give one or more, e.g. --models credit-risk")
    return names


def _person_created(actor: str, person_id: str, display: str) -> NewEvent:
    return NewEvent(
        type=EventType.PERSON_CREATED,
        actor=actor,
        data={"id": person_id, "display": display},
        index={"id": person_id},
    )


def _person_of(view: DatabaseView, principal_name: str) -> str:
    """The person behind a principal name; a name no principal has (``govreg-init``)
    stands for itself."""
    row = view.get("principals", (principal_name,))
    return str(row["person"]) if row is not None else principal_name


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def evidence_digest(version: dict[str, Any], gate_digests: dict[str, str]) -> str:
    """What a sign-off signs: artifact, datasets, policy and gate results."""
    return hashlib.sha256(
        canonical_bytes(
            {
                "artifact": version["artifact_digest"],
                "train": version["train_digest"],
                "validation": version["validation_digest"],
                "policy": version["policy_digest"],
                "gates": gate_digests,
            }
        )
    ).hexdigest()


F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=GovregError)


def records_refusals(
    *, model: str | None = "model", version: str | None = "version"
) -> Callable[[F], F]:
    """Refusals raised inside a use case (segregation of duties, own versions only)
    are counted (:meth:`Registry.refused`) once its transaction rolled back, about the
    model and version the parameters named ``model`` and ``version`` hold (None: the
    use case is about no version, e.g. a policy's adoption)."""

    def decorate(method: F) -> F:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self: Registry, actor: Principal, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, actor, *args, **kwargs)
            except PermissionDenied as exc:
                bound = signature.bind_partial(self, actor, *args, **kwargs).arguments
                raise self.refused(
                    actor,
                    exc,
                    action=method.__name__.strip("_"),
                    model=bound.get(model) if model else None,
                    version=bound.get(version) if version else None,
                ) from None

        return wrapper  # type: ignore[return-value]

    return decorate


class VersionObserver(Protocol):
    """Told after a version's approval, promotion, suspension, reinstatement or
    retirement has committed (e.g. the MLflow mirror). The ledger is the truth:
    an observer that fails is logged and never undoes the committed change."""

    def version_changed(self, registry: Registry, model: str, version: int) -> None: ...


class Registry:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        store: BlobStore,
        *,
        max_upload_bytes: int = 512 * 1024 * 1024,
        decode_limits: DecodeLimits | None = None,
        clock: Callable[[], datetime] = utcnow,
        mlflow_tracking_uri: str | None = None,
        mlflow_artifact_rules: ArtifactRules | None = None,
        observers: Sequence[VersionObserver] = (),
        denial_limits: DenialLimits | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.vouch = PrincipalVouch(ledger)
        self.store = store
        self.max_upload_bytes = max_upload_bytes
        self.decode_limits = decode_limits or DecodeLimits()
        self.clock = clock
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.mlflow_artifact_rules = mlflow_artifact_rules
        self.observers = tuple(observers)
        self.denial_limits = denial_limits or DenialLimits()

    def notify(self, model: str, version: int) -> None:
        """Tell the observers about a committed change; their failures are only logged
        (logger ``registry.services``, level WARNING)."""
        for observer in self.observers:
            try:
                observer.version_changed(self, model, version)
            except Exception as exc:  # noqa: BLE001 - the ledger committed; never undo it
                message = redact(
                    f"{model} v{version} is recorded, but {type(observer).__name__} failed: {exc}"
                )
                log.warning(message)

    # -- plumbing --------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction holding the writers' lock; what it appends is signed
        into a checkpoint before it commits; anchors after commit. The anchor
        folder's turn (:func:`core.turns.folder_turn`) is held from before the
        lock to after the anchor write, so the next writer never takes a
        checkpoint whose anchor is being written for one whose writer stopped."""
        with folder_turn(self.ledger.config.anchor_dir):
            conn = self.engine.connect()
            try:
                try:
                    with conn.begin():
                        self.ledger.lock(conn)
                        yield conn
                        self.ledger.seal(conn)
                except BaseException:
                    self.ledger.discard_anchors(conn)
                    raise
                self.ledger.write_anchors(conn)
            finally:
                conn.close()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        conn = read_only(self.engine)
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def record(self, conn: Connection, events: list[NewEvent]) -> list[Event]:
        stored = self.ledger.append(conn, events)
        view = DatabaseView(conn)
        for event in stored:
            apply(view, event)
        return stored

    # -- principals --------------------------------------------------------------
    def authenticate(self, api_key: str | None) -> Principal:
        if not api_key:
            raise AuthError("no API key: pass --api-key or set GOVREG_API_KEY")
        parts = api_key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            raise AuthError("API key is malformed; it looks like grk_<prefix>_<secret>")
        with self.reading() as conn:
            row = DatabaseView(conn).where("principals", key_prefix=parts[1])
            if not row or not hmac.compare_digest(row[0]["key_hash"], _key_hash(api_key.strip())):
                raise AuthError("API key is not known")
            found = row[0]
            # the row as the ledger records it, or no key at all
            self.vouch.check(conn, found)
        principal = _principal_from_row(found)
        # a genuine key that is no longer valid: refused, and counted
        if found["revoked_at"]:
            raise self.refused(
                principal,
                AuthError(f"API key of '{found['name']}' was revoked at {found['revoked_at']}"),
                action="authenticate",
            )
        if found["expires_at"] and parse(found["expires_at"]) <= self.clock():
            raise self.refused(
                principal,
                AuthError(f"API key of '{found['name']}' expired at {found['expires_at']}"),
                action="authenticate",
            )
        return principal

    def authorize(
        self,
        principal: Principal,
        action: Action,
        *,
        model: str | None = None,
        version: int | None = None,
    ) -> None:
        """Refuse a role that may not do ``action``; the refusal is counted
        (:meth:`refused`) about ``model`` and ``version``, the subject of the call."""
        if not allowed(principal.role, action):
            raise self.refused(
                principal,
                PermissionDenied(
                    f"'{principal.name}' ({principal.role}) may not "
                    f"{action.value.replace('_', ' ')}"
                ),
                action=action.value,
                model=model,
                version=version,
            )

    def authorize_model(self, principal: Principal, action: Action, model: str) -> None:
        """Refuse ``action`` on ``model`` outside a service principal's model scope (an
        unscoped principal, from before scopes, may serve every model); counted."""
        self.authorize(principal, action, model=model)
        if not principal.may_serve(model):
            scope = ", ".join(principal.models or ())
            raise self.refused(
                principal,
                PermissionDenied(
                    f"'{principal.name}' ({principal.role}) is scoped to the models {scope} "
                    f"and may not {action.value.replace('_', ' ')} {quote(model)}"
                ),
                action=action.value,
                model=model,
            )

    def refused(
        self,
        principal: Principal,
        error: E,
        *,
        action: str,
        model: str | None = None,
        version: int | None = None,
    ) -> E:
        """Count ``error`` as a refusal (in its own transaction, after the refused one
        rolled back; see :mod:`registry.denials`) and hand it back to be raised: the
        first of its kind in an interval is an ``access.denied`` event at once.
        Over the refusal limit, :class:`TooManyRequests` is raised instead."""
        if getattr(error, "recorded", False):
            return error
        # the subject as the caller named it, where it is a valid name and version:
        # a refusal comes before the input is checked, and nothing else is recorded
        if not (isinstance(model, str) and NAME_RE.fullmatch(model)):
            model = None
        if not (
            isinstance(version, int) and not isinstance(version, bool) and 1 <= version < 2**31
        ):
            version = None
        self.count_denial(
            Denial(
                subject=f"principal:{principal.name}",
                actor=principal.name,
                role=principal.role,
                action=action,
                reason=str(error),
                model=model,
                version=version,
            ),
            who=f"'{principal.name}'",
        )
        error.recorded = True  # type: ignore[attr-defined]  # marks it for outer callers
        return error

    def count_denial(self, denial: Denial, *, who: str) -> None:
        """Count one refusal; raise :class:`TooManyRequests` (already counted) when it
        puts ``denial.subject`` over the limit. ``who`` names the subject in that
        message."""
        with self.transaction() as conn:
            counted = denials.count(conn, denial, now=self.clock(), limits=self.denial_limits)
            if counted.events:
                self.ledger.append(conn, counted.events)
        if counted.retry_after is not None:
            limits = self.denial_limits
            error = TooManyRequests(
                f"too many refused requests from {who}: over {limits.limit} in "
                f"{limits.interval:g} s (GOVREG_DENIAL_LIMIT); retry after "
                f"{counted.retry_after} s",
                retry_after=counted.retry_after,
            )
            error.recorded = True  # type: ignore[attr-defined]  # counted; never again
            raise error

    def count_unauthenticated(self, address: str, error: AuthError) -> AuthError:
        """Count a request refused for a missing, malformed or unknown credential
        against the caller's address (counted only: such refusals reach the ledger in
        aggregated events); hand ``error`` back, or raise :class:`TooManyRequests`."""
        if getattr(error, "recorded", False):
            return error
        self.count_denial(
            Denial(
                subject=f"address:{address}",
                actor=denials.UNAUTHENTICATED,
                role=None,
                action="authenticate",
                reason=str(error),
                immediate=False,
            ),
            who="this address",
        )
        error.recorded = True  # type: ignore[attr-defined]
        return error

    def flush_denials(self, actor: Principal | None = None, *, every: bool = False) -> list[Event]:
        """Append the counted refusals as ``access.denied.aggregated`` events: of the
        intervals that have ended, or with ``every`` of all (an admin's ``govreg
        audit flush-denials``, a server's shutdown). ``actor`` None is the server."""
        if actor is not None:
            self.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.reading() as conn:
            if not denials.any_rows(conn):
                return []
        with self.transaction() as conn:
            events = denials.flush(conn, now=self.clock(), every=every)
            return self.ledger.append(conn, events) if events else []

    def _new_principal_event(
        self,
        actor: str,
        name: str,
        role: str,
        expires_at: str | None,
        *,
        person: str,
        models: list[str] | None = None,
    ) -> tuple[NewEvent, str]:
        prefix = secrets.token_hex(4)
        api_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        data: dict[str, Any] = {
            "name": name,
            "role": role,
            "person": person,
            "key_prefix": prefix,
            "key_hash": _key_hash(api_key),
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

    def bootstrap(self, *, key_fingerprint: str) -> str | None:
        """First run: the ledger's first event and the admin principal.

        Returns the admin's API key, or None if the ledger already exists.
        """
        with self.transaction() as conn:
            if self.ledger.head(conn)[0] > 0:
                return None
            if not conn.execute(_sql("SELECT count(*) FROM ledger_data_keys")).scalar():
                self.ledger.keyring.add_data_key(conn)
            init = NewEvent(
                type=EventType.LEDGER_INITIALISED,
                actor=BOOTSTRAP_ACTOR,
                data={"checkpoint_key": key_fingerprint},
                index={"checkpoint_key": key_fingerprint},
            )
            person = _person_created(BOOTSTRAP_ACTOR, "admin", "the first administrator")
            admin, api_key = self._new_principal_event(
                BOOTSTRAP_ACTOR, "admin", Role.ADMIN, None, person="admin"
            )
            self.record(conn, [init, person, admin])
        return api_key

    def record_upgrade(self, *, authenticated: int, key_fingerprint: str) -> None:
        """Record that an upgrade gave the ``authenticated`` events before it their
        authenticators (they are vouched for by the upgrade, not by their writers);
        its checkpoint also signs any events an earlier version left uncovered."""
        with self.transaction() as conn:
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.LEDGER_UPGRADED,
                        actor=BOOTSTRAP_ACTOR,
                        data={"authenticated_events": authenticated, "revision": "0009"},
                        index={"checkpoint_key": key_fingerprint},
                    )
                ],
            )

    def create_person(self, actor: Principal, person_id: str, *, display: str) -> dict[str, Any]:
        """Record a person: the human that principals belong to, so that sign-offs
        count people, not principal names. Recorded with who created it."""
        self.authorize(actor, Action.MANAGE_PRINCIPALS)
        _check_name(person_id, "person id")
        display = _check_display(display)
        with self.transaction() as conn:
            view = DatabaseView(conn)
            if view.get("persons", (person_id,)) is not None:
                raise InputError(f"person '{person_id}' exists; choose another id")
            _refuse_lookalike(
                [{"name": r["id"]} for r in view.where("persons")], person_id, "person"
            )
            self.record(conn, [_person_created(actor.name, person_id, display)])
            created = view.get("persons", (person_id,))
        assert created is not None  # just recorded in this transaction
        return created

    def list_persons(self, actor: Principal) -> list[dict[str, Any]]:
        self.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.reading() as conn:
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
        self.authorize(actor, Action.MANAGE_PRINCIPALS)
        _check_name(name, "principal name")
        if role not in set(Role):
            raise InputError(f"unknown role {quote(role)}; choose one of {', '.join(Role)}")
        if person is not None:
            _check_name(person, "person id")
        scope = _check_scope(role, models)
        if expires_at is not None and expires_at.utcoffset() is None:
            raise InputError("expires_at has no time zone; give one, e.g. 2030-01-31T00:00:00Z")
        if expires_at is not None and expires_at <= self.clock():
            raise InputError("expiry is in the past; give a future time")
        expiry = isoformat(expires_at) if expires_at else None
        with self.transaction() as conn:
            view = DatabaseView(conn)
            if view.get("principals", (name,)) is not None:
                raise InputError(f"principal '{name}' exists; choose another name")
            _refuse_lookalike(view.where("principals"), name, "principal")
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
            event, api_key = self._new_principal_event(
                actor.name, name, role, expiry, person=person, models=scope
            )
            self.record(conn, [*events, event])
        models_out = tuple(scope) if scope is not None else None
        return Principal(name, role, expiry, person=person, models=models_out), api_key

    def seat(self, conn: Connection, principal: Principal) -> Seat:
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

    def revoke_principal(self, actor: Principal, name: str) -> None:
        self.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.transaction() as conn:
            # no principal has a NUL byte in its name (and PostgreSQL refuses one in a query)
            row = None if "\x00" in name else DatabaseView(conn).get("principals", (name,))
            if row is None:
                raise NotFoundError(f"no principal {quote(name)}; see `govreg principals list`")
            if row["revoked_at"]:
                # a state the request conflicts with, not bad input (HTTP 409)
                raise TransitionError(f"principal '{name}' is already revoked")
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.PRINCIPAL_REVOKED,
                        actor=actor.name,
                        data={"name": name},
                        index={"name": name},
                    )
                ],
            )

    def list_principals(self, actor: Principal) -> list[Principal]:
        self.authorize(actor, Action.MANAGE_PRINCIPALS)
        with self.reading() as conn:
            rows = DatabaseView(conn).where("principals")
        return [_principal_from_row(r) for r in sorted(rows, key=lambda r: r["name"])]

    # -- keys ------------------------------------------------------------------
    def rotate_data_key(self, actor: Principal) -> str:
        self.authorize(actor, Action.ROTATE_KEYS)
        with self.transaction() as conn:
            key_id = self.ledger.keyring.add_data_key(conn)
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.DATA_KEY_ROTATED,
                        actor=actor.name,
                        data={"key_id": key_id},
                        index={"key_id": key_id},
                    )
                ],
            )
        return key_id

    def rotate_kek(self, actor: Principal) -> tuple[str, int]:
        """Re-wrap every data key under a new KEK; safe to re-run if interrupted."""
        self.authorize(actor, Action.ROTATE_KEYS)
        keyring = self.ledger.keyring
        new = keyring.prepare_kek_rotation()
        with self.transaction() as conn:
            count = keyring.rewrap_all(conn, new)
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.KEK_ROTATED,
                        actor=actor.name,
                        data={"kek_id": new.kek_id, "rewrapped": count},
                        index={"kek_id": new.kek_id},
                    )
                ],
            )
        keyring.finish_kek_rotation()
        return new.kek_id, count

    # -- policies --------------------------------------------------------------
    def _adopted_policy(self, conn: Connection, ref: str) -> Policy:
        """The policy in force for ``id`` (its newest adopted version) or ``id@version``.

        The policies shipped with govreg (``policies/*.yaml``) are in force as
        shipped; every other policy or version takes effect only when a
        compliance officer has approved it in the ledger.
        """
        wanted, _, number = ref.partition("@")
        rows = DatabaseView(conn).where("policies", id=wanted)
        candidates = [p for p in all_policies() if p.id == wanted] + [
            Policy.model_validate(json.loads(r["canonical"]))
            for r in rows
            if r["status"] == "adopted"
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

    def _next_policy_version(self, conn: Connection, policy: Policy) -> int:
        """The first version of ``policy.id`` neither shipped nor proposed yet."""
        taken = [p.version for p in all_policies() if p.id == policy.id]
        taken += [r["version"] for r in DatabaseView(conn).where("policies", id=policy.id)]
        return max([policy.version, *taken]) + 1

    def propose_policy(self, actor: Principal, policy: Policy) -> None:
        """Record a new policy version; it takes effect only once approved."""
        self.authorize(actor, Action.PROPOSE_POLICY)
        with self.transaction() as conn:
            existing = DatabaseView(conn).get("policies", (policy.id, policy.version))
            shipped = any((p.id, p.version) == (policy.id, policy.version) for p in all_policies())
            if shipped:
                raise InputError(
                    f"policy {policy.ref} ships with govreg and is in force; "
                    "propose a new version instead"
                )
            if existing is not None:
                same = existing["digest"] == policy.digest
                raise InputError(
                    f"policy {policy.ref} was already proposed"
                    + (" (same text)" if same else " with other text; raise its version")
                )
            self.record(conn, [_policy_proposed(actor.name, policy)])

    @records_refusals(model=None, version=None)
    def approve_policy(self, actor: Principal, ref: str, *, comment: str) -> Policy:
        """Adopt a proposed policy version (compliance officer; not its proposer)."""
        self.authorize(actor, Action.APPROVE_POLICY)
        if not comment.strip():
            raise InputError("approving a policy needs a comment: pass --comment")
        wanted, _, number = ref.partition("@")
        if not number.isdigit():
            raise InputError(f"name the version to approve: {wanted}@VERSION")
        with self.transaction() as conn:
            row = DatabaseView(conn).get("policies", (wanted, int(number)))
            if row is None:
                raise NotFoundError(f"no policy {ref} was proposed; see `govreg policies list`")
            if row["status"] == "adopted":
                raise InputError(f"policy {ref} is already adopted")
            if row["proposed_by"] == actor.name:
                raise PermissionDenied(
                    f"'{actor.name}' proposed policy {ref} and may not approve it "
                    "(segregation of duties)"
                )
            policy = Policy.model_validate(json.loads(row["canonical"]))
            self.record(conn, [_policy_approved(actor.name, policy, comment.strip())])
        return policy

    def list_policies(self, actor: Principal) -> list[dict[str, Any]]:
        self.authorize(actor, Action.READ)
        with self.reading() as conn:
            rows = DatabaseView(conn).where("policies")
        shipped = [
            {
                "id": p.id,
                "version": p.version,
                "digest": p.digest,
                "status": "shipped",
                "proposed_by": None,
                "approved_by": None,
            }
            for p in all_policies()
        ]
        recorded = [
            {k: r[k] for k in ("id", "version", "digest", "status", "proposed_by", "approved_by")}
            for r in rows
        ]
        return sorted(shipped + recorded, key=lambda r: (r["id"], r["version"]))

    def get_policy(self, actor: Principal, ref: str) -> Policy:
        """An adopted policy (``id`` or ``id@version``)."""
        self.authorize(actor, Action.READ)
        with self.reading() as conn:
            return self._adopted_policy(conn, ref)

    # -- versions --------------------------------------------------------------
    def _version_row(self, conn: Connection, model: str, version: int) -> dict[str, Any]:
        view = DatabaseView(conn)
        row = view.get("versions", (model, version))
        if row is None:
            if view.get("models", (model,)) is None:
                raise NotFoundError(f"no model '{model}'; see `govreg versions list`")
            raise NotFoundError(f"model '{model}' has no version {version}")
        return row

    def _status(self, row: dict[str, Any]) -> Status:
        return effective_status(row["status"], row["revalidate_by"], self.clock())

    def submit(
        self,
        actor: Principal,
        model: str,
        *,
        artifact: Path | ImportedPath | str,
        train: Path | ImportedPath,
        validation: Path | ImportedPath,
        target: str,
        protected: list[str],
        policy_id: str | None = None,
        cutoff: str | None = None,
        reason_texts: dict[str, Any] | None = None,
        schema_suite: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> int:
        """Check the submission contract, store the blobs, record the version.

        ``artifact`` is a file, or an MLflow ``runs:/<run_id>/<path>`` or
        ``models:/<name>/<version>`` URI read from the configured tracking
        server; then only its LightGBM text model is taken, and the run's
        lineage is recorded under ``lineage["mlflow"]``. A file is an
        :class:`~core.files.ImportedPath` when named under the server's import
        folder. Each file is read once; its bytes are hashed and parsed from that read.
        """
        self.authorize(actor, Action.SUBMIT, model=model)
        _check_name(model, "model name")
        if not protected:
            raise InputError("declare at least one protected attribute with --protected")
        if schema_suite is not None:
            inputs.check_schema_suite(schema_suite)
        with self.reading() as conn:
            policy = self._adopted_policy(conn, policy_id or DEFAULT_POLICY)
            if cutoff is not None:  # only the policy's own cutoff (another is a policy change)
                check_cutoff(policy, cutoff, next_version=self._next_policy_version(conn, policy))
        cut = policy.decision_cutoff
        lineage = inputs.check_lineage(lineage)
        if isinstance(artifact, str) and artifact.startswith(("runs:/", "models:/")):
            from registry.mlflow_source import fetch_model

            fetched = fetch_model(
                artifact,
                tracking_uri=self.mlflow_tracking_uri,
                max_bytes=self.max_upload_bytes,
                rules=self.mlflow_artifact_rules,
            )
            artifact_bytes = fetched.data
            lineage["mlflow"] = fetched.lineage
        else:
            artifact = Path(artifact) if isinstance(artifact, str) else artifact
            artifact_bytes = inputs.read_input_file(
                artifact, "artifact", max_bytes=self.max_upload_bytes
            )
        info = inputs.inspect_artifact(artifact_bytes, source=str(artifact))
        datasets = {}
        contract = None
        for role, path in (("train", train), ("validation", validation)):
            fmt = inputs.dataset_format(path)
            data = inputs.read_input_file(path, f"{role} dataset", max_bytes=self.max_upload_bytes)
            frame = inputs.load_frame(data, fmt, source=str(path), limits=self.decode_limits)
            inputs.check_dataset(frame, source=str(path), target=target, protected=protected)
            # The training data defines the contract; the validation data must feed it too.
            if contract is None:
                contract = inputs.data_contract(artifact_bytes, frame, source=str(path))
            else:
                contract.check_frame(frame, source=str(path))
            datasets[role] = (data, inputs.describe_frame(frame, fmt))
        if contract is None:  # unreachable: the loop ran for the training data
            raise InputError("no training data")
        reasons = inputs.check_reason_texts(reason_texts, contract)
        written: list[str] = []
        try:
            digest, new = self.store.put(artifact_bytes)
            if new:
                written.append(digest)
            blobs: dict[str, dict[str, Any]] = {
                "artifact": {"digest": digest, "size": len(artifact_bytes), "format": info.format}
            }
            for role, (data, desc) in datasets.items():
                d_digest, d_new = self.store.put(data)
                if d_new:
                    written.append(d_digest)
                blobs[role] = {"digest": d_digest, "size": len(data), **desc.public()}
            with self.transaction() as conn:
                view = DatabaseView(conn)
                events: list[NewEvent] = []
                if view.get("models", (model,)) is None:
                    _refuse_lookalike(view.where("models"), model, "model")
                    events.append(
                        NewEvent(
                            type=EventType.MODEL_REGISTERED,
                            actor=actor.name,
                            model=model,
                            data={"name": model},
                            index={"name": model},
                        )
                    )
                existing = view.where("versions", model=model)
                number = max((r["version"] for r in existing), default=0) + 1
                seat = self.seat(conn, actor)
                events.append(
                    NewEvent(
                        type=EventType.VERSION_SUBMITTED,
                        actor=actor.name,
                        model=model,
                        version=number,
                        data={
                            "artifact": blobs["artifact"],
                            "train": blobs["train"],
                            "validation": blobs["validation"],
                            "target": target,
                            "protected": list(protected),
                            "features": info.features,
                            "contract": contract.canonical(),
                            "num_trees": info.num_trees,
                            "cutoff": str(cut),
                            "policy": policy.canonical(),
                            "policy_digest": policy.digest,
                            "reason_texts": reasons,
                            "schema_suite": schema_suite,
                            "lineage": lineage,
                            "person": seat.person,
                            "creators": sorted(seat.creators),
                        },
                        index={
                            "status": Status.SUBMITTED.value,
                            "artifact_digest": blobs["artifact"]["digest"],
                            "train_digest": blobs["train"]["digest"],
                            "validation_digest": blobs["validation"]["digest"],
                            "policy_digest": policy.digest,
                        },
                    )
                )
                self.record(conn, events)
        except BaseException:
            for digest in written:
                self.store.remove(digest)
            raise
        return number

    def ensure_covered(self, model: str, version: int) -> None:
        """Sign a checkpoint if the latest does not cover the version's last event (every
        commit signs one, so only after a signer refusal or a crash before signing)."""
        with self.reading() as conn:
            last = self.ledger.last_version_seq(conn, model, version)
            latest = self.ledger.latest_checkpoint(conn)
        if latest is not None and latest.size >= last:
            return
        with self.transaction() as conn:
            self.ledger.checkpoint(conn)

    def submission(self, model: str, version: int) -> dict[str, Any]:
        """The decrypted payload of the version's ``version.submitted`` event."""
        with self.reading() as conn:
            self._version_row(conn, model, version)
            for event in self.ledger.events(
                conn, model=model, version=version, types=[EventType.VERSION_SUBMITTED]
            ):
                return event.data
        raise NotFoundError(f"{model} v{version} has no submission event")

    def policy_of(self, model: str, version: int) -> Policy:
        """The policy the version is judged by now (submission or re-evaluation)."""
        with self.reading() as conn:
            self._version_row(conn, model, version)
            return self._policy_from_ledger(conn, model, version)

    @records_refusals()
    def start_evaluation(
        self, actor: Principal, model: str, version: int, *, policy_id: str | None = None
    ) -> int:
        """Open evaluation N+1. ``policy_id`` (``id`` or ``id@version``) re-evaluates
        under another policy: an explicit act, recorded with the new policy;
        results under the old policy stay in the trail. A policy with another
        ``decision_cutoff`` is refused: the cutoff is fixed at submission."""
        from decimal import Decimal

        self.authorize(actor, Action.EVALUATE, model=model, version=version)
        with self.transaction() as conn:
            new_policy = self._adopted_policy(conn, policy_id) if policy_id else None
            row = self._version_row(conn, model, version)
            _require_own(actor, row, model, version)
            require(Move.EVALUATE, self._status(row), subject=f"{model} v{version}")
            if new_policy is not None and new_policy.decision_cutoff != Decimal(row["cutoff"]):
                # the gates measure, and serving decides, at the cutoff recorded at submission
                raise InputError(
                    f"policy {new_policy.ref} decides at {new_policy.decision_cutoff}, but "
                    f"{model} v{version} was submitted at cutoff {row['cutoff']}; a version "
                    f"keeps its cutoff: submit the model again with --policy {new_policy.ref}"
                )
            number = int(row["evaluation"]) + 1
            data: dict[str, Any] = {"evaluation": number}
            index: dict[str, Any] = {"evaluation": number, "status": Status.EVALUATING.value}
            if new_policy is not None and new_policy.digest != row["policy_digest"]:
                data["policy"] = new_policy.canonical()
                data["policy_digest"] = index["policy_digest"] = new_policy.digest
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.EVALUATION_STARTED,
                        actor=actor.name,
                        model=model,
                        version=version,
                        data=data,
                        index=index,
                    )
                ],
            )
        return number

    def evaluate(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        policy_id: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Status:
        """Run every gate of the version's recorded policy and record the results.

        Fail closed: inputs that cannot be loaded, or a gate that raises, give
        "error" verdicts, and a blocking gate that did not pass fails the
        version.
        """
        number = self.start_evaluation(actor, model, version, policy_id=policy_id)
        return self.run_evaluation(actor, model, version, number, progress=progress)

    def run_evaluation(
        self,
        actor: Principal,
        model: str,
        version: int,
        number: int,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> Status:
        """Measure every gate for an evaluation opened by :meth:`start_evaluation`."""
        from decimal import Decimal

        from validation.contract import DataContract
        from validation.inputs import GateInputs
        from validation.runner import error_result, run_gate

        self.authorize(actor, Action.EVALUATE, model=model, version=version)
        sub = self.submission(model, version)
        policy = self.policy_of(model, version)
        say = progress or (lambda _message: None)
        results: list[dict[str, Any]] = []
        try:
            say("loading the artifact and datasets")
            model_text = self.store.get(sub["artifact"]["digest"]).decode("utf-8")
            frames = {
                role: inputs.load_frame(
                    self.store.get(sub[role]["digest"]),
                    sub[role]["format"],
                    source=role,
                    limits=self.decode_limits,
                )
                for role in ("train", "validation")
            }
            gate_inputs = GateInputs(
                model_text=model_text,
                train=frames["train"],
                validation=frames["validation"],
                target=sub["target"],
                protected=list(sub["protected"]),
                cutoff=Decimal(sub["cutoff"]),
                reason_texts=dict(sub.get("reason_texts", {})),
                schema_suite=sub.get("schema_suite"),
                recorded_contract=(
                    DataContract.from_canonical(sub["contract"]) if "contract" in sub else None
                ),
            )
        except GovregError as exc:
            results = [
                error_result(spec, f"inputs could not be loaded: {exc}").canonical()
                for spec in policy.gates
            ]
        else:
            for spec in policy.gates:
                say(f"gate {spec.id} ({spec.kind})")
                results.append(run_gate(spec, gate_inputs).canonical())
        return self._record_evaluation(actor, model, version, number, results)

    @records_refusals()
    def _record_evaluation(
        self,
        actor: Principal,
        model: str,
        version: int,
        evaluation: int,
        results: list[dict[str, Any]],
    ) -> Status:
        """Record one ``gate.evaluated`` per result and the outcome.

        Not a use case of its own: only :meth:`run_evaluation` calls it, with
        results it measured, so nobody can record results the gates did not
        produce (the tests call it to reach states without running gates).
        Each result is canonical gate-result data with at least ``gate_id``,
        ``kind``, ``verdict`` and ``blocking``. Fail closed: no results, or a
        blocking gate that did not pass, means ``gates_failed``.
        """
        self.authorize(actor, Action.EVALUATE, model=model, version=version)
        with self.transaction() as conn:
            row = self._version_row(conn, model, version)
            _require_own(actor, row, model, version)
            require(Move.COMPLETE_EVALUATION, self._status(row), subject=f"{model} v{version}")
            if int(row["evaluation"]) != evaluation:
                raise InputError(
                    f"{model} v{version} is on evaluation {row['evaluation']}, not {evaluation}"
                )
            events: list[NewEvent] = []
            digests: dict[str, str] = {}
            inputs_digests = {
                "artifact": row["artifact_digest"],
                "train": row["train_digest"],
                "validation": row["validation_digest"],
                "policy": row["policy_digest"],
            }
            # The recorded policy decides which gates block, not the caller's results.
            policy = self._policy_from_ledger(conn, model, version)
            failed = failing_gates(policy, results)
            for result in results:
                digest = hashlib.sha256(canonical_bytes(result)).hexdigest()
                digests[result["gate_id"]] = digest
                blocking = blocks(policy, result)
                events.append(
                    NewEvent(
                        type=EventType.GATE_EVALUATED,
                        actor=actor.name,
                        model=model,
                        version=version,
                        data={
                            "evaluation": evaluation,
                            "gate_id": result["gate_id"],
                            "kind": result["kind"],
                            "verdict": result["verdict"],
                            "blocking": blocking,
                            "policy_digest": row["policy_digest"],
                            "result_digest": digest,
                            "inputs": inputs_digests,
                            "result": result,
                        },
                        index={
                            "evaluation": evaluation,
                            "gate_id": result["gate_id"],
                            "verdict": result["verdict"],
                            "result_digest": digest,
                            "inputs": inputs_digests,
                            "values": result.get("values", {}),
                        },
                    )
                )
            status = Status.GATES_FAILED if failed else Status.AWAITING_SIGNOFF
            evidence = evidence_digest(row, digests)
            events.append(
                NewEvent(
                    type=EventType.EVALUATION_COMPLETED,
                    actor=actor.name,
                    model=model,
                    version=version,
                    data={
                        "evaluation": evaluation,
                        "status": status.value,
                        "evidence_digest": evidence,
                        "reason": "; ".join(failed) or None,
                        "gates": digests,
                    },
                    index={
                        "evaluation": evaluation,
                        "status": status.value,
                        "evidence_digest": evidence,
                    },
                )
            )
            self.record(conn, events)
        return status

    # -- sign-offs and approval ---------------------------------------------------
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
        self.authorize(actor, Action.SIGN, model=model, version=version)
        if role != actor.role:
            raise PermissionDenied(
                f"'{actor.name}' holds the role {actor.role} and cannot sign as {role}"
            )
        comment = comment.strip()
        if not approve and not comment:
            raise InputError("a rejection needs a reason: pass --comment")
        with self.transaction() as conn:
            row = self._version_row(conn, model, version)
            subject = f"{model} v{version}"
            require(Move.SIGN, self._status(row), subject=subject)
            policy = self._policy_from_ledger(conn, model, version)
            required = {req.role: req.count for req in policy.signoffs.required}
            if role not in required:
                raise PermissionDenied(
                    f"policy {policy.ref} does not ask for a {role} sign-off; "
                    f"it asks for {', '.join(required)}"
                )
            submitter, signed = self._path(conn, model, version)
            current = [
                s
                for s in signed
                if s["evidence_digest"] == row["evidence_digest"] and s["decision"] == "approve"
            ]
            counted = signers_by_role(current, evidence=row["evidence_digest"], submitter=submitter)
            seat = self.seat(conn, actor)
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
                        self.clock() + timedelta(days=policy.revalidation_days)
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
            self.record(conn, events)
        if status == Status.APPROVED:
            self.notify(model, version)
        return status

    def _policy_from_ledger(self, conn: Connection, model: str, version: int) -> Policy:
        history = VersionHistory.from_events(
            self.ledger.events(
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

    def _path(
        self, conn: Connection, model: str, version: int
    ) -> tuple[Seat, list[dict[str, Any]]]:
        """The version's submitter seat and its sign-offs (``principal`` plus the
        event's data), oldest first, from the ledger events the serving loader
        reads too: both count persons from the same recorded evidence."""
        submitter: Seat | None = None
        signoffs: list[dict[str, Any]] = []
        for event in self.ledger.events(
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

    # -- after approval ------------------------------------------------------------
    def promote(self, actor: Principal, model: str, version: int, *, alias: str) -> None:
        self.authorize(actor, Action.PROMOTE, model=model, version=version)
        _check_name(alias, "alias")
        with self.transaction() as conn:
            row = self._version_row(conn, model, version)
            require(Move.PROMOTE, self._status(row), subject=f"{model} v{version}")
            previous = DatabaseView(conn).get("aliases", (model, alias))
            if previous is not None and previous["version"] == version:
                raise InputError(f"{model}@{alias} already points to v{version}")
            self.record(
                conn,
                [
                    NewEvent(
                        type=EventType.ALIAS_SET,
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
                ],
            )
        self.notify(model, version)

    def _change(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        action: Action,
        move: Move,
        event_type: EventType,
        reason: str,
        new_status: Status,
    ) -> None:
        self.authorize(actor, action, model=model, version=version)
        if not reason.strip():
            raise InputError(f"{move} needs a reason: pass --reason")
        with self.transaction() as conn:
            row = self._version_row(conn, model, version)
            require(move, self._status(row), subject=f"{model} v{version}")
            self.record(
                conn,
                [
                    NewEvent(
                        type=event_type,
                        actor=actor.name,
                        model=model,
                        version=version,
                        data={"reason": reason.strip()},
                        index={"status": new_status.value},
                    )
                ],
            )
        self.notify(model, version)

    def suspend(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(
            actor,
            model,
            version,
            action=Action.SUSPEND,
            move=Move.SUSPEND,
            event_type=EventType.VERSION_SUSPENDED,
            reason=reason,
            new_status=Status.SUSPENDED,
        )

    def reinstate(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(
            actor,
            model,
            version,
            action=Action.REINSTATE,
            move=Move.REINSTATE,
            event_type=EventType.VERSION_REINSTATED,
            reason=reason,
            new_status=Status.APPROVED,
        )

    def retire(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._change(
            actor,
            model,
            version,
            action=Action.RETIRE,
            move=Move.RETIRE,
            event_type=EventType.VERSION_RETIRED,
            reason=reason,
            new_status=Status.RETIRED,
        )

    # -- reading -------------------------------------------------------------------
    def list_versions(self, actor: Principal, model: str | None = None) -> list[dict[str, Any]]:
        self.authorize(actor, Action.READ, model=model)
        with self.reading() as conn:
            view = DatabaseView(conn)
            if model is not None and view.get("models", (model,)) is None:
                raise NotFoundError(f"no model '{model}'; see `govreg versions list`")
            rows = view.where("versions", **({"model": model} if model else {}))
        return [
            {
                "model": r["model"],
                "version": r["version"],
                "status": self._status(r).value,
                "policy": f"{r['policy_id']}@{r['policy_version']}",
                "submitted_by": r["submitted_by"],
                "submitted_at": r["submitted_at"],
                "artifact_digest": r["artifact_digest"],
            }
            for r in sorted(rows, key=lambda r: (r["model"], r["version"]))
        ]

    def show_version(self, actor: Principal, model: str, version: int) -> dict[str, Any]:
        self.authorize(actor, Action.READ, model=model, version=version)
        with self.reading() as conn:
            row = self._version_row(conn, model, version)
            view = DatabaseView(conn)
            aliases = sorted(
                a["alias"] for a in view.where("aliases", model=model, version=version)
            )
            signoffs = sorted(
                view.where("signoffs", model=model, version=version), key=lambda s: s["seq"]
            )
            # One pass over the version's events: its policy and the current gate results.
            policy_doc: dict[str, Any] | None = None
            contract: dict[str, Any] | None = None
            gates = []
            for event in self.ledger.events(
                conn,
                model=model,
                version=version,
                types=[
                    EventType.VERSION_SUBMITTED,
                    EventType.EVALUATION_STARTED,
                    EventType.GATE_EVALUATED,
                ],
            ):
                if event.type == EventType.GATE_EVALUATED:
                    if event.data["evaluation"] == row["evaluation"]:
                        gates.append({"seq": event.seq, **event.data["result"]})
                elif "policy" in event.data:
                    policy_doc = event.data["policy"]
                if event.type == EventType.VERSION_SUBMITTED:
                    contract = event.data.get("contract")
            if policy_doc is None:
                raise NotFoundError(f"{model} v{version} has no submission event")
            policy = Policy.model_validate(policy_doc)
            submitter, signed = self._path(conn, model, version)
        counted = signers_by_role(signed, evidence=row["evidence_digest"], submitter=submitter)
        missing = [
            {"role": m["role"], "missing": m["missing"]} for m in missing_signoffs(policy, counted)
        ]
        return {
            "model": model,
            "version": version,
            "status": self._status(row).value,
            "stored_status": row["status"],
            "status_reason": row["status_reason"],
            "policy": {"id": policy.id, "version": policy.version, "digest": row["policy_digest"]},
            "artifact_digest": row["artifact_digest"],
            "train_digest": row["train_digest"],
            "validation_digest": row["validation_digest"],
            "target": row["target"],
            "protected": json.loads(row["protected"]),
            "features": json.loads(row["features"]),
            "contract": contract,
            "cutoff": row["cutoff"],
            "submitted_by": row["submitted_by"],
            "submitted_by_person": submitter.person,
            "submitted_at": row["submitted_at"],
            "evaluation": row["evaluation"],
            "evidence_digest": row["evidence_digest"],
            "approved_at": row["approved_at"],
            "approval_seq": row["approval_seq"],
            "revalidate_by": row["revalidate_by"],
            "aliases": aliases,
            "gates": gates,
            "signoffs": [
                {
                    "seq": s["seq"],
                    "role": s["role"],
                    "principal": s["principal"],
                    "person": s["person"],
                    "decision": s["decision"],
                    "signed_at": s["signed_at"],
                    "evidence_digest": s["evidence_digest"],
                    "current": s["evidence_digest"] == row["evidence_digest"],
                }
                for s in signoffs
            ],
            "signoffs_missing": missing if row["status"] == Status.AWAITING_SIGNOFF else [],
        }

    def audit_log(self, actor: Principal, *, model: str | None = None) -> Iterator[Event]:
        """The decrypted trail, oldest first. Only an admin sees the API-key hashes
        of ``principal.created`` events (the chain hashes the stored envelopes, so
        what is left out here changes nothing a verifier checks)."""
        self.authorize(actor, Action.READ, model=model)
        admin = actor.role == Role.ADMIN
        with self.reading() as conn:
            for event in self.ledger.events(conn, model=model):
                if admin or "key_hash" not in event.data:
                    yield event
                else:
                    data = {k: v for k, v in event.data.items() if k != "key_hash"}
                    yield dataclasses.replace(event, data=data)

    # -- verification ----------------------------------------------------------------
    def verify(
        self,
        actor: Principal | None,
        public_key: Ed25519PublicKey,
        *,
        anchor_dir: Path | None,
        authenticators: bool = True,
        workers: Workers = 1,
        chunk_level: int | None = None,
    ) -> VerifyReport:
        """Verify the ledger and prove the registry tables equal its replay; with
        ``authenticators``, also recompute every event's authenticator if this
        process can read the signing key of ``public_key``. ``workers`` and
        ``chunk_level`` as :func:`audits.verify.verify_ledger` takes them."""
        if actor is not None:
            self.authorize(actor, Action.VERIFY)
        replay = MemoryView()
        conn = read_only(self.engine)
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                report = verify_ledger(
                    conn,
                    self.ledger,
                    public_key,
                    anchor_dir=anchor_dir,
                    on_event=lambda e: apply(replay, e),
                    replay_types=PROJECTED_EVENTS,
                    authenticator_key=(
                        self.ledger.authenticator_key_for(public_key) if authenticators else None
                    ),
                    workers=workers,
                    chunk_level=chunk_level,
                )
                compare_projection(DatabaseView(conn), replay)
        finally:
            conn.close()
        return report


def _require_own(actor: Principal, row: dict[str, Any], model: str, version: int) -> None:
    """A data scientist evaluates only the versions they submitted."""
    if actor.role == Role.DATA_SCIENTIST and row["submitted_by"] != actor.name:
        raise PermissionDenied(
            f"'{actor.name}' may evaluate only their own versions; "
            f"{model} v{version} was submitted by '{row['submitted_by']}'"
        )


def _policy_proposed(actor: str, policy: Policy) -> NewEvent:
    return NewEvent(
        type=EventType.POLICY_PROPOSED,
        actor=actor,
        data={"policy": policy.canonical(), "digest": policy.digest},
        index={"policy": policy.ref, "digest": policy.digest},
    )


def _policy_approved(actor: str, policy: Policy, comment: str) -> NewEvent:
    return NewEvent(
        type=EventType.POLICY_APPROVED,
        actor=actor,
        data={
            "id": policy.id,
            "version": policy.version,
            "digest": policy.digest,
            "comment": comment,
        },
        index={"policy": policy.ref, "digest": policy.digest},
    )


def compare_projection(db: DatabaseView, replay: MemoryView) -> None:
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table, key, row in db.dump():
        seen.add((table, key))
        expected = replay.tables[table].get(key)
        if expected is None:
            raise VerificationFailed(
                f"registry table '{table}' has row {key} that no ledger event created"
            )
        for column, value in row.items():
            if expected.get(column) != value:
                raise VerificationFailed(
                    f"registry table '{table}' row {key}: {column} is {value!r} but the "
                    f"ledger replay gives {expected.get(column)!r}"
                )
    for table, rows in replay.tables.items():
        for key in rows:
            if (table, key) not in seen:
                raise VerificationFailed(
                    f"registry table '{table}' lacks row {key} that the ledger created"
                )


def _sql(statement: str) -> Any:
    from sqlalchemy import text

    return text(statement)


__all__ = ["Principal", "Registry", "VersionObserver", "evidence_digest"]
