"""`import_waypoints`: a trip's waypoints replaced from an uploaded CSV or GPX file.

Enqueued by the API (`POST /v1/trips/{id}/waypoints/import`) through `jobs.create_job`; the
file's text is in `job.params["content"]` (small: the API caps it). The file is parsed and
every row checked first; then the trip's waypoints are replaced and the job finished in ONE
transaction, so a run is all or nothing, and running it again gives the same waypoints.

A file with problems ends the job `failed` with one message per line, safe to show. Names
follow the trips API's rules (`tripline_common.data.names`: no control characters, no spreadsheet
formula prefix). GPX is parsed with `defusedxml`: no DTDs, no entities (no billion laughs), no
external references.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from sqlalchemy import delete, update
from sqlmodel import col

from tripline_common.data import clean_waypoint_name, finish_job, unit_of_work
from tripline_common.data.models import Job, Trip, Waypoint
from tripline_worker.jobs.tracking import report_progress, tracked_job

MAX_WAYPOINTS = 50  # As many as a trip takes through the API.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class ParsedWaypoint:
    lat: float
    lon: float
    name: str | None


class WaypointFileError(Exception):
    """The file cannot be imported; `problems` says why, by line (or point) where possible."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def message(self) -> str:
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = [f"The file was not imported ({len(self.problems)} problem(s)):", *shown]
        if more:
            lines.append(f"... and {more} more.")
        return "\n".join(lines)


def _point(
    where: str, lat: str | None, lon: str | None, name: str | None, problems: list[str]
) -> ParsedWaypoint | None:
    found: list[str] = []
    values: dict[str, float] = {}
    for field, raw, bound in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        try:
            value = float((raw or "").strip())
        except ValueError:
            found.append(f"{where}: {field} {raw!r} is not a number")
            continue
        if not -bound <= value <= bound:  # Also rejects nan.
            found.append(f"{where}: {field} must be between {-bound:g} and {bound:g}")
            continue
        values[field] = value
    # A blank name is no name (as in the API, where it is optional); any other name follows the
    # API's rules (`tripline_common.data.names`), so a file cannot store what a request may not.
    clean_name: str | None = None
    if name and name.strip():
        try:
            clean_name = clean_waypoint_name(name)
        except ValueError as exc:
            found.append(f"{where}: name {exc}")
    problems.extend(found)
    if found:
        return None
    return ParsedWaypoint(values["lat"], values["lon"], clean_name)


def parse_csv(text: str) -> list[ParsedWaypoint]:
    """Waypoints from a CSV with a `lat,lon,name` header (`name` optional); line numbers are
    the file's."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "lat" not in header or "lon" not in header:
        raise WaypointFileError(["line 1: the header must be lat,lon,name"])
    reader.fieldnames = header
    points: list[ParsedWaypoint] = []
    problems: list[str] = []
    try:
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue  # A blank line.
            where = f"line {reader.line_num}"
            if None in row:
                problems.append(f"{where}: more columns than the header")
                continue
            point = _point(where, row.get("lat"), row.get("lon"), row.get("name"), problems)
            if point is not None:
                points.append(point)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise WaypointFileError(problems)
    return points


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_gpx(text: str) -> list[ParsedWaypoint]:
    """Waypoints from a GPX document: its `wpt` points, or else its route's `rtept` points."""
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException:
        raise WaypointFileError(
            ["the GPX document declares a DTD or entities, which are not accepted"]
        ) from None
    except SafeET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        raise WaypointFileError([f"line {line}: not well-formed XML"]) from None
    if _local(root.tag) != "gpx":
        raise WaypointFileError(["the document is not GPX (its root is not <gpx>)"])
    elements = [e for e in root.iter() if _local(e.tag) == "wpt"]
    kind = "wpt"
    if not elements:
        elements = [e for e in root.iter() if _local(e.tag) == "rtept"]
        kind = "rtept"
    points: list[ParsedWaypoint] = []
    problems: list[str] = []
    for number, element in enumerate(elements, start=1):
        name = next((c.text for c in element if _local(c.tag) == "name"), None)
        point = _point(f"{kind} {number}", element.get("lat"), element.get("lon"), name, problems)
        if point is not None:
            points.append(point)
    if problems:
        raise WaypointFileError(problems)
    return points


def parse_waypoints(file_format: str, text: str) -> list[ParsedWaypoint]:
    """Parse and check a whole file; raises `WaypointFileError` with every problem found."""
    if file_format == "csv":
        points = parse_csv(text)
    elif file_format == "gpx":
        points = parse_gpx(text)
    else:
        raise WaypointFileError([f"unknown file format {file_format!r}"])
    if not points:
        raise WaypointFileError(["the file has no waypoints"])
    if len(points) > MAX_WAYPOINTS:
        raise WaypointFileError(
            [f"the file has {len(points)} waypoints; a trip takes at most {MAX_WAYPOINTS}"]
        )
    return points


async def _fail(ctx: dict[str, Any], job: Job, message: str) -> None:
    async with unit_of_work(ctx["session_factory"]) as session:
        await finish_job(session=session, job_id=job.id, error=message)


@tracked_job
async def import_waypoints(ctx: dict[str, Any], job: Job) -> dict[str, Any] | None:
    """Replace the trip's waypoints with the file's, and finish the job, in one transaction."""
    params = job.params
    try:
        points = parse_waypoints(str(params.get("format")), str(params.get("content", "")))
    except WaypointFileError as problems:
        # A bad file is the client's to fix, not a crash: the job ends `failed` with the
        # problems (the tracking wrapper leaves a finished job as it is).
        await _fail(ctx, job, problems.message())
        return None
    await report_progress(ctx, job, 50)
    trip_id = uuid.UUID(params["trip_id"])
    result = {"imported": len(points)}
    async with unit_of_work(ctx["session_factory"]) as session:
        # Touching the trip locks it (concurrent edits wait) and moves its `updated_at`.
        trip = await session.scalar(
            update(Trip)
            .where(col(Trip.id) == trip_id, col(Trip.owner_id) == job.owner_id)
            .values(updated_at=datetime.now(UTC))
            .returning(col(Trip.id))
        )
        if trip is None:
            await finish_job(session=session, job_id=job.id, error="The trip no longer exists.")
            return None
        await session.execute(delete(Waypoint).where(col(Waypoint.trip_id) == trip_id))
        session.add_all(
            Waypoint(trip_id=trip_id, seq=seq, lat=p.lat, lon=p.lon, name=p.name)
            for seq, p in enumerate(points)
        )
        await session.flush()
        await finish_job(session=session, job_id=job.id, result=result)
    return result
