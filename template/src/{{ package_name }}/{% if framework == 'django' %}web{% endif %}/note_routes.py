"""Example database routes: create, read and list notes with Django's ORM.

Replace them with your own; keep the pattern: validate before touching the database, one short
statement per step (the request's pooled connection goes back to the pool when it ends), bound
every list. ``db.require_database`` answers 503 when DATABASE_URL is unset (development only);
an unreachable database, a pool with no free connection in time or a statement timeout answer
503 with ``Retry-After`` (``db.py``).
"""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel, ConfigDict, Field

from . import api_docs
from .db import require_database
from .errors import HttpError, json_response
from .notes import TITLE_MAX_LENGTH
from .routing import endpoint
from .validation import json_body, parse, query

if TYPE_CHECKING:
    from .notes.models import Note

BODY_MAX_LENGTH = 10_000
PAGE_SIZE_MAX = 100
BIGINT_MAX = 2**63 - 1
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot store NUL characters

NoteId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
PageSize = Annotated[int, Field(ge=1, le=PAGE_SIZE_MAX)]


def notes() -> "type[Note]":
    """The ``Note`` model. Imported on first use: a Django model exists only once Django has
    loaded its applications (``create_app``), after this module is imported."""
    from .notes.models import Note

    return Note


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
    def of(cls, note: "Note") -> "NoteOut":
        return cls(id=note.id, title=note.title, body=note.body_text, created_at=note.created_at)


class NotePage(BaseModel):
    items: list[NoteOut]
    # Pass as ?before= to get the next (older) page; null on the last page.
    next_before: int | None


@api_docs.operation(body=NoteIn, response=NoteOut, status=201)
async def create_note(request: HttpRequest) -> HttpResponse:
    note: NoteIn = await json_body(request, NoteIn)
    require_database(request)
    row = notes().new(note.title, note.body)
    # INSERT ... RETURNING: the id and the database's created_at come back.
    await row.asave()
    created = NoteOut.of(row)
    headers = {"Location": f"/notes/{created.id}"}
    return json_response(created.model_dump(mode="json"), 201, headers)


@api_docs.operation(response=NoteOut)
async def get_note(request: HttpRequest, note_id: str) -> HttpResponse:
    checked: int = parse(NoteId, note_id, "path", "note_id")
    require_database(request)
    row = await notes().objects.filter(id=checked).afirst()
    if row is None:
        raise HttpError(404, "no such note")
    return json_response(NoteOut.of(row).model_dump(mode="json"))


@api_docs.operation(response=NotePage)
async def list_notes(request: HttpRequest) -> HttpResponse:
    """Newest first, at most ``limit`` notes, paged by id (stable while notes are added)."""
    limit: int = query(request, "limit", PageSize, 20)
    before: int | None = query(request, "before", NoteId)
    require_database(request)
    rows = notes().objects.order_by("-id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    items = [NoteOut.of(row) async for row in rows[:limit]]
    next_before = items[-1].id if len(items) == limit else None
    page = NotePage(items=items, next_before=next_before)
    return json_response(page.model_dump(mode="json"))


urlpatterns = [
    endpoint("notes", name="notes", get=list_notes, post=create_note),
    endpoint("notes/<str:note_id>", name="note", get=get_note),
]
