"""Example database routes: create, read and list notes, each in one short transaction.

Replace them with your own; keep the pattern: validate before touching the database, hold a
connection only for the statements, bound every list.
"""

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, post, status_codes
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter, QueryParameter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..db.models import TITLE_MAX_LENGTH, Note
from .db import DatabaseDep

BODY_MAX_LENGTH = 10_000
PAGE_SIZE_MAX = 100
BIGINT_MAX = 2**63 - 1
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot store NUL characters

# Declared as a string in the path: a non-number is then a 422 like any other invalid id.
NoteId = Annotated[int, PathParameter(ge=1, le=BIGINT_MAX)]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX_LENGTH, pattern=NO_NUL)
    body: str = Field(default="", max_length=BODY_MAX_LENGTH, pattern=NO_NUL)


class NoteOut(BaseModel):
    id: int
    title: str
    body: str
    created_at: datetime

    @classmethod
    def of(cls, note: Note) -> "NoteOut":
        return cls(id=note.id, title=note.title, body=note.body_text, created_at=note.created_at)


class NotePage(BaseModel):
    items: list[NoteOut]
    # Pass as ?before= to get the next (older) page; null on the last page.
    next_before: int | None


class NotesController(Controller):
    path = "/notes"
    tags = ("notes",)

    @post("", status_code=status_codes.HTTP_201_CREATED)
    async def create_note(self, data: JSONBody[NoteIn], database: DatabaseDep) -> Response[NoteOut]:
        async with database.transaction() as session:
            row = Note.new(data.title, data.body)
            session.add(row)
            await session.flush()  # INSERT ... RETURNING: the id and created_at come back
            created = NoteOut.of(row)
        return Response(
            created,
            status_code=status_codes.HTTP_201_CREATED,
            headers={"Location": f"/notes/{created.id}"},
        )

    @get("/{note_id:str}")
    async def get_note(self, note_id: NoteId, database: DatabaseDep) -> NoteOut:
        async with database.transaction() as session:
            row = await session.get(Note, note_id)
            if row is None:
                raise NotFoundException("no such note")
            return NoteOut.of(row)

    @get("")
    async def list_notes(
        self,
        database: DatabaseDep,
        limit: Annotated[int, QueryParameter(ge=1, le=PAGE_SIZE_MAX)] = 20,
        before: Annotated[int | None, QueryParameter(ge=1, le=BIGINT_MAX)] = None,
    ) -> NotePage:
        """Newest first, at most ``limit`` notes, paged by id (stable while notes are added)."""
        query = select(Note).order_by(Note.id.desc()).limit(limit)
        if before is not None:
            query = query.where(Note.id < before)
        async with database.transaction() as session:
            rows = (await session.scalars(query)).all()
            items = [NoteOut.of(row) for row in rows]
        next_before = items[-1].id if len(items) == limit else None
        return NotePage(items=items, next_before=next_before)
