"""Credentials in URLs quoted by the libraries' log lines are redacted."""

from __future__ import annotations

import pytest

from tripline_common.platform.logging import redact_credential_params


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:5 - "WebSocket /v1/alerts/ws?ticket=AbC-_9" [accepted]',
            '127.0.0.1:5 - "WebSocket /v1/alerts/ws?ticket=[redacted]" [accepted]',
        ),
        ("GET /x?a=1&access_token=eyJ.x.y&b=2", "GET /x?a=1&access_token=[redacted]&b=2"),
        ("/p?TOKEN=abc#frag", "/p?TOKEN=[redacted]#frag"),
        ("/p?refresh_token=r1 next", "/p?refresh_token=[redacted] next"),
    ],
)
def test_credential_query_parameters_are_redacted(line: str, expected: str) -> None:
    assert redact_credential_params(line) == expected


@pytest.mark.parametrize("line", ["request", "/v1/trips?cursor=abc&limit=5", "mytoken=1", "x"])
def test_other_text_is_left_alone(line: str) -> None:
    assert redact_credential_params(line) == line
