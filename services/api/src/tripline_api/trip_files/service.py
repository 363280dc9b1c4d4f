"""Waypoint imports and telemetry exports.

Imports: the upload is checked (size, then declared type AND sniffed content) before anything
else, then handed to the worker's `import_waypoints` job. The file is small (capped by
`waypoint_import_max_bytes`, under the app's body cap), so its text travels in the job's
`params` (JSONB): acceptable for a reference app, and the job can be re-enqueued from Postgres
alone. Large files would go to object storage or a table of their own instead.

Exports: rows are read a page at a time, each page one short query on the raw pool (keyset on
`(recorded_at, id)`), and written out as CSV; memory stays flat however long the trip, and no
connection waits on the client: it goes back to the pool before each page is sent, so a client
that reads slowly, or never, holds a socket and one page of memory, never a connection or an
open transaction. (A server-side cursor would need its transaction open for the whole
download: 16 clients that never read took every connection of the pool.) Pages are separate
statements, so an export is not a snapshot: fixes stored during the download may be included.
Each user runs at most `telemetry_export_max_per_user` exports at once, across replicas
(`tripline_api.slots`); one more is a 429.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncGenerator
from typing import Literal

from fastapi import UploadFile
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_api.slots import take_held_slot
from tripline_api.streaming import GuardedBody
from tripline_common.data import PgExecutor, create_job
from tripline_common.data.models import Job, Trip
from tripline_common.messaging import JobQueue
from tripline_common.platform import AppError, NotFoundError, PayloadTooLargeError, RateLimitedError

IMPORT_WAYPOINTS = "import_waypoints"
ImportFormat = Literal["csv", "gpx"]

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"})
GPX_TYPES = frozenset({"application/gpx+xml", "application/xml", "text/xml"})
GENERIC_TYPES = frozenset({"application/octet-stream", ""})

EXPORT_COLUMNS = ("recorded_at", "lat", "lon", "speed_kmh", "heading_deg", "accuracy_m")
EXPORT_CHUNK_ROWS = 1000


class UnsupportedMediaTypeError(AppError):
    status_code, code, message = 415, "unsupported_media_type", "The file type is not supported."


def trip_not_found() -> NotFoundError:
    return NotFoundError("Trip not found.", code="trip_not_found")


async def require_own_trip(
    *, session: AsyncSession, owner_id: uuid.UUID, trip_id: uuid.UUID
) -> None:
    """404 unless the trip exists and is the owner's."""
    found = await session.scalar(
        select(col(Trip.id)).where(col(Trip.id) == trip_id, col(Trip.owner_id) == owner_id)
    )
    if found is None:
        raise trip_not_found()


async def read_capped(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes, or 413 if it is larger than `max_bytes` (never reads more)."""
    if upload.size is not None and upload.size > max_bytes:
        raise _too_large(max_bytes)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The file is larger than {max_bytes} bytes.", code="file_too_large"
    )


def sniff_format(content_type: str | None, data: bytes) -> tuple[ImportFormat, str]:
    """The file's format and text: the declared type must be CSV or GPX (or generic), and the
    content must look like what it claims; anything else is a 415."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in CSV_TYPES:
        claimed: ImportFormat | None = "csv"
    elif declared in GPX_TYPES:
        claimed = "gpx"
    elif declared in GENERIC_TYPES:
        claimed = None
    else:
        raise UnsupportedMediaTypeError(
            f"Content type {declared!r} is not accepted; send CSV (text/csv) or GPX "
            "(application/gpx+xml).",
            code="unsupported_file_type",
        )
    if b"\x00" in data:
        raise _not_what_it_claims()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_what_it_claims() from None
    head = text.lstrip()[:512]
    if head.startswith("<"):
        sniffed: ImportFormat | None = (
            "gpx" if ("<gpx" in head or head.startswith("<?xml")) else None
        )
    else:
        first_line = head.splitlines()[0] if head else ""
        columns = {c.strip().lower() for c in first_line.split(",")}
        sniffed = "csv" if {"lat", "lon"} <= columns else None
    if sniffed is None or (claimed is not None and sniffed != claimed):
        raise _not_what_it_claims()
    return sniffed, text


def _not_what_it_claims() -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(
        "The file is neither a CSV with a `lat,lon,name` header nor a GPX document, or its "
        "content does not match its declared type.",
        code="file_content_mismatch",
    )


async def start_waypoint_import(
    *,
    session: AsyncSession,
    queue: JobQueue,
    owner_id: uuid.UUID,
    trip_id: uuid.UUID,
    upload: UploadFile,
    max_bytes: int,
) -> Job:
    """Check the trip and the file, then queue the import (runs after the request commits)."""
    await require_own_trip(session=session, owner_id=owner_id, trip_id=trip_id)
    data = await read_capped(upload, max_bytes)
    file_format, text = sniff_format(upload.content_type, data)
    return await create_job(
        session=session,
        queue=queue,
        kind=IMPORT_WAYPOINTS,
        owner_id=owner_id,
        params={
            "trip_id": str(trip_id),
            "format": file_format,
            "filename": (upload.filename or "")[:200],
            "content": text,
        },
    )


_OWN_TRIP_QUERY = "SELECT 1 FROM trips WHERE id = $1 AND owner_id = $2"
_FIRST_PAGE_QUERY = """
SELECT recorded_at, lat, lon, speed_kmh, heading_deg, accuracy_m, id
FROM telemetry_events
WHERE trip_id = $1
ORDER BY recorded_at, id
LIMIT $2
"""
_NEXT_PAGE_QUERY = """
SELECT recorded_at, lat, lon, speed_kmh, heading_deg, accuracy_m, id
FROM telemetry_events
WHERE trip_id = $1 AND recorded_at >= $3 AND (recorded_at, id) > ($3, $4)
ORDER BY recorded_at, id
LIMIT $2
"""  # `recorded_at >= $3` lets the (trip_id, recorded_at) index start each page where it should.
EXPORT_RETRY_AFTER_SECONDS = 10


def export_slots_key(owner_id: uuid.UUID) -> str:
    return f"tripline:exports:{owner_id}"


async def start_telemetry_export(
    *,
    pg: PgExecutor,
    redis: Redis,
    owner_id: uuid.UUID,
    trip_id: uuid.UUID,
    max_per_user: int,
    chunk_rows: int = EXPORT_CHUNK_ROWS,
) -> GuardedBody:
    """404 unless the trip is the owner's, 429 if the owner already runs `max_per_user`
    exports; else the CSV body, which holds one of the owner's export slots until it ends."""
    if await pg.fetchval(_OWN_TRIP_QUERY, trip_id, owner_id) is None:
        raise trip_not_found()
    slot = await take_held_slot(redis, export_slots_key(owner_id), limit=max_per_user)
    if slot is None:
        raise RateLimitedError(
            EXPORT_RETRY_AFTER_SECONDS,
            f"You already have {max_per_user} exports running; wait for one to finish.",
            code="too_many_exports",
        )
    body = telemetry_csv(pg=pg, trip_id=trip_id, chunk_rows=chunk_rows)
    return GuardedBody(body, slot.release, on_start=slot.start)


async def telemetry_csv(
    *, pg: PgExecutor, trip_id: uuid.UUID, chunk_rows: int = EXPORT_CHUNK_ROWS
) -> AsyncGenerator[bytes]:
    """The trip's telemetry as CSV, in `(recorded_at, id)` order, one page of rows at a time;
    each page is one statement on the pool, and no connection is held between pages."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    rows = await pg.fetch(_FIRST_PAGE_QUERY, trip_id, chunk_rows)
    while rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(
            (r[0].isoformat(), *("" if v is None else v for v in tuple(r)[1:6])) for r in rows
        )
        yield buffer.getvalue().encode()
        if len(rows) < chunk_rows:
            return
        last = rows[-1]
        rows = await pg.fetch(_NEXT_PAGE_QUERY, trip_id, chunk_rows, last[0], last[6])
