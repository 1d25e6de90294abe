"""The recorder every domain service sits on.

It holds what a use case needs to change state (the engine, the ledger, the
blob store, the clock and the limits) and the three things every use case
does: take a write transaction (:meth:`Recorder.transaction`: the writers'
lock, the ledger and its projection in one transaction), record events in it
(:meth:`Recorder.record_event`), and check and count who may act
(:meth:`Recorder.authorize`, :meth:`Recorder.refused`). Each domain module of
:mod:`registry` is a :class:`Service` on one recorder; the domain modules never
import each other.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, Unpack

from audits.events import Event, EventType, NewEvent
from core.clock import utcnow
from core.db import read_only
from core.errors import AuthError, GovregError, PermissionDenied, TooManyRequests, quote
from core.turns import folder_turn
from registry import denials
from registry.decoding import DecodeLimits
from registry.denials import Denial, DenialLimits
from registry.identity import NAME_RE, Principal
from registry.mlflow_source import redact
from registry.projection import DatabaseView, apply
from registry.roles import Action, allowed
from registry.store import BlobStore
from registry.vouching import PrincipalVouch

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from audits.ledger import Ledger
    from registry.mlflow_source import ArtifactRules

log = logging.getLogger("registry.services")

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=GovregError)


class VersionObserver(Protocol):
    """Told after a version's approval, promotion, suspension, reinstatement or
    retirement has committed (e.g. the MLflow mirror). The ledger is the truth:
    an observer that fails is logged and never undoes the committed change."""

    def version_changed(self, recorder: Recorder, model: str, version: int) -> None: ...


class Limits(TypedDict, total=False):
    """What a deployment sets on a recorder (from its settings); each has a default."""

    max_upload_bytes: int
    decode_limits: DecodeLimits | None
    clock: Callable[[], datetime]
    mlflow_tracking_uri: str | None
    mlflow_artifact_rules: ArtifactRules | None
    observers: Sequence[VersionObserver]
    denial_limits: DenialLimits | None


class Recorder:
    def __init__(
        self, engine: Engine, ledger: Ledger, store: BlobStore, **limits: Unpack[Limits]
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.vouch = PrincipalVouch(ledger)
        self.store = store
        self.max_upload_bytes = limits.get("max_upload_bytes", 512 * 1024 * 1024)
        self.decode_limits = limits.get("decode_limits") or DecodeLimits()
        self.clock = limits.get("clock", utcnow)
        self.mlflow_tracking_uri = limits.get("mlflow_tracking_uri")
        self.mlflow_artifact_rules = limits.get("mlflow_artifact_rules")
        self.observers = tuple(limits.get("observers", ()))
        self.denial_limits = limits.get("denial_limits") or DenialLimits()

    # -- transactions and events ---------------------------------------------------
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
        """Append ``events`` to the ledger and apply them to the projection tables."""
        stored = self.ledger.append(conn, events)
        view = DatabaseView(conn)
        for event in stored:
            apply(view, event)
        return stored

    def record_event(
        self,
        conn: Connection,
        *,
        tag: EventType,
        actor: str,
        model: str | None = None,
        version: int | None = None,
        data: dict[str, Any] | None = None,
        index: dict[str, Any] | None = None,
    ) -> Event:
        """Record one event (``tag`` is its type) in the transaction ``conn``."""
        event = NewEvent(
            type=tag,
            actor=actor,
            model=model,
            version=version,
            data=data or {},
            index=index or {},
        )
        return self.record(conn, [event])[0]

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

    # -- who may act -----------------------------------------------------------------
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


class Service:
    """A domain service: use cases on one :class:`Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder


def records_refusals(
    *, model: str | None = "model", version: str | None = "version"
) -> Callable[[F], F]:
    """Refusals raised inside a use case (segregation of duties, own versions only)
    are counted (:meth:`Recorder.refused`) once its transaction rolled back, about
    the model and version the parameters named ``model`` and ``version`` hold (None:
    the use case is about no version, e.g. a policy's adoption)."""

    def decorate(method: F) -> F:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self: Service, actor: Principal, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, actor, *args, **kwargs)
            except PermissionDenied as exc:
                bound = signature.bind_partial(self, actor, *args, **kwargs).arguments
                raise self.recorder.refused(
                    actor,
                    exc,
                    action=method.__name__.strip("_"),
                    model=bound.get(model) if model else None,
                    version=bound.get(version) if version else None,
                ) from None

        return wrapper  # type: ignore[return-value]

    return decorate
