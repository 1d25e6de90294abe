"""decision ids

A decision's ``decision_id``: 32 lowercase hex digits (UUID 4) given to the
caller with the decision, by which outcomes and overrides name it later. In
plaintext (it identifies a record, not an applicant), unique, and sealed in the
ciphertext and covered by the leaf hash like the other plaintext fields. NULL
for decisions written before: their records hash and verify as they were
written.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("decision_id", sa.String(32), nullable=True))
    op.create_index("ix_decisions_decision_id", "decisions", ["decision_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_decisions_decision_id", table_name="decisions")
    op.drop_column("decisions", "decision_id")
