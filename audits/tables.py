"""The ledger's tables. Created only by the migrations (see migrations/)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

EVENTS_TABLE = "ledger_events"
CHECKPOINTS_TABLE = "ledger_checkpoints"
NODES_TABLE = "ledger_tree_nodes"
DATA_KEYS_TABLE = "ledger_data_keys"
EXPIRING_KEYS_TABLE = "expiring_data_keys"


class LedgerEventRow(SQLModel, table=True):
    """One stored event: plaintext envelope fields, encrypted payload, hashes, and
    the authenticator only a holder of the signing key can make."""

    __tablename__ = EVENTS_TABLE

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    recorded_at: str = Field(sa_column=Column(String(32), nullable=False))
    event_type: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    actor: str = Field(sa_column=Column(String(200), nullable=False))
    model: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    version: int | None = Field(default=None, sa_column=Column(Integer))
    index_fields: str = Field(sa_column=Column(Text, nullable=False))
    key_id: str = Field(sa_column=Column(String(64), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    chain_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # NULL only in a ledger not yet upgraded by ``govreg init`` (verify fails it).
    authenticator: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class CheckpointRow(SQLModel, table=True):
    """A signed checkpoint (size, root, time). ``frontier`` is unsigned help
    for computing the next root incrementally: the writer checks it leads to the
    signed root before building on it, and verification recomputes it."""

    __tablename__ = CHECKPOINTS_TABLE

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    issued_at: str = Field(sa_column=Column(String(32), nullable=False))
    key_fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    frontier: str = Field(sa_column=Column(Text, nullable=False))


class TreeNodeRow(SQLModel, table=True):
    """A complete subtree of the Merkle tree (level >= 1): the hash of the ``2**level``
    leaves ending at ``last_seq``. Written with the checkpoint that first covers it, so
    every subtree inside the latest checkpoint is stored and a proof reads O(log n)
    rows; verification recomputes every one."""

    __tablename__ = NODES_TABLE

    last_seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DataKeyRow(SQLModel, table=True):
    """A data key, wrapped (AES-256-GCM) by the key-encryption key."""

    __tablename__ = DATA_KEYS_TABLE

    key_id: str = Field(sa_column=Column(String(64), primary_key=True))
    created_at: str = Field(sa_column=Column(String(32), nullable=False))
    kek_id: str = Field(sa_column=Column(String(64), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ExpiringKeyRow(SQLModel, table=True):
    """A data key for one purpose and period (e.g. the decision log's inputs whose
    retention ends in one month), wrapped by the KEK like the ledger's data keys.
    Destroying the row after ``expires_at`` erases everything encrypted under it
    (crypto-shredding); the guard rails refuse an earlier DELETE and any UPDATE
    other than a re-wrap."""

    __tablename__ = EXPIRING_KEYS_TABLE
    __table_args__ = (UniqueConstraint("purpose", "period", name="uq_expiring_data_keys_period"),)

    key_id: str = Field(sa_column=Column(String(64), primary_key=True))
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    period: str = Field(sa_column=Column(String(16), nullable=False))
    expires_at: str = Field(sa_column=Column(String(32), nullable=False))
    created_at: str = Field(sa_column=Column(String(32), nullable=False))
    kek_id: str = Field(sa_column=Column(String(64), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
