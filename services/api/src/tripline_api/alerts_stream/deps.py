"""Dependencies of the stream routes: the caller of a stream, by ticket or bearer header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from tripline_api.alerts_stream.service import authenticate_stream, refuse_credentials_in_url
from tripline_api.state import ApiState
from tripline_common.security import AccessClaims, Principal

# The bearer header is optional here (a ticket may stand in for it); same scheme in OpenAPI.
_optional_bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", scheme_name="OAuth2PasswordBearer", auto_error=False
)


@dataclass(frozen=True)
class StreamCaller:
    """Who opened a stream, and the claims that bound its lifetime."""

    principal: Principal
    claims: AccessClaims


async def get_stream_caller(
    request: Request,
    bearer: Annotated[str | None, Depends(_optional_bearer)],
    ticket: Annotated[
        str | None,
        Query(
            max_length=100,
            description="A single-use stream ticket from `POST /v1/alerts/stream-tickets` "
            "(for browsers' `EventSource`, which cannot send headers).",
        ),
    ] = None,
) -> StreamCaller:
    refuse_credentials_in_url(request.query_params)
    principal, claims = await authenticate_stream(
        ApiState.of(request.app), ticket=ticket, bearer=bearer
    )
    return StreamCaller(principal, claims)


StreamCallerDep = Annotated[StreamCaller, Depends(get_stream_caller)]
