"""One file per revision, applied in order by ``python -m <package> migrate``."""
