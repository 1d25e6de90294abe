"""decision log

The serving side's decision log: one row per credit decision (applicant
inputs encrypted, the fields an auditor queries in plaintext, a leaf hash over
the stored record) and one row per written batch (Merkle root, chain hash,
Ed25519 signature). Both tables get the ledger's append-only guard rails:
triggers that reject UPDATE and DELETE (SQLite and PostgreSQL) and TRUNCATE
(PostgreSQL), reusing 0001's ``govreg_append_only()`` function.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

APPEND_ONLY = ("decisions", "decision_batches")

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_guard_rails() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
                )
        else:  # govreg_append_only() is created by 0001
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION govreg_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION govreg_append_only()"
            )


def _drop_guard_rails() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")


def upgrade() -> None:
    op.create_table(
        "decision_batches",
        sa.Column("batch", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("written_at", sa.String(length=32), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("batch_hash", sa.LargeBinary(), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("batch"),
        sa.UniqueConstraint("first_seq"),
        sa.UniqueConstraint("last_seq"),
    )
    op.create_table(
        "decisions",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("approval_seq", sa.BigInteger(), nullable=False),
        sa.Column("input_digest", sa.String(length=64), nullable=False),
        sa.Column("score", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("retain_until", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_input_digest"), ["input_digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_retain_until"), ["retain_until"], unique=False)
    _create_guard_rails()


def downgrade() -> None:
    _drop_guard_rails()
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_retain_until"))
        batch_op.drop_index(batch_op.f("ix_decisions_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_model"))
        batch_op.drop_index(batch_op.f("ix_decisions_input_digest"))
        batch_op.drop_index(batch_op.f("ix_decisions_batch"))
    op.drop_table("decisions")
    op.drop_table("decision_batches")
