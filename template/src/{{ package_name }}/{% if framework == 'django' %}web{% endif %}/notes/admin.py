"""The notes in Django's admin site (``/admin/``, when ``DJANGO_ADMIN_ENABLED``): Django finds
this module when the admin is installed (``admin_site.py``)."""

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Note

if TYPE_CHECKING:
    # Generic for type checkers only (django-stubs), as the model fields are.
    NoteModelAdmin = admin.ModelAdmin[Note]
else:
    NoteModelAdmin = admin.ModelAdmin


@admin.register(Note)
class NoteAdmin(NoteModelAdmin):
    list_display = ("id", "title", "created_at")
    search_fields = ("title",)
    fields = ("title", "body", "created_at")
    readonly_fields = ("created_at",)

    def save_model(self, request: HttpRequest, obj: Note, form: Any, change: bool) -> None:
        # Both columns, as the API writes them, while the rename's expand-contract lasts
        # (models.py): the previous release reads "content".
        obj.content = obj.body
        super().save_model(request, obj, form, change)
