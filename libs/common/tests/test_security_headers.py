"""The security headers every app sends, on every kind of answer (success, refusal, crash, body
too large, untrusted host), and HSTS wherever TLS is a given (staging and prod)."""

from __future__ import annotations

import pytest

from tripline_common.web import ServiceState, serve
from tripline_common.web.server import DrainingServer
from tripline_devstack import free_port

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
}


async def test_every_answer_carries_the_security_headers(build_app, app_client) -> None:
    app = build_app(max_body_bytes=1024)
    async with app_client(app) as client:
        answers = {
            "ok": await client.get("/livez"),
            "not found": await client.get("/v1/items/missing"),
            "crash": await client.get("/v1/items/boom"),
            "too large": await client.post("/v1/items", content=b"x" * 4096),
            "bad host": await client.get("/v1/items/missing", headers={"Host": "evil.example"}),
        }
    assert [response.status_code for response in answers.values()] == [200, 404, 500, 413, 400]
    for name, response in answers.items():
        for header, value in EXPECTED.items():
            assert response.headers.get(header) == value, (name, header)
        assert "default-src 'none'" in response.headers["content-security-policy"], name
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name


@pytest.mark.parametrize("environment", ["staging", "prod"])
async def test_hsts_wherever_tls_is_a_given(build_app, app_client, environment: str) -> None:
    app = build_app(environment=environment, secret_key="k" * 40, trusted_hosts="testserver")
    async with app_client(app) as client:
        ok, missing = await client.get("/livez"), await client.get("/v1/items/missing")
    for response in (ok, missing):
        hsts = response.headers["strict-transport-security"]
        max_age = int(hsts.split("max-age=")[1].split(";")[0])
        assert max_age >= 31_536_000  # a year: what browsers' preload lists ask for


def test_served_apps_do_not_name_their_server(build_app, monkeypatch) -> None:
    # uvicorn adds `server: uvicorn` unless told not to; `serve` is what every process runs.
    served = {}
    monkeypatch.setattr(DrainingServer, "run", lambda self, *a, **k: served.update(c=self.config))
    # `serve` binds both sockets before running: free ports, so nothing else listening matters.
    app = build_app(port=free_port(), ops_port=free_port())

    serve(app, ServiceState.of(app).settings)

    assert served["c"].server_header is False
