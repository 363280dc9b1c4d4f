"""Trips: planned journeys of a device. `/v1/trips` (deprecated) and `/v2/trips` are generated
from one router over one service; they differ only in the rows of `versions.py` (their models:
see `schemas_v2.py` for why)."""
