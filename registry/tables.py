"""The registry's tables: a projection of the ledger.

Every row here is written by :mod:`registry.projection` from a ledger event,
in the same transaction as the event; ``govreg audit verify`` replays the
ledger and proves these tables equal the replay. Timestamps are the ledger's
UTC text form; lists are canonical JSON text.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, String, Text
from sqlmodel import Field, SQLModel


def _s(length: int, *, pk: bool = False, nullable: bool = False, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(String(length), primary_key=pk, nullable=nullable, index=index)


class PersonRow(SQLModel, table=True):
    """A human that principals belong to: sign-offs count persons, not principal names."""

    __tablename__ = "persons"

    id: str = Field(sa_column=_s(200, pk=True))
    display: str = Field(sa_column=_s(200))
    created_at: str = Field(sa_column=_s(32))
    created_by: str = Field(sa_column=_s(200))


class PrincipalRow(SQLModel, table=True):
    __tablename__ = "principals"

    name: str = Field(sa_column=_s(200, pk=True))
    role: str = Field(sa_column=_s(40))
    person: str = Field(sa_column=_s(200, index=True))
    # a service principal's scope: canonical JSON list of model names; NULL is unscoped
    models: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    key_prefix: str = Field(sa_column=Column(String(16), nullable=False, unique=True))
    key_hash: str = Field(sa_column=_s(64))
    created_at: str = Field(sa_column=_s(32))
    created_by: str = Field(sa_column=_s(200))
    expires_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))
    revoked_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))


class ModelRow(SQLModel, table=True):
    __tablename__ = "models"

    name: str = Field(sa_column=_s(200, pk=True))
    created_at: str = Field(sa_column=_s(32))
    created_by: str = Field(sa_column=_s(200))


class VersionRow(SQLModel, table=True):
    __tablename__ = "versions"

    model: str = Field(sa_column=_s(200, pk=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    status: str = Field(sa_column=_s(32, index=True))
    policy_id: str = Field(sa_column=_s(100))
    policy_version: int = Field(sa_column=Column(Integer, nullable=False))
    policy_digest: str = Field(sa_column=_s(64))
    artifact_digest: str = Field(sa_column=_s(64))
    train_digest: str = Field(sa_column=_s(64))
    validation_digest: str = Field(sa_column=_s(64))
    target: str = Field(sa_column=_s(200))
    protected: str = Field(sa_column=Column(Text, nullable=False))
    features: str = Field(sa_column=Column(Text, nullable=False))
    cutoff: str = Field(sa_column=_s(32))
    submitted_by: str = Field(sa_column=_s(200))
    submitted_at: str = Field(sa_column=_s(32))
    evaluation: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    evidence_digest: str | None = Field(default=None, sa_column=_s(64, nullable=True))
    approved_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))
    approval_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revalidate_by: str | None = Field(default=None, sa_column=_s(32, nullable=True))
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: str = Field(sa_column=_s(32))


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"

    digest: str = Field(sa_column=_s(64, pk=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    format: str = Field(sa_column=_s(40))
    stored_at: str = Field(sa_column=_s(32))


class DatasetRow(SQLModel, table=True):
    __tablename__ = "datasets"

    digest: str = Field(sa_column=_s(64, pk=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    format: str = Field(sa_column=_s(16))
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))
    columns: str = Field(sa_column=Column(Text, nullable=False))
    stored_at: str = Field(sa_column=_s(32))


class GateResultRow(SQLModel, table=True):
    __tablename__ = "gate_results"

    model: str = Field(sa_column=_s(200, pk=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    evaluation: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    gate_id: str = Field(sa_column=_s(100, pk=True))
    kind: str = Field(sa_column=_s(40))
    verdict: str = Field(sa_column=_s(32))
    blocking: bool = Field(sa_column=Column(Boolean, nullable=False))
    policy_digest: str = Field(sa_column=_s(64))
    result_digest: str = Field(sa_column=_s(64))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class SignoffRow(SQLModel, table=True):
    __tablename__ = "signoffs"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    model: str = Field(sa_column=_s(200, index=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    role: str = Field(sa_column=_s(40))
    principal: str = Field(sa_column=_s(200))
    person: str = Field(sa_column=_s(200))
    decision: str = Field(sa_column=_s(16))
    evidence_digest: str = Field(sa_column=_s(64))
    signed_at: str = Field(sa_column=_s(32))


class AliasRow(SQLModel, table=True):
    __tablename__ = "aliases"

    model: str = Field(sa_column=_s(200, pk=True))
    alias: str = Field(sa_column=_s(100, pk=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    set_at: str = Field(sa_column=_s(32))
    set_by: str = Field(sa_column=_s(200))


class PolicyRow(SQLModel, table=True):
    """A policy version: proposed, then adopted when a compliance officer approves it."""

    __tablename__ = "policies"

    id: str = Field(sa_column=_s(100, pk=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    digest: str = Field(sa_column=_s(64))
    status: str = Field(sa_column=_s(16))
    canonical: str = Field(sa_column=Column(Text, nullable=False))
    proposed_by: str = Field(sa_column=_s(200))
    proposed_at: str = Field(sa_column=_s(32))
    approved_by: str | None = Field(default=None, sa_column=_s(200, nullable=True))
    approved_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))


PROJECTION_TABLES: dict[str, type[SQLModel]] = {
    "policies": PolicyRow,
    "persons": PersonRow,
    "principals": PrincipalRow,
    "models": ModelRow,
    "versions": VersionRow,
    "artifacts": ArtifactRow,
    "datasets": DatasetRow,
    "gate_results": GateResultRow,
    "signoffs": SignoffRow,
    "aliases": AliasRow,
}


# -- not a projection -----------------------------------------------------------------
# Counters of refusals (registry.denials): they are working state, not history, and no
# ledger event writes them, so `audit verify` does not compare them with the replay
# (they are deliberately absent from PROJECTION_TABLES). What they count reaches the
# ledger as `access.denied.aggregated` events when their interval ends.


class DenialTallyRow(SQLModel, table=True):
    """Refusals of one subject and action in the interval that began with the one
    recorded at once: ``pending`` more were refused since (``limited`` of them answered
    429) and are not in the ledger yet."""

    __tablename__ = "denial_tally"

    subject: str = Field(sa_column=_s(300, pk=True))
    action: str = Field(sa_column=_s(64, pk=True))
    actor: str = Field(sa_column=_s(200))
    role: str | None = Field(default=None, sa_column=_s(40, nullable=True))
    window_start: str = Field(sa_column=_s(32))
    window_end: str = Field(sa_column=_s(32, index=True))
    pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    limited: int = Field(sa_column=Column(BigInteger, nullable=False))
    first_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))
    last_at: str | None = Field(default=None, sa_column=_s(32, nullable=True))


class DenialRateRow(SQLModel, table=True):
    """Refusals of one subject (a principal, or the address of callers without a valid
    credential) in its current interval; over the limit they are answered 429."""

    __tablename__ = "denial_rate"

    subject: str = Field(sa_column=_s(300, pk=True))
    window_end: str = Field(sa_column=_s(32))
    refusals: int = Field(sa_column=Column(BigInteger, nullable=False))


NOT_PROJECTED: frozenset[str] = frozenset({"denial_tally", "denial_rate"})
