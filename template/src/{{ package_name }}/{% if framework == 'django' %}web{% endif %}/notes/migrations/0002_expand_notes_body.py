"""Expand: start renaming notes.content to notes.body (add the column, backfill in batches).

Expand-contract, the expand step. The release before this one keeps working on the new schema:
it writes "content" (no longer required) and never looks at "body". The release shipping this
migration writes both columns and reads "body", falling back to "content". The contract step,
which drops "content", is a migration of a later release, once no running release reads
"content" any more (README: Database changes).

The migration is not atomic: each schema change commits on its own, then the backfill runs one
short transaction per batch of rows walked in primary-key order: no table-wide row locks, no huge
transaction, and an interrupted run picks up where it stopped (``body IS NULL``).
"""

import logging
from typing import Any, ClassVar

from django.db import migrations, models, transaction
from django.db.migrations.operations.base import Operation

BATCH_SIZE = 1000

logger = logging.getLogger(__name__)


def backfill_body(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    last_id, total = 0, 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                "SELECT max(id) FROM "
                "(SELECT id FROM notes WHERE id > %s ORDER BY id LIMIT %s) AS batch",
                [last_id, BATCH_SIZE],
            )
            batch_end = cursor.fetchone()[0]
            if batch_end is None:
                break
            cursor.execute(
                "UPDATE notes SET body = content WHERE id > %s AND id <= %s AND body IS NULL",
                [last_id, batch_end],
            )
            updated = cursor.rowcount
        total += updated
        last_id = batch_end
        logger.info("backfilled notes.body: %d rows in this batch, %d in all", updated, total)


def restore_content(apps: Any, schema_editor: Any) -> None:
    # Rows written since the upgrade have "content" too (this release writes both), but a row
    # written by a later release may not: copy it back before "content" is required again.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("UPDATE notes SET content = coalesce(body, '') WHERE content IS NULL")


class Migration(migrations.Migration):
    atomic = False

    dependencies: ClassVar[list[tuple[str, str]]] = [("notes", "0001_create_notes")]

    operations: ClassVar[list[Operation]] = [
        migrations.AddField(model_name="note", name="body", field=models.TextField(null=True)),
        migrations.AlterField(model_name="note", name="content", field=models.TextField(null=True)),
        migrations.RunPython(backfill_body, restore_content, atomic=False),
    ]
