"""The client address a real API process records: X-Forwarded-For counts only when a configured
proxy sent it, and then the client is the rightmost address no trusted proxy owns (the one the
last trusted proxy saw). Seen through the session a login opens (GET /v1/auth/sessions, `ip`)."""

from __future__ import annotations

import httpx
import pytest

from tests.test_pipeline import seed

# The test talks from 127.0.0.1 (configured as the proxy) or from 127.0.0.2 (a client that
# reaches the pod directly): the whole of 127.0.0.0/8 is loopback on Linux.
PROXY = "127.0.0.1"
DIRECT_CLIENT = "127.0.0.2"


def login_and_read_session_ip(api_url: str, source: str, forwarded_for: str | None) -> str:
    """Log the demo user in from `source` with this X-Forwarded-For; the new session's address."""
    from scripts.seed import DEMO_PASSWORD

    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=api_url, transport=transport, timeout=10) as client:
        login = client.post(
            "/v1/auth/token",
            data={"username": "demo@tripline.dev", "password": DEMO_PASSWORD},
            headers=headers,
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        sessions = client.get(
            "/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"}
        ).raise_for_status()
    [current] = [s for s in sessions.json() if s["current"]]
    return current["ip"]


@pytest.fixture
def api_behind_proxies(processes, process_env):
    """The API trusting the test's loopback proxy and a 10.0.0.0/8 proxy tier behind it."""
    seed(process_env)
    api = processes.start("api", "tripline-api", FORWARDED_ALLOW_IPS=f"{PROXY},10.0.0.0/8")
    processes.wait_ready(api)
    return api


@pytest.mark.slow
def test_a_forged_forwarded_for_from_a_trusted_proxy_yields_the_rightmost_untrusted_address(
    api_behind_proxies,
) -> None:
    # The client wrote "1.2.3.4"; its real address 203.0.113.7 was appended by the edge proxy,
    # and 10.1.2.3 (an inner trusted proxy) appended what it saw.
    ip = login_and_read_session_ip(api_behind_proxies.url, PROXY, "1.2.3.4, 203.0.113.7, 10.1.2.3")
    assert ip == "203.0.113.7"


@pytest.mark.slow
def test_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(
    api_behind_proxies,
) -> None:
    ip = login_and_read_session_ip(api_behind_proxies.url, DIRECT_CLIENT, "1.2.3.4, 203.0.113.7")
    assert ip == DIRECT_CLIENT


@pytest.mark.slow
def test_rotating_the_forwarded_for_prefix_never_changes_the_client_address(
    api_behind_proxies,
) -> None:
    """What per-address limits (login attempts) key on stays the real address, whatever the
    client writes in front of it."""
    addresses = {
        login_and_read_session_ip(api_behind_proxies.url, PROXY, f"198.51.100.{n}, 203.0.113.7")
        for n in range(1, 6)
    }
    assert addresses == {"203.0.113.7"}


@pytest.mark.slow
def test_an_api_trusting_no_proxy_records_the_peer_address(processes, process_env) -> None:
    seed(process_env)
    api = processes.start("api", "tripline-api", FORWARDED_ALLOW_IPS="")
    processes.wait_ready(api)
    assert login_and_read_session_ip(api.url, PROXY, "1.2.3.4") == PROXY


@pytest.mark.slow
@pytest.mark.parametrize("value", ["ingress-nginx", "10.0.0.1/8", "*,10.0.0.0/8"])
def test_a_malformed_proxy_list_stops_the_process_with_a_clear_error(processes, value: str) -> None:
    api = processes.start("api", "tripline-api", FORWARDED_ALLOW_IPS=value)
    assert api.popen.wait(30) != 0
    log = "\n".join(api.log_lines())
    assert "forwarded_allow_ips" in log
    assert "is not an IP address or CIDR" in log or "cannot be combined" in log


@pytest.mark.slow
def test_production_refuses_to_trust_every_peer(processes) -> None:
    api = processes.start(
        "api",
        "tripline-api",
        ENVIRONMENT="prod",
        SECRET_KEY="p" * 48,
        TRUSTED_HOSTS="api.example.com",
        FORWARDED_ALLOW_IPS="*",
    )
    assert api.popen.wait(30) != 0
    assert "FORWARDED_ALLOW_IPS must list the proxies' addresses" in "\n".join(api.log_lines())
