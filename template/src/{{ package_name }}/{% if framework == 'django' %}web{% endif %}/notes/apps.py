"""The notes application's configuration (Django finds it in ``INSTALLED_APPS``)."""

from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = __name__.rpartition(".")[0]
    label = "notes"
    default_auto_field = "django.db.models.BigAutoField"
