"""Models of the alert streams: the ticket answer, and the WebSocket's heartbeat messages.

The alert message itself is `tripline_common.messaging.AlertEvent` (the same document as the
pub/sub message and the webhook body). These models are what the streams send and read, and
the AsyncAPI document's payload schemas are generated from them (`asyncapi.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StreamTicket(BaseModel):
    """A single-use credential for the URL of `WS /v1/alerts/ws` or `GET /v1/alerts/stream`."""

    ticket: str = Field(description="Send as `?ticket=`; valid once, within `expires_in`.")
    expires_in: int = Field(description="Seconds until the ticket expires unused.")


class Ping(BaseModel):
    """The server's WebSocket heartbeat: answer it with a `pong`."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    type: Literal["ping"] = Field("ping", description="Always `ping`.")


class Pong(BaseModel):
    """The client's answer to a `ping`. Other fields are ignored, and so is any other message."""

    type: Literal["pong"] = Field(description="Always `pong`.")


PING_TEXT = Ping().model_dump_json()
"""The exact text of a ping frame."""
