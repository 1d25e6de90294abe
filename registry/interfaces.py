"""What the CLI and the SDK may ask of govreg, local or remote: one Protocol.

:class:`RegistryAPI` is implemented twice: by :class:`registry.services.Registry`
(the local service layer, on a home's database) and by
:class:`govreg.client.RemoteRegistry` (the same calls over the HTTP API, where the
server's service layer enforces every rule). The CLI and the SDK hold a
:class:`Session`, never a concrete class, so a call one side lacks, or takes with
other arguments, is a type error; ``tests/registry/test_interfaces.py`` also walks
both implementations against the Protocol, parameter by parameter.

This module stays light: the CLI imports it to type its commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from audits.events import Event
    from audits.verify import VerifyReport, Workers
    from policies.schema import Policy
    from registry.identity import Principal
    from registry.lifecycle import Status


class RegistryAPI(Protocol):
    """The use cases a principal drives; every call names its acting principal
    (remotely the server authenticates the API key instead, and ``actor`` is the
    placeholder of :meth:`Session.principal`)."""

    # -- people and principals
    def create_person(self, actor: Principal, person_id: str, *, display: str) -> dict[str, Any]:
        """Record a natural person principals can belong to."""
        ...

    def list_persons(self, actor: Principal) -> list[dict[str, Any]]: ...

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
        """A new principal and its API key (shown once)."""
        ...

    def list_principals(self, actor: Principal) -> list[Principal]: ...

    def revoke_principal(self, actor: Principal, name: str) -> None: ...

    # -- versions
    def submit(
        self,
        actor: Principal,
        model: str,
        *,
        artifact: Path | str,
        train: Path,
        validation: Path,
        target: str,
        protected: list[str],
        policy_id: str | None = None,
        cutoff: str | None = None,
        reason_texts: dict[str, Any] | None = None,
        schema_suite: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> int:
        """Record a candidate version; its number. ``artifact`` is a LightGBM text
        model file or an MLflow ``runs:/`` or ``models:/`` URI."""
        ...

    def evaluate(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        policy_id: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Status:
        """Run every gate of the version's policy; the status it ends in."""
        ...

    def signoff(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        role: str,
        approve: bool,
        comment: str,
    ) -> Status: ...

    def list_versions(self, actor: Principal, model: str | None = None) -> list[dict[str, Any]]: ...

    def show_version(self, actor: Principal, model: str, version: int) -> dict[str, Any]: ...

    def promote(self, actor: Principal, model: str, version: int, *, alias: str) -> None: ...

    def suspend(self, actor: Principal, model: str, version: int, *, reason: str) -> None: ...

    def reinstate(self, actor: Principal, model: str, version: int, *, reason: str) -> None: ...

    def retire(self, actor: Principal, model: str, version: int, *, reason: str) -> None: ...

    # -- audit and policies
    def audit_log(self, actor: Principal, *, model: str | None = None) -> Iterator[Event]:
        """The decrypted trail, oldest first."""
        ...

    def list_policies(self, actor: Principal) -> list[dict[str, Any]]: ...

    def propose_policy(self, actor: Principal, policy: Policy) -> None: ...

    def approve_policy(self, actor: Principal, ref: str, *, comment: str) -> Policy: ...


@dataclass(frozen=True)
class Download:
    """A version's report or evidence bundle: its bytes and their SHA-256; a bundle
    made locally also says how many events it proves against which checkpoint size
    (a server's download does not say)."""

    data: bytes
    sha256: str
    events: int | None = None
    checkpoint: int | None = None


class Session(Protocol):
    """A CLI or SDK session: a local home, or a server named by ``GOVREG_URL``.

    Besides the :class:`RegistryAPI` calls, a session does what needs the home's
    files (its keys and anchors, the report renderer) locally, or asks the server,
    which does it with its own."""

    @property
    def registry(self) -> RegistryAPI: ...

    @property
    def remote(self) -> bool:
        """True when the calls go to a server."""
        ...

    def principal(self) -> Principal:
        """The acting principal (remotely a placeholder: the server authenticates)."""
        ...

    def verify(
        self,
        public_key: Path | None = None,
        *,
        anchors: Path | None = None,
        workers: Workers | None = None,
    ) -> VerifyReport:
        """Verify the ledger: locally against ``public_key`` and ``anchors`` (default:
        the home's) with ``workers`` processes; remotely the server verifies with its
        key and anchors (a ``public_key`` given must be that key; ``anchors`` and
        ``workers`` are refused)."""
        ...

    def report(self, model: str, version: int) -> Download:
        """The version's PDF/A-3b compliance report."""
        ...

    def evidence(self, model: str, version: int) -> Download:
        """The version's evidence bundle (events, proofs, checkpoint, report)."""
        ...

    def close(self) -> None: ...
