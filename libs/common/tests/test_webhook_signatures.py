"""Webhook signatures: what a receiver computes to trust a delivery (docs/operations.md)."""

from __future__ import annotations

import hashlib
import hmac

from tripline_common.messaging import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    new_webhook_secret,
    signature_headers,
    verify_signature,
)

SECRET = "whsec_test"
BODY = b'{"type":"alert.raised"}'


def test_the_signature_is_the_documented_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1764000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1764000000, BODY) == f"v1={expected}"


def test_a_signed_delivery_verifies() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=1764000000)
    assert verify_signature(
        SECRET, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=1764000010
    )


def test_tampering_a_wrong_secret_or_an_old_timestamp_fails() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=1764000000)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert not verify_signature(SECRET, BODY + b" ", ts, sig, now=1764000000)
    assert not verify_signature("whsec_other", BODY, ts, sig, now=1764000000)
    assert not verify_signature(SECRET, BODY, "1764000001", sig, now=1764000000)
    assert not verify_signature(SECRET, BODY, ts, sig, now=1764000000 + 301)  # a replay
    assert not verify_signature(SECRET, BODY, None, sig)
    assert not verify_signature(SECRET, BODY, "not-a-number", sig)
    assert not verify_signature(SECRET, BODY, ts, "")


def test_any_of_several_signatures_may_match_during_secret_rotation() -> None:
    old = compute_signature("whsec_old", 1764000000, BODY)
    new = compute_signature(SECRET, 1764000000, BODY)
    assert verify_signature(SECRET, BODY, "1764000000", f"{old}, {new}", now=1764000000)


def test_secrets_are_random_and_prefixed() -> None:
    a, b = new_webhook_secret(), new_webhook_secret()
    assert a != b and a.startswith("whsec_") and len(a) > 40
