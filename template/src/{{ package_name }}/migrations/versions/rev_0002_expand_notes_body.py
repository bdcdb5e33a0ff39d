"""Expand: start renaming notes.content to notes.body (add the column, backfill in batches).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01 00:00:01

Expand-contract, the expand step. The release before this one keeps working on the new schema:
it writes "content" (no longer required) and never looks at "body". The release shipping this
revision writes both columns and reads "body", falling back to "content". The contract step,
which drops "content", is a revision of a later release, once no running release reads
"content" any more (README: Database changes).

The backfill runs outside the DDL transaction, one short transaction per batch of rows walked
in primary-key order: no table-wide row locks, no huge transaction, and an interrupted run
picks up where it stopped (the DDL above it is written to be re-run).
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_SIZE = 1000

logger = logging.getLogger(__name__)


def upgrade() -> None:
    op.add_column("notes", sa.Column("body", sa.Text(), nullable=True), if_not_exists=True)
    op.alter_column("notes", "content", existing_type=sa.Text(), nullable=True)
    with op.get_context().autocommit_block():
        backfill_body()


def backfill_body() -> None:
    connection = op.get_bind()
    last_id, total = 0, 0
    while True:
        batch_end = connection.scalar(
            sa.text(
                "SELECT max(id) FROM "
                "(SELECT id FROM notes WHERE id > :after ORDER BY id LIMIT :size) AS batch"
            ),
            {"after": last_id, "size": BATCH_SIZE},
        )
        if batch_end is None:
            break
        updated = connection.execute(
            sa.text(
                "UPDATE notes SET body = content "
                "WHERE id > :after AND id <= :until AND body IS NULL"
            ),
            {"after": last_id, "until": batch_end},
        ).rowcount
        total += updated
        last_id = batch_end
        logger.info("backfilled notes.body: %d rows in this batch, %d in all", updated, total)


def downgrade() -> None:
    # Rows written since the upgrade have "content" too (this release writes both), but a row
    # written by a later release may not: copy it back before "content" is required again.
    op.execute("UPDATE notes SET content = coalesce(body, '') WHERE content IS NULL")
    op.alter_column("notes", "content", existing_type=sa.Text(), nullable=False)
    op.drop_column("notes", "body")
