"""denial tally and rate counters

Repeated refusals are counted, not appended one by one: ``denial_tally``
holds, per subject (a principal, or the address of callers without a valid
credential) and action, the refusals of the current interval that are not in
the ledger yet; ``denial_rate`` counts a subject's refusals in its interval,
for the 429 over the limit. Neither is a projection of the ledger (no event
writes them), so ``audit verify`` leaves them out of its replay comparison.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "denial_tally",
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("window_start", sa.String(length=32), nullable=False),
        sa.Column("window_end", sa.String(length=32), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("limited", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.String(length=32), nullable=True),
        sa.Column("last_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("subject", "action"),
    )
    with op.batch_alter_table("denial_tally", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_denial_tally_window_end"), ["window_end"], unique=False
        )
    op.create_table(
        "denial_rate",
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("window_end", sa.String(length=32), nullable=False),
        sa.Column("refusals", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )


def downgrade() -> None:
    op.drop_table("denial_rate")
    with op.batch_alter_table("denial_tally", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_denial_tally_window_end"))
    op.drop_table("denial_tally")
