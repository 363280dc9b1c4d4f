"""Route responses: the documented error answers every app builds its `responses=` from, the
links from one operation's answer to the next, and the direct JSON response of the hot
reads."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel

from tripline_common.platform.errors import ErrorResponse

Responses = dict[int | str, dict[str, Any]]
"""What a route's or a router's `responses=` takes: the documented answers by status code."""


def documented_error(status_code: int, description: str) -> Responses:
    """One documented error answer of a route, in the shared `ErrorResponse` shape; combine
    several with `{**a, **b}`."""
    return {status_code: {"model": ErrorResponse, "description": description}}


INVALID_LIST_QUERY = documented_error(
    400,
    "A sort field outside the allowlist (`invalid_sort`), an unknown field in `fields` "
    "(`invalid_fields`), a cursor that is not ours or is for another sort (`invalid_cursor`, "
    "`cursor_sort_mismatch`), or `offset` with `cursor`.",
)
"""The 400 of every list route that takes `pagination.page_params`."""


_LINK_ROUTE = "x-tripline-route"


def links(parameter: str, source: str, *route_names: str) -> dict[str, Any]:
    """The OpenAPI `links` of an answer: each route of `route_names` (named as for `url_for`)
    takes its path parameter `parameter` from `source`, a runtime expression such as
    `$response.body#/id`. Put them in the answer's `responses=` entry (`"links": ...`);
    `link_operations` names the operations when the app builds its document."""
    return {
        name: {
            _LINK_ROUTE: name,
            "parameters": {parameter: source},
            "description": f"`{parameter}` of this answer, for the next request.",
        }
        for name in route_names
    }


def link_operations(app: FastAPI) -> None:
    """Make `app`'s document name each link's target by its `operationId`: the operation at
    the route's path (`url_path_for`) whose ID FastAPI derived from the route's name. A name
    that matches no operation fails the document's build, so a link cannot point nowhere."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for item in document.get("paths", {}).values():
            for operation in item.values():
                for answer in operation.get("responses", {}).values():
                    for link in answer.get("links", {}).values():
                        name = link.pop(_LINK_ROUTE)
                        link["operationId"] = _operation_id(app, document, name, link)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _operation_id(app: FastAPI, document: dict[str, Any], name: str, link: dict[str, Any]) -> str:
    placeholders = {parameter: f"{{{parameter}}}" for parameter in link["parameters"]}
    path = app.url_path_for(name, **placeholders)
    # FastAPI's operation IDs start with the route's name (`get_trip_v2_v2_trips__trip_id__get`).
    [operation_id] = [
        operation["operationId"]
        for operation in document["paths"][path].values()
        if operation["operationId"].startswith(f"{name}_")
    ]
    return str(operation_id)


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as JSON without FastAPI's second pass, for hot reads only (docs/performance.md)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
