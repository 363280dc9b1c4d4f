"""Which addresses and URLs a webhook delivery may reach (`tripline_common.security.egress`)."""

from __future__ import annotations

import functools
import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tripline_common.platform import CommonSettings
from tripline_common.security import TargetRefusedError, guarded_transport, url_refusal
from tripline_common.security.egress import address_refusal

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space
    "192.0.0.170",  # IETF protocol assignments
    "192.0.2.1",
    "198.18.0.1",  # benchmarking
    "198.51.100.1",
    "203.0.113.1",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast: `is_global` alone calls it global
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.88.99.1",
    "::",
    "::1",
    "fe80::1",
    "fd00::1",
    "fec0::1",
    "ff02::1",
    "100::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "64:ff9b::127.0.0.1",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",  # local-use NAT64
    "64:ff9b:1::808:808",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC_ADDRESSES = [
    "93.184.215.14",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "2a00:1450:4001:82a::200e",
    "64:ff9b::8.8.8.8",  # NAT64 of a public address: what DNS64 answers in IPv6-only clusters
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_internal_special_purpose_and_translated_addresses_are_refused(address) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_a_refusal_names_the_address_inside_a_translated_form() -> None:
    reason = address_refusal(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    assert reason == "NAT64 form of 169.254.169.254, which is not a public address"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",
        "http://2130706433/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://017700000001/",
        "https://127.1/",
        "https://localhost/",
        "https://hooks.localhost./",
        "https://[::ffff:7f00:1]/",
        "https://[64:ff9b::7f00:1]/",
        "https:///no-host",
    ],
)
def test_urls_naming_internal_hosts_in_any_form_are_refused(url) -> None:
    assert url_refusal(url) is not None


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/in", "https://93.184.215.14:8443/", "https://[2606:4700::1]/"],
)
def test_public_https_urls_are_allowed(url) -> None:
    assert url_refusal(url) is None


def settings(**values: object) -> CommonSettings:
    return CommonSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_private_webhook_targets_are_allowed_in_dev_and_test_unless_turned_off() -> None:
    assert settings(environment="dev").webhook_private_targets_allowed
    assert settings(environment="test").webhook_private_targets_allowed
    assert not settings(
        environment="test", webhook_allow_private_targets=False
    ).webhook_private_targets_allowed
    assert not settings(environment="prod", secret_key="s" * 48).webhook_private_targets_allowed


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_staging_and_prod_refuse_to_allow_private_webhook_targets(environment) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_ALLOW_PRIVATE_TARGETS must not be true"):
        settings(environment=environment, secret_key="s" * 48, webhook_allow_private_targets=True)


# --- the guarded transport over real sockets: one lookup, TLS for the name ----------------------


def resolving_to(address: str, calls: list[str]):
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return [address]

    return resolve


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict[str, Path]:
    """A test CA and a certificate it signed for hooks.example.test (openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    run = functools.partial(subprocess.run, check=True, capture_output=True, cwd=d)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=Test CA", "-keyout", "ca.key", "-out", "ca.pem"])  # fmt: skip
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hooks.example.test",
         "-keyout", "leaf.key", "-out", "leaf.csr"])  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:hooks.example.test\n")
    run(["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "leaf.pem"])  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "leaf.pem", "key": d / "leaf.key"}


@pytest.fixture
def tls_receiver(tls_files) -> Iterator[dict[str, Any]]:
    """An https server on 127.0.0.1 with the hooks.example.test certificate; it records the
    SNI name and Host header of each request."""
    seen: dict[str, Any] = {"sni": [], "hosts": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["hosts"].append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen["port"] = server.server_address[1]
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


async def test_tls_is_verified_for_the_name_while_connecting_to_the_resolved_address(
    tls_files, tls_receiver
) -> None:
    calls: list[str] = []
    trust = ssl.create_default_context(cafile=str(tls_files["ca"]))
    transport = guarded_transport(
        allow_private=True, resolver=resolving_to("127.0.0.1", calls), verify=trust
    )
    port = tls_receiver["port"]
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.post(f"https://hooks.example.test:{port}/in", content=b"{}")
        # The same server under another name: its certificate does not name it.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://other.example.test:{port}/in", content=b"{}")
    assert answer.status_code == 204
    assert tls_receiver["sni"][0] == "hooks.example.test"
    assert tls_receiver["hosts"] == [f"hooks.example.test:{port}"]
    assert calls == ["hooks.example.test", "other.example.test"]  # One lookup per connection.


async def test_the_guard_refuses_before_any_connection_is_made() -> None:
    calls: list[str] = []
    transport = guarded_transport(allow_private=False, resolver=resolving_to("10.0.0.7", calls))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(
            TargetRefusedError, match=r"hooks\.example\.test resolves to 10\.0\.0\.7"
        ):
            await client.post("https://hooks.example.test/in", content=b"{}")
    assert calls == ["hooks.example.test"]
