"""Telemetry endpoints: declarations only; the work happens in `telemetry.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status

from tripline_common.deps import QueueDep, SessionDep
from tripline_common.errors import ErrorResponse
from tripline_common.models import Device
from tripline_ingest.telemetry import service
from tripline_ingest.telemetry.schemas import BatchAccepted, TelemetryBatchIn

router = APIRouter(prefix="/telemetry", tags=["telemetry"])


async def current_device(
    session: SessionDep,
    x_device_key: Annotated[
        str | None, Header(description="The device's API key.", max_length=128)
    ] = None,
) -> Device:
    """The device authenticated by its API key."""
    return await service.authenticate_device(session=session, api_key=x_device_key)


DeviceDep = Annotated[Device, Depends(current_device)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    summary="Upload a batch of telemetry",
    description="Stores the batch and its events durably (one transaction), then queues their "
    "processing. Resending a batch with the same `client_batch_id` is safe: it is stored once.",
    responses={
        401: {"model": ErrorResponse, "description": "Missing or unknown device key."},
        413: {"model": ErrorResponse, "description": "The body is too large."},
        422: {
            "model": ErrorResponse,
            "description": "Invalid events; `details` has one per event.",
        },
    },
)
async def upload_batch(
    batch: TelemetryBatchIn,
    request: Request,
    device: DeviceDep,
    session: SessionDep,
    queue: QueueDep,
) -> BatchAccepted:
    service.validate_batch(batch, request.app.state.settings)
    return await service.store_batch(session=session, queue=queue, device=device, batch=batch)
