"""Response models of the alert streams."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StreamTicket(BaseModel):
    """A single-use credential for the URL of `WS /v1/alerts/ws` or `GET /v1/alerts/stream`."""

    ticket: str = Field(description="Send as `?ticket=`; valid once, within `expires_in`.")
    expires_in: int = Field(description="Seconds until the ticket expires unused.")
