"""Alembic migrations of the service; ``python -m <package> migrate`` applies them."""
