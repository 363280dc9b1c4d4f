"""Trips: planned journeys of a device. `/v1/trips` (deprecated) and `/v2/trips` are two thin
routers over one service; they differ only in their models (see `schemas_v2.py` for why)."""
