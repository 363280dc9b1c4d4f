"""Typed dependencies of the telemetry routes: ingest's state, the calling device, the upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from tripline_common.platform import ErrorResponse, RateLimitedError
from tripline_common.web import RaiseSite, SessionDep, client_address, raises, rate_limited
from tripline_ingest.state import IngestState
from tripline_ingest.telemetry.body import RATE_LIMIT_SCOPE_KEY, parse_batch, read_body
from tripline_ingest.telemetry.devices import AuthenticatedDevice, authenticate_device
from tripline_ingest.telemetry.limits import DEVICE_UPLOADS, FAILED_KEY_LOOKUPS, LimitCheck
from tripline_ingest.telemetry.schemas import TelemetryBatchIn
from tripline_ingest.telemetry.service import validate_batch


async def get_ingest_state(request: Request) -> IngestState:
    """The ingest app's state (read without `IngestState.of`'s check: this runs per upload)."""
    state: IngestState = request.app.state.service
    return state


IngestStateDep = Annotated[IngestState, Depends(get_ingest_state)]


async def current_device(
    request: Request,
    session: SessionDep,
    state: IngestStateDep,
    x_device_key: Annotated[
        str | None, Header(description="The device's API key.", max_length=128)
    ] = None,
) -> AuthenticatedDevice:
    """The device authenticated by its API key, within its rate limits (else 401 or 429)."""
    client = client_address(request)
    try:
        device = await authenticate_device(
            session=session,
            cache=state.device_keys,
            api_key=x_device_key,
            failed_lookups=state.failed_lookups,
            client=client,
        )
    except RateLimitedError:
        request.scope[RATE_LIMIT_SCOPE_KEY] = "failed_key_lookups"  # For the refusal metric.
        raise
    if await state.rate_limiter.check(device.id) is LimitCheck.UNCHECKED:
        state.metrics.rate_limit_unchecked.inc()
    return device


_limits = rate_limited(DEVICE_UPLOADS, FAILED_KEY_LOOKUPS, what="uploads or unknown keys")
raises(
    RaiseSite(
        {
            401: {
                "model": ErrorResponse,
                "description": "Missing, unknown or revoked device key.",
            },
            **_limits.responses,
        },
        success_headers=_limits.success_headers,
    ),
    current_device,
)
CurrentDevice = Annotated[AuthenticatedDevice, Depends(current_device)]


async def telemetry_batch(
    request: Request, device: CurrentDevice, state: IngestStateDep
) -> TelemetryBatchIn:
    """The upload, decoded and validated. Depends on the device so that an unauthenticated or
    rate-limited request is refused before its body is read."""
    body = await read_body(request, max_decompressed_bytes=state.settings.max_decompressed_bytes)
    batch = parse_batch(body)
    validate_batch(batch, state.settings)
    return batch


TelemetryBatchBody = Annotated[TelemetryBatchIn, Depends(telemetry_batch)]
