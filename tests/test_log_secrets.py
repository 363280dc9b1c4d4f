"""No process ever logs a credential: a whole story runs against the four real processes, and
every secret it issued or used is looked for in every line they wrote.

The story: a user signs up and follows the mailed verification link, logs in, refreshes,
opens an alert stream with a single-use ticket, registers a device and rotates its key, starts
a trip, registers a webhook endpoint (a capability URL, with a token in its query string) and
rotates its secret, and sends speeding telemetry with the rotated key, which the worker turns
into an alert and a signed delivery; a login with a wrong password fails; an operator issues
and rotates device keys through the admin API and in the console, signed in with a password;
everybody logs out; the user resets the password with a mailed token. The processes report to
a stand-in Sentry too, and what reached it is searched the same way. (WebSocket handshakes are
covered by tests/test_realtime.py::test_stream_credentials_never_reach_the_log.)
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from tests.test_pipeline import (
    FAST_WORKER,
    ORIGIN,
    WANNSEE,
    fixes,
    seed,
    wait_for,
    window_aligned,
)
from tripline_common.data import asyncpg_dsn

WAIT = 20.0


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def shown_key(html: str) -> str:
    match = re.search(r'<code id="api-key" class="key">([^<]+)</code>', html)
    assert match, "no key on the page"
    return match.group(1)


@pytest.mark.slow
async def test_no_process_logs_a_token_key_secret_or_password(
    processes, process_env, webhook_receiver, fake_sentry, mail_server
) -> None:
    from scripts.seed import DEMO_PASSWORD

    found: dict[str, str] = {}  # what it is -> the secret value

    def keep(label: str, value: str) -> str:
        found[label] = value
        return value

    database_url = process_env["DATABASE_URL"]
    if urlsplit(database_url).password:
        keep("database password", urlsplit(database_url).password or "")
    keep("operator password", DEMO_PASSWORD)
    seed(process_env)
    email = f"scan-{uuid.uuid4().hex[:8]}@example.com"
    password = keep("user password", f"pw-{secrets.token_hex(12)}")

    env = {"SENTRY_DSN": fake_sentry.dsn}
    api = processes.start("api", "tripline-api", **env)
    ingest = processes.start("ingest", "tripline-ingest", **env)
    mail = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail_server.port),
        "SMTP_STARTTLS": "false",
    }
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER, **mail, **env)
    admin = processes.start("admin", "tripline-admin", CONSOLE_COOKIE_SECURE="false", **env)
    for process in (api, ingest, worker, admin):
        processes.wait_ready(process, timeout=120)  # Four cold starts on a busy machine.

    async with httpx.AsyncClient(timeout=WAIT) as client:
        # The user signs up and follows the mailed link (its token is a secret).
        signed_up = await client.post(
            f"{api.url}/v1/users",
            json={"email": email, "display_name": "Log Scan", "password": password},
        )
        assert signed_up.status_code == 202, signed_up.text
        [verification] = await asyncio.to_thread(mail_server.wait_for, email)
        keep(
            "email verification token", parse_qs(urlsplit(verification.links[0]).query)["token"][0]
        )
        (
            await client.get(f"{api.url}/v1/" + verification.links[0].split("/v1/", 1)[1])
        ).raise_for_status()

        # The user: log in, refresh, and the old refresh token is spent.
        first = (
            await client.post(
                f"{api.url}/v1/auth/token", data={"username": email, "password": password}
            )
        ).raise_for_status()
        keep("access token 1", first.json()["access_token"])
        keep("refresh token 1", first.json()["refresh_token"])
        pair = (
            await client.post(
                f"{api.url}/v1/auth/refresh", json={"refresh_token": found["refresh token 1"]}
            )
        ).raise_for_status()
        auth = {"Authorization": f"Bearer {keep('access token 2', pair.json()['access_token'])}"}
        keep("refresh token 2", pair.json()["refresh_token"])

        # A stream opened with a single-use ticket (a URL's only credential).
        ticket = (
            await client.post(f"{api.url}/v1/alerts/stream-tickets", headers=auth)
        ).raise_for_status()
        stream_url = (
            f"{api.url}/v1/alerts/stream?ticket={keep('stream ticket', ticket.json()['ticket'])}"
        )
        async with client.stream("GET", stream_url) as stream:
            assert stream.status_code == 200

        # A device and its key, rotated; a trip for it, under way.
        device = (
            await client.post(f"{api.url}/v1/devices", json={"name": "Scan van"}, headers=auth)
        ).raise_for_status()
        keep("device key 1", device.json()["api_key"])
        device_id = device.json()["id"]
        rotated = (
            await client.post(f"{api.url}/v1/devices/{device_id}/rotate-key", headers=auth)
        ).raise_for_status()
        device_key = keep("device key 2", rotated.json()["api_key"])
        trip = (
            await client.post(
                f"{api.url}/v1/trips",
                headers=auth,
                json={
                    "name": "Scan trip",
                    "device_id": device_id,
                    "origin_lat": ORIGIN[0],
                    "origin_lon": ORIGIN[1],
                    "destination_lat": WANNSEE[0],
                    "destination_lon": WANNSEE[1],
                    "planned_start": "2026-12-01T08:00:00Z",
                    "planned_arrival": "2026-12-01T09:00:00Z",
                    "speed_limit_kmh": 80,
                    "corridor_m": 2000,
                },
            )
        ).raise_for_status()
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:  # Under way since before the fixes below (as tests/test_pipeline.py's demo trip).
            await conn.execute(
                "UPDATE trips SET status = 'active', started_at = now() - interval '10 minutes'"
                " WHERE id = $1",
                uuid.UUID(trip.json()["id"]),
            )
        finally:
            await conn.close()

        # A webhook endpoint and its secret, rotated (deliveries are signed with both). Its URL
        # is a capability, as many receivers' are: the token in its query string is a secret.
        hook_token = keep("webhook URL token", secrets.token_hex(16))
        hook_url = f"{webhook_receiver.url}?token={hook_token}"
        webhook = (
            await client.post(f"{api.url}/v1/webhooks", json={"url": hook_url}, headers=auth)
        ).raise_for_status()
        keep("webhook secret 1", webhook.json()["secret"])
        rotated_secret = (
            await client.post(
                f"{api.url}/v1/webhooks/{webhook.json()['id']}/rotate-secret", headers=auth
            )
        ).raise_for_status()
        keep("webhook secret 2", rotated_secret.json()["secret"])

        # Speeding telemetry with the rotated key becomes an alert and a signed delivery.
        upload = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={
                "client_batch_id": "scan-1",
                "events": fixes(6, start=window_aligned(), speed_kmh=112),
            },
            headers={"X-Device-Key": device_key},
        )
        assert upload.status_code == 202, upload.text

        async def delivered() -> list:
            return webhook_receiver.delivered()

        await wait_for(delivered, WAIT, "a webhook delivery")

        # A wrong password is refused (and is a secret too).
        wrong = keep("wrong password", f"wrong-{secrets.token_hex(12)}")
        refused = await client.post(
            f"{api.url}/v1/auth/token", data={"username": email, "password": wrong}
        )
        assert refused.status_code == 401

        # The operator: admin API with a bearer token, then the console with a password.
        operator = (
            await client.post(
                f"{api.url}/v1/auth/token",
                data={"username": "operator@tripline.dev", "password": DEMO_PASSWORD},
            )
        ).raise_for_status()
        keep("operator access token", operator.json()["access_token"])
        keep("operator refresh token", operator.json()["refresh_token"])
        operator_auth = {"Authorization": f"Bearer {found['operator access token']}"}
        issued = (
            await client.post(
                f"{admin.url}/v1/devices",
                json={"owner_id": (await me(client, api.url, auth))["id"], "name": "Admin van"},
                headers=operator_auth,
            )
        ).raise_for_status()
        keep("admin device key 1", issued.json()["api_key"])
        admin_rotated = (
            await client.post(
                f"{admin.url}/v1/devices/{issued.json()['id']}/key", headers=operator_auth
            )
        ).raise_for_status()
        keep("admin device key 2", admin_rotated.json()["api_key"])
        (await client.get(f"{admin.url}/v1/users", headers=operator_auth)).raise_for_status()

    async with httpx.AsyncClient(base_url=admin.url, timeout=WAIT) as console:
        login_page = await console.get("/console/login")
        keep("console login token", form_token(login_page.text))
        signed_in = await console.post(
            "/console/login",
            data={
                "csrf_token": found["console login token"],
                "email": "operator@tripline.dev",
                "password": DEMO_PASSWORD,
                "next": "/console/devices",
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        for name, value in console.cookies.items():
            keep(f"console cookie {name}", value)
        devices_page = await console.get("/console/devices")
        csrf = keep("console CSRF token", form_token(devices_page.text))
        page = await console.post(
            f"/console/devices/{issued.json()['id']}/rotate", data={"csrf_token": csrf}
        )
        assert page.status_code == 200, page.text
        keep("console device key", shown_key(page.text))
        signed_out = await console.post("/console/logout", data={"csrf_token": csrf})
        assert signed_out.status_code == 303

    async with httpx.AsyncClient(timeout=WAIT) as client:
        for headers in (auth, operator_auth):
            out = await client.post(f"{api.url}/v1/auth/logout", headers=headers)
            assert out.status_code == 204

        # A forgotten password: the mailed reset token sets a new one.
        asked = await client.post(
            f"{api.url}/v1/accounts/password-reset/request", json={"email": email}
        )
        assert asked.status_code == 202, asked.text
        [_, reset] = await asyncio.to_thread(mail_server.wait_for, email, 2)
        new_password = keep("new password", f"pw-{secrets.token_hex(12)}")
        done = await client.post(
            f"{api.url}/v1/accounts/password-reset",
            json={
                "token": keep("password reset token", reset.tokens[0]),
                "new_password": new_password,
            },
        )
        assert done.status_code < 300, done.text

    processes.stop_all()  # Everything they had to say is on disk.
    assert {
        "user password",
        "wrong password",
        "access token 2",
        "refresh token 1",
        "device key 2",
        "webhook secret 2",
        "webhook URL token",
        "console device key",
        "console CSRF token",
        "email verification token",
        "stream ticket",
        "password reset token",
    } <= set(found)
    leaks = [
        f"{process.name} line {number}: {label}"
        for process in (api, ingest, worker, admin)
        for number, line in enumerate(process.log_lines(), 1)
        for label, value in found.items()
        if value in line
    ]
    assert not leaks, leaks
    assert all(process.log_lines() for process in (api, ingest, worker, admin))
    raw = fake_sentry.raw()
    assert not [label for label, value in found.items() if value.encode() in raw]


async def me(client: httpx.AsyncClient, api_url: str, auth: dict[str, str]) -> dict:
    return (await client.get(f"{api_url}/v1/users/me", headers=auth)).raise_for_status().json()
