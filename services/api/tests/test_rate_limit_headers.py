"""Rate-limited routes tell the client its quota: the IETF `RateLimit-Policy` and `RateLimit`
fields on every answer, success and 429 alike, counted in the real Redis."""

from __future__ import annotations

import pytest

from tests.support.users import PASSWORD
from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings

HOUR = 3600  # A window the tests cannot cross: fixed windows restart on the clock.


def fields(value: str) -> dict[str, dict[str, int]]:
    """A structured-field list of `"name";k=v;k=v` items, by name."""
    parsed: dict[str, dict[str, int]] = {}
    for item in value.split(","):
        name, *params = item.strip().split(";")
        parsed[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return parsed


def sign_up(n: int) -> dict[str, str]:
    return {"email": f"quota{n}@example.com", "display_name": "Q", "password": "violet tractor 42"}


async def test_sign_ups_count_down_in_the_ratelimit_field_and_the_429_carries_it_too(
    make_settings, app_client
) -> None:
    settings = make_settings(
        ApiSettings,
        signup_rate_limit=3,
        signup_rate_window_seconds=HOUR,
        signup_global_rate_limit=50,
        signup_global_rate_window_seconds=HOUR,
    )
    async with app_client(create_api_app(settings)) as client:
        answers = [await client.post("/v1/users", json=sign_up(n)) for n in range(4)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    for answer in answers:
        policy = fields(answer.headers["ratelimit-policy"])
        assert policy["signup"] == {"q": 3, "w": HOUR}
    assert [fields(a.headers["ratelimit"])["signup"]["r"] for a in answers] == [2, 1, 0, 0]
    assert fields(answers[0].headers["ratelimit-policy"])["signup-all"] == {"q": 50, "w": HOUR}
    assert fields(answers[2].headers["ratelimit"])["signup-all"]["r"] == 47
    for answer in answers:
        assert 1 <= fields(answer.headers["ratelimit"])["signup"]["t"] <= HOUR
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= HOUR + 1


async def login(client, email: str, password: str):
    return await client.post("/v1/auth/token", data={"username": email, "password": password})


async def test_login_failures_count_down_and_a_right_password_gives_its_attempt_back(
    make_settings, app_client, make_user
) -> None:
    user = await make_user()
    settings = make_settings(
        ApiSettings,
        login_client_rate_limit=10,
        login_rate_limit=3,
        login_account_rate_limit=20,
        login_rate_window_seconds=HOUR,
    )
    async with app_client(create_api_app(settings)) as client:
        wrong = [await login(client, user.email, "wrong password") for _ in range(2)]
        right = await login(client, user.email, PASSWORD)

    assert [a.status_code for a in wrong] == [401, 401]
    assert right.status_code == 200
    assert fields(right.headers["ratelimit-policy"]) == {
        "login-client": {"q": 10, "w": HOUR},
        "login-account-client": {"q": 3, "w": HOUR},
        "login-account": {"q": 20, "w": HOUR},
    }
    remaining = [
        {name: quota["r"] for name, quota in fields(a.headers["ratelimit"]).items()}
        for a in [*wrong, right]
    ]
    assert remaining == [
        {"login-client": 9, "login-account-client": 2, "login-account": 19},
        {"login-client": 8, "login-account-client": 1, "login-account": 18},
        # Every attempt costs the client; the right one is taken off the failure counts.
        {"login-client": 7, "login-account-client": 1, "login-account": 18},
    ]


async def test_cors_exposes_the_ratelimit_fields_to_browser_clients(
    make_settings, app_client
) -> None:
    settings = make_settings(ApiSettings, cors_origins=["https://app.example.com"])
    async with app_client(create_api_app(settings)) as client:
        answer = await client.post(
            "/v1/users", json=sign_up(0), headers={"Origin": "https://app.example.com"}
        )
    listed = answer.headers["access-control-expose-headers"].split(",")
    exposed = {header.strip().lower() for header in listed}
    assert {"ratelimit-policy", "ratelimit", "retry-after"} <= exposed


async def test_routes_without_a_rate_limit_send_no_ratelimit_fields(client) -> None:
    answer = await client.get("/v1/users/me")
    assert answer.status_code == 401
    assert "ratelimit" not in answer.headers
    assert "ratelimit-policy" not in answer.headers


@pytest.mark.parametrize("path", ["/v1/users", "/v2/trips"])
async def test_a_json_body_over_max_body_bytes_is_a_documented_413(
    make_settings, app_client, path: str
) -> None:
    settings = make_settings(ApiSettings, max_body_bytes=1024)
    async with app_client(create_api_app(settings)) as client:
        answer = await client.post(path, json={"display_name": "x" * 2048})
        document = (await client.get("/openapi.json")).json()
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    assert set(answer.json()) == {"code", "message", "details", "request_id"}
    assert "413" in document["paths"][path]["post"]["responses"]


async def test_the_api_docs_log_in_at_the_apis_own_token_endpoint(client) -> None:
    document = (await client.get("/openapi.json")).json()
    flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flow["password"]["tokenUrl"] == "/v1/auth/token"
