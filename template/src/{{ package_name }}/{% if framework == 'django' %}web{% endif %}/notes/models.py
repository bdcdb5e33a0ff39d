"""The notes table, as a Django model.

Migrations (``migrations/``, applied by ``python -m <package> migrate``) create and change the
table; the application never does. ``python -m <package> manage makemigrations`` writes the next
one from a change here (the tests check that none is missing).
"""

# Field annotations stay unevaluated: Django's field classes are generic for type checkers only.
from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Self

from django.db import models
from django.db.models.functions import Now

from . import TITLE_MAX_LENGTH


class Note(models.Model):
    """The example model. Replace it with your own; keep changes expand-then-contract (README)."""

    # Annotated for mypy: the field types Django returns (django-stubs, without a plugin).
    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    title: models.CharField[str, str] = models.CharField(max_length=TITLE_MAX_LENGTH)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(db_default=Now())
    # Expand-contract in progress (migration 0002 renames the column "content" to "body").
    # This release writes both columns, so the previous release, still running during the
    # rollout, reads what this one writes; it reads "body" and falls back to "content" for rows
    # the previous release wrote. Next release: stop writing "content" (after a backfill of the
    # rows written meanwhile). The release after: drop "content" (README: Database changes).
    body: models.TextField[str | None, str | None] = models.TextField(null=True)
    content: models.TextField[str | None, str | None] = models.TextField(null=True)

    objects: ClassVar[models.Manager[Self]] = models.Manager()

    class Meta:
        db_table = "notes"

    @property
    def body_text(self) -> str:
        """The note's text, whichever release wrote it."""
        if self.body is not None:
            return self.body
        return self.content or ""

    @classmethod
    def new(cls, title: str, body: str) -> Self:
        return cls(title=title, body=body, content=body)
