"""No response that carries a secret may be cached: every one answers `Cache-Control: no-store`.

The operations are not listed by hand: each app's own OpenAPI document is walked for response
schemas with a field marked `"x-secret": true`
(`tripline_common.security.secret_fields.SecretValue`).
Each operation found is then called for real (in-process app, real Postgres and Redis), and the
set found must equal the set this module knows how to call, so a new secret-bearing response
cannot go untested.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import User, UserRole
from tripline_common.security import hash_password, open_session
from tripline_common.security.secret_fields import SECRET_MARK
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings
from tripline_worker.main import create_worker_app
from tripline_worker.settings import WorkerServiceSettings

PASSWORD = "correct horse battery staple"

APPS: dict[str, tuple[type[Any], Callable[[Any], FastAPI]]] = {
    "api": (ApiSettings, create_api_app),
    "admin": (AdminSettings, create_admin_app),
    "ingest": (IngestSettings, create_ingest_app),
    "worker": (WorkerServiceSettings, create_worker_app),
}


def _holds_secret(schema: Any, components: dict[str, Any], seen: frozenset[str]) -> bool:
    if isinstance(schema, list):
        return any(_holds_secret(item, components, seen) for item in schema)
    if not isinstance(schema, dict):
        return False
    if schema.get(SECRET_MARK) is True:
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        return name not in seen and _holds_secret(components[name], components, seen | {name})
    nested = [*(schema.get("properties") or {}).values()]
    nested += [schema.get(key) for key in ("items", "additionalProperties")]
    nested += [*schema.get("allOf", []), *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(_holds_secret(child, components, seen) for child in nested)


def secret_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation with a response whose schema holds a secret field."""
    components = document.get("components", {}).get("schemas", {})
    found = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    if _holds_secret(media.get("schema"), components, frozenset()):
                        found.add((method.upper(), path))
    return found


@dataclass
class Story:
    """What the callers share: the app's client, settings and the test's rolled-back database."""

    client: httpx.AsyncClient
    settings: Any
    session_factory: Any
    users: dict[UserRole, User] = field(default_factory=dict)

    async def user(self, role: UserRole = UserRole.USER) -> User:
        if role not in self.users:
            async with self.session_factory() as session:
                user = User(
                    email=f"{role.value}-{uuid.uuid4().hex[:10]}@example.com",
                    display_name="Secret Keeper",
                    role=role,
                    password_hash=await hash_password(PASSWORD),
                    email_verified_at=datetime.now(UTC),
                )
                session.add(user)
                await session.commit()
            self.users[role] = user
        return self.users[role]

    async def headers(self, role: UserRole = UserRole.USER) -> dict[str, str]:
        async with self.session_factory() as session:
            issued = await open_session(
                session=session, settings=self.settings, user=await self.user(role)
            )
            await session.commit()
        return {"Authorization": f"Bearer {issued.access_token}"}

    async def post(
        self, path: str, role: UserRole = UserRole.USER, **kwargs: Any
    ) -> httpx.Response:
        response = await self.client.post(path, headers=await self.headers(role), **kwargs)
        assert response.is_success, response.text
        return response


async def api_login(story: Story) -> httpx.Response:
    user = await story.user()
    return await story.client.post(
        "/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )


async def api_refresh(story: Story) -> httpx.Response:
    pair = (await api_login(story)).json()
    return await story.client.post(
        "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )


async def api_register_device(story: Story) -> httpx.Response:
    return await story.post("/v1/devices", json={"name": "Van 7"})


async def api_rotate_device_key(story: Story) -> httpx.Response:
    device = (await api_register_device(story)).json()
    return await story.post(f"/v1/devices/{device['id']}/rotate-key")


async def api_register_webhook(story: Story) -> httpx.Response:
    return await story.post("/v1/webhooks", json={"url": "https://hooks.example.com/tripline"})


async def api_rotate_webhook_secret(story: Story) -> httpx.Response:
    webhook = (await api_register_webhook(story)).json()
    return await story.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")


async def admin_issue_device(story: Story) -> httpx.Response:
    owner = await story.user()
    return await story.post(
        "/v1/devices", UserRole.OPERATOR, json={"owner_id": str(owner.id), "name": "Van 8"}
    )


async def admin_rotate_device_key(story: Story) -> httpx.Response:
    device = (await admin_issue_device(story)).json()
    return await story.post(f"/v1/devices/{device['id']}/key", UserRole.OPERATOR)


Caller = Callable[[Story], Awaitable[httpx.Response]]

CALLERS: dict[str, dict[tuple[str, str], Caller]] = {
    "api": {
        ("POST", "/v1/auth/token"): api_login,
        ("POST", "/v1/auth/refresh"): api_refresh,
        ("POST", "/v1/devices"): api_register_device,
        ("POST", "/v1/devices/{device_id}/rotate-key"): api_rotate_device_key,
        ("POST", "/v1/webhooks"): api_register_webhook,
        ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): api_rotate_webhook_secret,
    },
    "admin": {
        ("POST", "/v1/devices"): admin_issue_device,
        ("POST", "/v1/devices/{device_id}/key"): admin_rotate_device_key,
    },
    "ingest": {},
    "worker": {},
}


@pytest.mark.parametrize("app_name", list(APPS))
async def test_every_response_carrying_a_secret_is_marked_no_store(
    app_name: str, make_settings, app_client, session_factory
) -> None:
    settings_class, create = APPS[app_name]
    settings = make_settings(settings_class)
    async with app_client(create(settings)) as client:
        document = (await client.get("/openapi.json")).json()
        # The walk finds exactly the operations this module calls (none for ingest and worker).
        assert secret_operations(document) == set(CALLERS[app_name])
        story = Story(client=client, settings=settings, session_factory=session_factory)
        for (method, path), call in CALLERS[app_name].items():
            response = await call(story)
            assert response.is_success, (method, path, response.text)
            assert response.headers.get("cache-control") == "no-store", (method, path)


async def test_a_response_without_a_secret_keeps_its_own_caching(
    make_settings, app_client, session_factory
) -> None:
    settings = make_settings(ApiSettings)
    async with app_client(create_api_app(settings)) as client:
        story = Story(client=client, settings=settings, session_factory=session_factory)
        await api_register_device(story)
        listed = await client.get("/v1/devices", headers=await story.headers())
    assert listed.is_success
    assert listed.headers.get("cache-control") != "no-store"
