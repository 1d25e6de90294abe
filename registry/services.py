"""The service layer the CLI, the API, serving, reports and the tests call: one
:class:`Registry` facade over the domain services, all on one
:class:`~registry.recorder.Recorder`.

The use cases live in the domain modules, one per domain:
:mod:`registry.principals`, :mod:`registry.policy_changes`,
:mod:`registry.submissions`, :mod:`registry.evaluations`,
:mod:`registry.signoffs`, :mod:`registry.transitions` and
:mod:`registry.queries`. Every state change appends its events to the ledger
and applies them to the projection tables in the same transaction, after
taking the writers' lock, and re-reads what it decides on inside that
transaction. The facade adds nothing: each of its calls is the owning
service's method (:class:`_Delegate`), with that method's signature and
documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, Unpack, overload

from registry.evaluations import Evaluations, evidence_digest
from registry.identity import NAME_RE, Principal, name_key
from registry.policy_changes import PolicyChanges
from registry.principals import BOOTSTRAP_ACTOR, KEY_PREFIX, Principals
from registry.queries import Queries, compare_projection
from registry.recorder import Limits, Recorder, VersionObserver
from registry.signoffs import Signoffs
from registry.submissions import Submissions
from registry.transitions import Transitions

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from audits.ledger import Ledger
    from registry.store import BlobStore
    from registry.vouching import PrincipalVouch

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


class _Delegate(Generic[S, P, R]):
    """``name = _Delegate("service", Service.name)``: on a :class:`Registry`, the
    method bound to that service; on the class, the service's own function (so
    its signature is what :func:`inspect.signature` and mypy see)."""

    def __init__(self, service: str, method: Callable[Concatenate[S, P], R]) -> None:
        self.service = service
        self.method = method

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[Concatenate[S, P], R]: ...
    @overload
    def __get__(self, obj: Registry, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Registry | None, owner: type) -> Any:
        if obj is None:
            return self.method
        return self.method.__get__(getattr(obj, self.service), type(obj))


class Registry:
    def __init__(
        self, engine: Engine, ledger: Ledger, store: BlobStore, **limits: Unpack[Limits]
    ) -> None:
        self.recorder = Recorder(engine, ledger, store, **limits)
        self.principals = Principals(self.recorder)
        self.policies = PolicyChanges(self.recorder)
        self.submissions = Submissions(self.recorder)
        self.evaluations = Evaluations(self.recorder)
        self.signoffs = Signoffs(self.recorder)
        self.transitions = Transitions(self.recorder)
        self.queries = Queries(self.recorder)

    # -- the recorder ------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self.recorder.engine

    @property
    def ledger(self) -> Ledger:
        return self.recorder.ledger

    @property
    def store(self) -> BlobStore:
        return self.recorder.store

    @property
    def vouch(self) -> PrincipalVouch:
        return self.recorder.vouch

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.recorder.clock

    transaction = _Delegate("recorder", Recorder.transaction)
    reading = _Delegate("recorder", Recorder.reading)
    record = _Delegate("recorder", Recorder.record)
    record_event = _Delegate("recorder", Recorder.record_event)
    ensure_covered = _Delegate("recorder", Recorder.ensure_covered)
    authorize = _Delegate("recorder", Recorder.authorize)
    authorize_model = _Delegate("recorder", Recorder.authorize_model)
    refused = _Delegate("recorder", Recorder.refused)
    count_unauthenticated = _Delegate("recorder", Recorder.count_unauthenticated)
    flush_denials = _Delegate("recorder", Recorder.flush_denials)

    # -- principals and keys -----------------------------------------------------
    authenticate = _Delegate("principals", Principals.authenticate)
    bootstrap = _Delegate("principals", Principals.bootstrap)
    record_upgrade = _Delegate("principals", Principals.record_upgrade)
    create_person = _Delegate("principals", Principals.create_person)
    list_persons = _Delegate("principals", Principals.list_persons)
    create_principal = _Delegate("principals", Principals.create_principal)
    revoke_principal = _Delegate("principals", Principals.revoke_principal)
    list_principals = _Delegate("principals", Principals.list_principals)
    rotate_data_key = _Delegate("principals", Principals.rotate_data_key)
    rotate_kek = _Delegate("principals", Principals.rotate_kek)

    # -- policies ----------------------------------------------------------------
    propose_policy = _Delegate("policies", PolicyChanges.propose_policy)
    approve_policy = _Delegate("policies", PolicyChanges.approve_policy)
    list_policies = _Delegate("policies", PolicyChanges.list_policies)
    get_policy = _Delegate("policies", PolicyChanges.get_policy)

    # -- submissions -------------------------------------------------------------
    submit = _Delegate("submissions", Submissions.submit)
    submission = _Delegate("submissions", Submissions.submission)
    policy_of = _Delegate("submissions", Submissions.policy_of)

    # -- evaluations -------------------------------------------------------------
    start_evaluation = _Delegate("evaluations", Evaluations.start_evaluation)
    evaluate = _Delegate("evaluations", Evaluations.evaluate)
    run_evaluation = _Delegate("evaluations", Evaluations.run_evaluation)

    # -- sign-offs ---------------------------------------------------------------
    signoff = _Delegate("signoffs", Signoffs.signoff)

    # -- after approval ----------------------------------------------------------
    promote = _Delegate("transitions", Transitions.promote)
    suspend = _Delegate("transitions", Transitions.suspend)
    reinstate = _Delegate("transitions", Transitions.reinstate)
    retire = _Delegate("transitions", Transitions.retire)

    # -- queries -----------------------------------------------------------------
    list_versions = _Delegate("queries", Queries.list_versions)
    show_version = _Delegate("queries", Queries.show_version)
    audit_log = _Delegate("queries", Queries.audit_log)
    verify = _Delegate("queries", Queries.verify)


__all__ = [
    "BOOTSTRAP_ACTOR",
    "KEY_PREFIX",
    "NAME_RE",
    "Principal",
    "Registry",
    "VersionObserver",
    "compare_projection",
    "evidence_digest",
    "name_key",
]
