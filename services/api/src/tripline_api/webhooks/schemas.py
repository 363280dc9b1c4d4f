"""Request and response models of the webhooks resource. The signing secret appears in the
response that created it only (registration, rotation); deliveries are signed with it as
docs/operations.md ("Webhooks") describes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tripline_common.security import SecretValue
from tripline_common.web import Page, selectable

MAX_URL_LENGTH = 2048
VERIFY_NOTE = (
    "Each delivery is a POST signed with the endpoint's secret: `X-Tripline-Signature: v1=<hex "
    "HMAC-SHA256 of '<X-Tripline-Timestamp>.<raw body>'>`. Verify it on the raw body before "
    "parsing, refuse timestamps older than 5 minutes, and deduplicate on `X-Tripline-Delivery`; "
    'the recipe is in docs/operations.md, section "Webhooks".'
)


def _well_formed_url(value: str) -> str:
    # The checks that do not depend on where the API runs; the SSRF guard (https, no private
    # hosts) is in the service, because it applies in staging and production only.
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must be ASCII without spaces (use punycode and percent-encoding)")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials")
    if parts.fragment:
        raise ValueError("must not contain a fragment")
    return value


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        # What a pattern can say of `_well_formed_url`: printable ASCII after an http(s)
        # scheme. Every string outside it is refused; port, host, credentials and fragment
        # are the description's.
        json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$"},
    ),
    AfterValidator(_well_formed_url),
]

PUBLIC_EXAMPLE: dict[str, Any] = {
    "id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
    "url": "https://hooks.example.com/tripline",
    "is_active": True,
    "created_at": "2026-11-26T12:00:00Z",
}
SECRET_EXAMPLE = "whsec_Qm9vZ2llV29vZ2llQm9vZ2llV29vZ2llQm9vZ2ll"  # noqa: S105 - an example


class WebhookCreate(BaseModel):
    """A URL to receive your alerts."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"url": PUBLIC_EXAMPLE["url"]}]}
    )

    url: WebhookUrl = Field(
        description=f"An http(s) URL of at most {MAX_URL_LENGTH} characters, without "
        "credentials or fragment. In staging and production it must be https and must not "
        "name localhost or a private, loopback or link-local IP address.",
        examples=[PUBLIC_EXAMPLE["url"]],
    )


class WebhookPublic(BaseModel):
    """A webhook endpoint as the API shows it (without its secret)."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [PUBLIC_EXAMPLE]}
    )

    id: uuid.UUID = Field(description="The endpoint's ID.")
    url: str = Field(description="Where alerts are POSTed.")
    is_active: bool = Field(description="Whether alerts are delivered to it.")
    created_at: datetime = Field(description="When it was registered (UTC).")


class WebhookWithSecret(WebhookPublic):
    """A new endpoint with its signing secret: returned once, at registration."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{**PUBLIC_EXAMPLE, "secret": SECRET_EXAMPLE}]},
    )

    secret: SecretValue = Field(
        description="The HMAC-SHA256 signing secret of this endpoint's deliveries. Shown only in "
        "this response: store it now. " + VERIFY_NOTE,
        examples=[SECRET_EXAMPLE],
    )


class WebhookSecretRotated(WebhookPublic):
    """An endpoint with its new signing secret, returned once, and the end of the overlap
    during which deliveries are signed with the old secret too."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    **PUBLIC_EXAMPLE,
                    "secret": SECRET_EXAMPLE,
                    "previous_secret_expires_at": "2026-11-28T12:00:00Z",
                }
            ]
        },
    )

    secret: SecretValue = Field(
        description="The new HMAC-SHA256 signing secret. Shown only in this response: store it "
        "now. " + VERIFY_NOTE,
        examples=[SECRET_EXAMPLE],
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until when each delivery also carries a signature made with the previous "
        "secret (`X-Tripline-Signature: v1=<new>,v1=<old>`), so the receiver can switch at any "
        "time before then; null when the previous secret was dropped at once.",
        examples=["2026-11-28T12:00:00Z"],
    )


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    WebhookListItem = WebhookPublic
else:
    WebhookListItem = selectable(WebhookPublic, name="WebhookListItem")


class WebhookPage(Page[WebhookListItem]):
    """A page of webhook endpoints."""
