"""The decision log's tables. Created only by the migrations (see migrations/)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

DECISIONS_TABLE = "decisions"
DECISION_BATCHES_TABLE = "decision_batches"


class DecisionRow(SQLModel, table=True):
    """One credit decision: plaintext fields an auditor queries, the applicant's
    inputs encrypted (AES-256-GCM), and the leaf hash over the stored record."""

    __tablename__ = DECISIONS_TABLE

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    batch: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    recorded_at: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    model: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    approval_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    input_digest: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    score: str = Field(sa_column=Column(String(40), nullable=False))
    decision: str = Field(sa_column=Column(String(16), nullable=False))
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    retain_until: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    # features scored outside what the model was validated on (RFC 8785 JSON object);
    # NULL for decisions written before flags were recorded (migration 0005)
    flags: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # the id the caller was answered with (32 hex digits), by which outcomes and
    # overrides name the decision; NULL for decisions written before ids (migration 0010)
    decision_id: str | None = Field(
        default=None, sa_column=Column(String(32), nullable=True, index=True, unique=True)
    )
    key_id: str = Field(sa_column=Column(String(64), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DecisionBatchRow(SQLModel, table=True):
    """One written batch: the Merkle root of its decisions' leaves, the chain
    hash over the previous batch, and an Ed25519 signature over its note."""

    __tablename__ = DECISION_BATCHES_TABLE

    batch: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    first_seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    written_at: str = Field(sa_column=Column(String(32), nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    batch_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
