"""The fleet's HTTP clients: a user of the public API (accounts, devices, trips, webhooks,
alerts) and a device uploading to ingest, each doing what a real client would (refresh an
expired token, wait out a 429, resend a batch after a timeout with the same client_batch_id).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tripline_devstack.fleet.expectations import SentFix

RETRIES = 5  # a 429 or 503 is waited out (Retry-After) this many times, then it is an error
TRANSPORT_RETRY_PAUSE_S = 1.0  # before trying again after a refused or dropped connection


class FleetHTTPError(RuntimeError):
    """An answer the fleet did not expect from the system under test."""


def expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """The JSON body of `response` if its status is one of `statuses`; else FleetHTTPError."""
    if response.status_code not in statuses:
        request = response.request
        raise FleetHTTPError(
            f"{request.method} {request.url.path} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    return dict(response.json()) if response.content else {}


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, waiting out 429 and 503 answers as their Retry-After asks, and trying
    again after a connection refused or dropped (a replica that went away, as a load
    balancer's clients see it)."""
    for attempt in range(RETRIES):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError:
            if attempt == RETRIES - 1:
                raise
            await asyncio.sleep(TRANSPORT_RETRY_PAUSE_S)
            continue
        if response.status_code not in (429, 503) or attempt == RETRIES - 1:
            return response
        await asyncio.sleep(min(10.0, float(response.headers.get("Retry-After") or 1)))
    raise AssertionError("unreachable")


def verification_token(link: str) -> str | None:
    """The token of an email-confirmation link (`...verify-email?token=...`)."""
    values = parse_qs(urlsplit(link).query).get("token")
    return values[0] if values else None


@dataclass
class UserClient:
    """A person using the public API: logs in, and logs in again when the token expires."""

    http: httpx.AsyncClient
    api_url: str
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""

    async def sign_up(self, display_name: str) -> None:
        """Ask for an account; the confirmation link arrives by mail."""
        response = await send(
            self.http,
            "POST",
            f"{self.api_url}/v1/users",
            json={"email": self.email, "display_name": display_name, "password": self.password},
        )
        expect(response, 202)

    async def verify_email(self, token: str) -> None:
        """Confirm the address with the mailed token."""
        response = await send(
            self.http, "POST", f"{self.api_url}/v1/accounts/verify-email", json={"token": token}
        )
        expect(response, 200)

    async def log_in(self) -> None:
        """Exchange email and password for a token pair."""
        response = await send(
            self.http,
            "POST",
            f"{self.api_url}/v1/auth/token",
            data={"username": self.email, "password": self.password},
        )
        tokens = expect(response, 200)
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    async def _refresh(self) -> None:
        response = await send(
            self.http,
            "POST",
            f"{self.api_url}/v1/auth/refresh",
            json={"refresh_token": self.refresh_token},
        )
        if response.status_code != 200:  # the session ended: start a new one
            await self.log_in()
            return
        tokens = response.json()
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of the current access token."""
        return {"Authorization": f"Bearer {self.access_token}"}

    async def call(self, method: str, path: str, *statuses: int, **kwargs: Any) -> dict[str, Any]:
        """An authenticated call; on a 401, one refresh and a second try."""
        response = await send(
            self.http, method, f"{self.api_url}{path}", headers=self.auth, **kwargs
        )
        if response.status_code == 401:
            await self._refresh()
            response = await send(
                self.http, method, f"{self.api_url}{path}", headers=self.auth, **kwargs
            )
        return expect(response, *statuses)

    async def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `next_cursor`."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {"limit": 100, **params}
        while True:
            page = await self.call("GET", path, 200, params=query)
            items += page["items"]
            if not page.get("next_cursor"):
                return items
            query = {"limit": 100, "cursor": page["next_cursor"], **params}


@dataclass(frozen=True)
class Accepted:
    """What ingest answered to one batch (after any resend)."""

    batch_id: str
    duplicate: bool
    resent: bool
    timed_out: bool


@dataclass
class DeviceClient:
    """A device uploading telemetry to ingest with its key."""

    http: httpx.AsyncClient
    ingest_url: str
    api_key: str

    async def upload(
        self, client_batch_id: str, fixes: list[SentFix], *, gzipped: bool, resend: bool
    ) -> Accepted:
        """Upload one batch. With `resend`, the first attempt gives up waiting for the answer
        almost at once (a timeout, as on a bad mobile link) and the batch is sent again with
        the same `client_batch_id`: ingest stores it once."""
        body = json.dumps(
            {"client_batch_id": client_batch_id, "events": list(events(fixes))}
        ).encode()
        headers = {"X-Device-Key": self.api_key, "Content-Type": "application/json"}
        if gzipped:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        url = f"{self.ingest_url}/v1/telemetry"
        timed_out = False
        if resend:
            try:
                impatient = httpx.Timeout(10.0, read=0.001)
                await self.http.post(url, content=body, headers=headers, timeout=impatient)
            except httpx.TimeoutException:
                timed_out = True
        answer = expect(await send(self.http, "POST", url, content=body, headers=headers), 202)
        if answer["event_count"] != len(fixes):
            raise FleetHTTPError(f"batch {client_batch_id}: {answer['event_count']} events stored")
        return Accepted(str(answer["batch_id"]), bool(answer["duplicate"]), resend, timed_out)

    async def batch_status(self, batch_id: str) -> str:
        """`pending`, `processed` or `failed`."""
        response = await send(
            self.http,
            "GET",
            f"{self.ingest_url}/v1/batches/{batch_id}",
            headers={"X-Device-Key": self.api_key},
        )
        return str(expect(response, 200)["status"])


def events(fixes: list[SentFix]) -> Iterator[dict[str, Any]]:
    """The fixes as ingest's JSON events."""
    for fix in fixes:
        yield {
            "recorded_at": iso(fix.recorded_at),
            "lat": fix.lat,
            "lon": fix.lon,
            "speed_kmh": fix.speed_kmh,
            "accuracy_m": fix.accuracy_m,
        }


def iso(moment: datetime) -> str:
    """ISO 8601 with its offset, as the APIs expect."""
    return moment.isoformat()
