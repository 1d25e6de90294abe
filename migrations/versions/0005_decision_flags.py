"""decision flags

A decision's ``flags``: the features scored outside what the model was
validated on (a number outside the training range, a category the model never
saw scored as missing), as RFC 8785 JSON, e.g. ``{"out_of_range":["income"]}``,
in plaintext so monitoring can count them. Sealed in the ciphertext and
covered by the leaf hash like the other plaintext fields. NULL for decisions
written before: their records hash and verify as they were written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("flags", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("decisions", "flags")
