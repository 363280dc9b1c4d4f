"""Telemetry endpoints: declarations only; the work happens in `telemetry.service`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from tripline_common.platform import ErrorResponse
from tripline_common.web import QueueDep, SessionDep, links
from tripline_ingest.telemetry import service
from tripline_ingest.telemetry.body import request_body_doc
from tripline_ingest.telemetry.deps import CurrentDevice, IngestStateDep, TelemetryBatchBody
from tripline_ingest.telemetry.schemas import BatchAccepted, BatchStatusOut, TelemetryBatchIn

router = APIRouter(tags=["telemetry"])


@router.post(
    "/telemetry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    summary="Upload a batch of telemetry",
    description="Stores the batch and its events durably (one transaction) before answering, "
    "then queues their processing. The body may be gzip-compressed "
    "(`Content-Encoding: gzip`). Resending a batch with the same `client_batch_id` is safe: "
    "it is stored once, and the answer says `duplicate`. Always send one, and resend after a "
    "timeout or a 503.",
    openapi_extra={
        "requestBody": request_body_doc(
            TelemetryBatchIn, "The fixes, oldest first; JSON, optionally gzip-compressed."
        )
    },
    responses={
        202: {
            "description": "Stored; processing queued.",
            "links": links("batch_id", "$response.body#/batch_id", "get_batch"),
        },
        400: {"model": ErrorResponse, "description": "The gzip encoding is broken."},
        413: {
            "model": ErrorResponse,
            "description": "The body is too large, as sent or once decompressed.",
        },
        415: {
            "model": ErrorResponse,
            "description": "Not JSON, or a Content-Encoding other than gzip.",
        },
        422: {
            "model": ErrorResponse,
            "description": "Invalid events; `details` has one entry per problem, located by "
            "event index and field.",
        },
    },
)
async def upload_batch(
    device: CurrentDevice,
    batch: TelemetryBatchBody,
    session: SessionDep,
    queue: QueueDep,
    state: IngestStateDep,
) -> BatchAccepted:
    return await service.accept_batch(
        session=session, queue=queue, state=state, device=device, batch=batch
    )


@router.get(
    "/batches/{batch_id}",
    response_model=BatchStatusOut,
    summary="Follow an uploaded batch",
    description="Where one of the calling device's batches is in the pipeline. Another "
    "device's batch is a 404, as if it did not exist.",
    responses={404: {"model": ErrorResponse, "description": "No such batch for this device."}},
)
async def get_batch(
    batch_id: uuid.UUID, device: CurrentDevice, session: SessionDep
) -> BatchStatusOut:
    return await service.get_batch(session=session, device=device, batch_id=batch_id)
