"""Example database routes: create, read and list notes, each in one short transaction.

Replace them with your own; keep the pattern: validate before touching the database, hold a
connection only for the statements, bound every list. Each view writes its database work as a
plain function of a synchronous SQLAlchemy ``Session`` and runs it with ``transaction`` (one
short transaction on the process's one pool, ``web/db.py``).
"""

from datetime import datetime
from typing import Annotated, Any

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from ..db.models import TITLE_MAX_LENGTH, Note
from . import api_docs
from .db import transaction
from .validation import json_body, parse, query

blueprint = Blueprint("notes", __name__, url_prefix="/notes")

BODY_MAX_LENGTH = 10_000
PAGE_SIZE_MAX = 100
BIGINT_MAX = 2**63 - 1
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot store NUL characters

NoteId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
PageSize = Annotated[int, Field(ge=1, le=PAGE_SIZE_MAX)]


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


@blueprint.post("")
@api_docs.operation(body=NoteIn, response=NoteOut, status=201)
def create_note() -> tuple[dict[str, Any], int, dict[str, str]]:
    note: NoteIn = json_body(NoteIn)

    def insert(session: Session) -> NoteOut:
        row = Note.new(note.title, note.body)
        session.add(row)
        session.flush()  # INSERT ... RETURNING: the id and created_at come back
        return NoteOut.of(row)

    created = transaction(insert)
    return created.model_dump(mode="json"), 201, {"Location": f"/notes/{created.id}"}


@blueprint.get("/<note_id>")
@api_docs.operation(response=NoteOut)
def get_note(note_id: str) -> dict[str, Any]:
    wanted: int = parse(NoteId, note_id, "path", "note_id")

    def read(session: Session) -> NoteOut | None:
        row = session.get(Note, wanted)
        return NoteOut.of(row) if row is not None else None

    found = transaction(read)
    if found is None:
        raise NotFound("no such note")
    return found.model_dump(mode="json")


@blueprint.get("")
@api_docs.operation(response=NotePage, query={"limit": PageSize, "before": NoteId})
def list_notes() -> dict[str, Any]:
    """Newest first, at most ``limit`` notes, paged by id (stable while notes are added)."""
    limit: int = query("limit", PageSize, 20)
    before: int | None = query("before", NoteId)
    statement = select(Note).order_by(Note.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(Note.id < before)

    def read(session: Session) -> list[NoteOut]:
        return [NoteOut.of(row) for row in session.scalars(statement)]

    items = transaction(read)
    next_before = items[-1].id if len(items) == limit else None
    return NotePage(items=items, next_before=next_before).model_dump(mode="json")
