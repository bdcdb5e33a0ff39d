"""The example Django application: the ``Note`` model (``models.py``) and its migrations.

Replace it with your own applications (add each to ``db.INSTALLED_APPS``); keep schema changes
expand-then-contract (README: Database changes).
"""

TITLE_MAX_LENGTH = 200
