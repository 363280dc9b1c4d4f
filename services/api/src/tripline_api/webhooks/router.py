"""`/v1/webhooks` endpoints: declarations only; the work happens in `webhooks.service`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from tripline_api.responses import INVALID_LIST_QUERY, UNAUTHORIZED, documented_error, not_found
from tripline_api.webhooks import service
from tripline_api.webhooks.schemas import (
    VERIFY_NOTE,
    WebhookCreate,
    WebhookPage,
    WebhookPublic,
    WebhookSecretRotated,
    WebhookWithSecret,
)
from tripline_common.web import (
    CurrentUser,
    PageParams,
    SessionDep,
    SettingsDep,
    links,
    page_params,
)

NOT_FOUND = not_found("webhook endpoint")

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=UNAUTHORIZED)

WebhookId = Annotated[uuid.UUID, Path(description="The webhook endpoint's ID.")]
WebhookPageParams = Annotated[PageParams, Depends(page_params(service.WEBHOOK_SORT, WebhookPage))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    summary="Register a webhook endpoint",
    description="Registers a URL that will receive your alerts as POSTs from the worker, and "
    "returns its signing `secret`, shown only in this response. " + VERIFY_NOTE + " In staging "
    "and production the URL must be https and must not name localhost, a private, loopback, "
    "link-local or other special-purpose address (also inside NAT64, 6to4 or IPv4-mapped "
    "forms), or a numeric host such as `2130706433` (`unsafe_webhook_url`, 422); deliveries "
    "to a name that resolves to such an address are refused and recorded as failed.",
    responses={
        201: {
            "description": "Registered.",
            "headers": {"Location": {"description": "The endpoint."}},
            "links": links(
                "webhook_id",
                "$response.body#/id",
                "get_webhook",
                "rotate_webhook_secret",
                "delete_webhook",
            ),
        },
        **documented_error(
            422,
            "A malformed URL (`validation_error`) or one the SSRF guard refuses "
            "(`unsafe_webhook_url`).",
        ),
    },
)
async def register_webhook(
    data: WebhookCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> WebhookWithSecret:
    endpoint = await service.register_webhook(
        session=session,
        owner_id=user.id,
        url=data.url,
        guard_targets=not settings.webhook_private_targets_allowed,
    )
    response.headers["Location"] = str(request.url_for("get_webhook", webhook_id=endpoint.id))
    return WebhookWithSecret.model_validate(endpoint)


@router.get(
    "",
    response_model=WebhookPage,
    summary="List your webhook endpoints",
    description="Your endpoints, a page at a time (`limit` + `offset`, or the opaque `cursor`); "
    "sort on `created_at` or `url`; narrow items with `fields`. Secrets are never listed.",
    responses=INVALID_LIST_QUERY,
)
async def list_webhooks(
    user: CurrentUser, session: SessionDep, page: WebhookPageParams
) -> WebhookPage:
    result = await service.list_webhooks(session=session, owner_id=user.id, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.get(
    "/{webhook_id:uuid}",
    name="get_webhook",
    response_model=WebhookPublic,
    summary="Get a webhook endpoint",
    description="One of your endpoints (without its secret).",
    responses=NOT_FOUND,
)
async def get_webhook(
    webhook_id: WebhookId, user: CurrentUser, session: SessionDep
) -> WebhookPublic:
    endpoint = await service.get_webhook(session=session, owner_id=user.id, webhook_id=webhook_id)
    return WebhookPublic.model_validate(endpoint)


@router.post(
    "/{webhook_id:uuid}/rotate-secret",
    response_model=WebhookSecretRotated,
    summary="Rotate a webhook endpoint's secret",
    description="Gives the endpoint a new signing `secret`, shown only in this response. For "
    "`grace_seconds` (24 h by default) every delivery is signed with both secrets, the new "
    "one first (`X-Tripline-Signature: v1=<new>,v1=<old>`), so your receiver keeps verifying "
    "while you deploy the new secret to it; `previous_secret_expires_at` says until when. "
    "With `grace_seconds=0` the old secret stops at once. A secret kept by an earlier "
    "rotation is dropped. " + VERIFY_NOTE,
    responses={
        200: {
            "description": "Rotated; the new secret is in the body, this once.",
            "headers": {"Cache-Control": {"description": "`no-store`: the body is a secret."}},
        },
        **NOT_FOUND,
        **documented_error(
            422,
            f"`grace_seconds` outside 0..{service.MAX_SECRET_GRACE_SECONDS} (`validation_error`).",
        ),
    },
)
async def rotate_webhook_secret(
    webhook_id: WebhookId,
    user: CurrentUser,
    session: SessionDep,
    grace_seconds: Annotated[
        int,
        Query(
            ge=0,
            le=service.MAX_SECRET_GRACE_SECONDS,
            description="Seconds deliveries stay signed with the old secret too: 0 (stop at "
            f"once) to {service.MAX_SECRET_GRACE_SECONDS} (7 days).",
            examples=[service.DEFAULT_SECRET_GRACE_SECONDS],
        ),
    ] = service.DEFAULT_SECRET_GRACE_SECONDS,
) -> WebhookSecretRotated:
    endpoint = await service.rotate_webhook_secret(
        session=session,
        owner_id=user.id,
        webhook_id=webhook_id,
        grace_seconds=grace_seconds,
    )
    return WebhookSecretRotated.model_validate(endpoint)


@router.delete(
    "/{webhook_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    response_class=Response,
    summary="Remove a webhook endpoint",
    description="Stops deliveries to the endpoint and removes it with its delivery records: "
    "204. A second DELETE is a 404, like any endpoint you do not have.",
    responses=NOT_FOUND,
)
async def delete_webhook(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> None:
    await service.delete_webhook(session=session, owner_id=user.id, webhook_id=webhook_id)
