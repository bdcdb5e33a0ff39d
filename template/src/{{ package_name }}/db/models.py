"""Tables of the service, as SQLAlchemy 2 declarative models.

Migrations (``migrations/versions``) create and change the tables; the application never does.
``tests/db/test_migrations.py`` checks that the migrations at head and these models agree.
"""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, MetaData, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: migrations can then drop or change them by a name that is the same on
# every database, instead of one PostgreSQL made up.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TITLE_MAX_LENGTH = 200


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Note(Base):
    """The example model. Replace it with your own; keep changes expand-then-contract (README)."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # Expand-contract in progress (migration 0002 renames the column "content" to "body").
    # This release writes both columns, so the previous release, still running during the
    # rollout, reads what this one writes; it reads "body" and falls back to "content" for rows
    # the previous release wrote. Next release: stop writing "content" (after a backfill of the
    # rows written meanwhile). The release after: drop "content" (README: Database changes).
    body: Mapped[str | None] = mapped_column(Text)
    legacy_content: Mapped[str | None] = mapped_column("content", Text)

    @property
    def body_text(self) -> str:
        """The note's text, whichever release wrote it."""
        if self.body is not None:
            return self.body
        return self.legacy_content or ""

    @classmethod
    def new(cls, title: str, body: str) -> "Note":
        return cls(title=title, body=body, legacy_content=body)
