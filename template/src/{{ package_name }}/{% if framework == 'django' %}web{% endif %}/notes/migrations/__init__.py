"""The notes application's migrations, applied in order by ``python -m <package> migrate``."""
