"""`/v1/alerts` endpoints: declarations only; the work happens in `alerts.service`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status

from tripline_api.alerts import service
from tripline_api.alerts.schemas import (
    AlertBulkAcknowledge,
    AlertBulkResult,
    AlertFilters,
    AlertPage,
    AlertPublic,
)
from tripline_common.platform import ErrorResponse
from tripline_common.web import CurrentUser, PageParams, SessionDep, page_params

Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."}
}
NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "No such alert among yours."}}
TRANSITION_CONFLICT: Responses = {
    409: {
        "model": ErrorResponse,
        "description": "A resolved alert cannot be acknowledged (`invalid_alert_transition`).",
    }
}
INVALID_LIST_QUERY: Responses = {
    400: {
        "model": ErrorResponse,
        "description": "A sort field outside the allowlist (`invalid_sort`), an unknown field in "
        "`fields` (`invalid_fields`), a cursor that is not ours or is for another sort "
        "(`invalid_cursor`, `cursor_sort_mismatch`), or `offset` with `cursor`.",
    }
}

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=UNAUTHORIZED)

AlertId = Annotated[uuid.UUID, Path(description="The alert's ID.")]
AlertFiltersQuery = Annotated[AlertFilters, Query()]
AlertPageParams = Annotated[PageParams, Depends(page_params(service.ALERT_SORT, AlertPage))]


@router.get(
    "",
    response_model=AlertPage,
    summary="List your alerts",
    description="Alerts raised on your trips, a page at a time (`limit` + `offset`, or the "
    "opaque `cursor`). Filter by status, rule, trip and time raised; sort on `raised_at`, "
    "`rule` or `status` (default `-raised_at`, newest first); narrow items with `fields`. "
    "`Link` has rel `next` / `prev`.",
    responses=INVALID_LIST_QUERY,
)
async def list_alerts(
    user: CurrentUser, session: SessionDep, filters: AlertFiltersQuery, page: AlertPageParams
) -> AlertPage:
    result = await service.list_alerts(
        session=session, owner_id=user.id, filters=filters, page=page
    )
    return page.respond(result)  # type: ignore[no-any-return]


@router.post(
    "/acknowledge",
    status_code=status.HTTP_207_MULTI_STATUS,
    response_model=AlertBulkResult,
    summary="Acknowledge several alerts",
    description="Acknowledges up to 100 alerts. Always 207 Multi-Status when the request itself "
    "is well-formed: each ID has its own `status` (200, 404 for an alert that is not yours, "
    "409 for a resolved one) and either the alert or an error in the shared shape. Already "
    "acknowledged alerts succeed unchanged, so a retry is harmless.",
)
async def acknowledge_alerts(
    data: AlertBulkAcknowledge, user: CurrentUser, session: SessionDep
) -> AlertBulkResult:
    outcomes = await service.acknowledge_alerts(
        session=session, owner_id=user.id, alert_ids=data.ids
    )
    return AlertBulkResult.of(outcomes)


@router.get(
    "/{alert_id:uuid}",
    response_model=AlertPublic,
    summary="Get an alert",
    description="One of your alerts.",
    responses=NOT_FOUND,
)
async def get_alert(alert_id: AlertId, user: CurrentUser, session: SessionDep) -> AlertPublic:
    alert = await service.get_alert(session=session, owner_id=user.id, alert_id=alert_id)
    return AlertPublic.model_validate(alert)


@router.post(
    "/{alert_id:uuid}/acknowledge",
    response_model=AlertPublic,
    summary="Acknowledge an alert",
    description="Marks an open alert as being handled (`acknowledged`, with `acknowledged_at`). "
    "Idempotent: acknowledging an acknowledged alert returns it unchanged. A resolved alert "
    "is a 409.",
    responses={**NOT_FOUND, **TRANSITION_CONFLICT},
)
async def acknowledge_alert(
    alert_id: AlertId, user: CurrentUser, session: SessionDep
) -> AlertPublic:
    alert = await service.acknowledge_alert(session=session, owner_id=user.id, alert_id=alert_id)
    return AlertPublic.model_validate(alert)


@router.post(
    "/{alert_id:uuid}/resolve",
    response_model=AlertPublic,
    summary="Resolve an alert",
    description="Closes an open or acknowledged alert (`resolved`, with `resolved_at`). "
    "Idempotent: resolving a resolved alert returns it unchanged.",
    responses=NOT_FOUND,
)
async def resolve_alert(alert_id: AlertId, user: CurrentUser, session: SessionDep) -> AlertPublic:
    alert = await service.resolve_alert(session=session, owner_id=user.id, alert_id=alert_id)
    return AlertPublic.model_validate(alert)
