"""Route responses: the documented answers of routes and of the places that raise (middleware,
dependencies), merged into each operation; the links from one operation's answer to the next;
and the direct JSON response of the hot reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from tripline_common.platform.errors import ErrorResponse
from tripline_common.security.ratelimit import RatePolicy

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


Headers = dict[str, dict[str, Any]]
"""OpenAPI header objects by header name."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WRITE_METHODS = BODY_METHODS | {"DELETE"}
"""The methods whose operations take a request body."""


@dataclass(frozen=True)
class Operation:
    """One operation of an app's OpenAPI document, as a raise site sees it."""

    path: str
    method: str
    status_code: int
    dependant: Dependant


@dataclass(frozen=True)
class RaiseSite:
    """What a place that answers for a route (a middleware, an error handler, a dependency)
    can answer: error `responses` (`documented_error` entries), and `success_headers` it puts on
    the operation's success answer. `applies` picks the operations it concerns, among all of
    an app-wide site's, or among those whose dependency graph holds a dependency's."""

    responses: Responses
    success_headers: Headers = field(default_factory=dict)
    applies: Callable[[Operation], bool] = lambda _operation: True


def writes(operation: Operation) -> bool:
    """An operation that may change stored data (POST, PUT, PATCH, DELETE)."""
    return operation.method in WRITE_METHODS


def takes_body(operation: Operation) -> bool:
    """An operation a client may send a body to (POST, PUT, PATCH)."""
    return operation.method in BODY_METHODS


_SITE_ATTR = "__tripline_raise_site__"
CallT = TypeVar("CallT")


def raises(site: RaiseSite, call: CallT) -> CallT:
    """Mark a dependency callable with what it can answer (call again to add another site);
    every operation whose dependency graph holds it and that the site `applies` to documents
    that (`document_operations`). Returns `call`."""
    setattr(call, _SITE_ATTR, (*raise_sites_of(call), site))
    return call


def raise_sites_of(call: object) -> tuple[RaiseSite, ...]:
    """The `RaiseSite`s a dependency callable was marked with."""
    sites = getattr(call, _SITE_ATTR, ())
    return sites if isinstance(sites, tuple) else ()


def dependency_sites(operation: Operation) -> list[RaiseSite]:
    """The raise sites in the operation's dependency graph that apply to it, each once."""
    found: dict[int, RaiseSite] = {}
    stack = list(operation.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        for site in raise_sites_of(dependant.call):
            if site.applies(operation):
                found.setdefault(id(site), site)
        stack.extend(dependant.dependencies)
    return list(found.values())


def operations(routes: Sequence[BaseRoute]) -> Iterator[Operation]:
    """Every operation the OpenAPI document of an app with `routes` describes."""
    for context in iter_route_contexts(routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        for method in sorted(context.methods or ()):
            yield Operation(
                path=str(context.path_format),
                method=method,
                status_code=context.status_code or 200,
                dependant=context.dependant,
            )


def document_operations(
    schema: dict[str, Any], routes: Sequence[BaseRoute], app_sites: Sequence[RaiseSite]
) -> None:
    """Merge into each operation of `schema` what every raise site that applies to it can
    answer: the app-wide ones (middleware, error handlers) and those of its dependencies.

    What the route declares itself wins (it is the more specific description); headers are
    merged, so a route's own 429 still lists the RateLimit headers of its limits.
    """
    for operation in operations(routes):
        answers = schema["paths"][operation.path][operation.method.lower()]["responses"]
        sites = [site for site in app_sites if site.applies(operation)]
        for site in [*sites, *dependency_sites(operation)]:
            for status, answer in site.responses.items():
                _merge(answers.setdefault(str(status), {}), _openapi_answer(answer))
            if site.success_headers:
                _merge(answers[str(operation.status_code)], {"headers": site.success_headers})


def _openapi_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A `documented_error` entry as an OpenAPI response object."""
    converted = {key: value for key, value in answer.items() if key != "model"}
    if answer.get("model") is ErrorResponse:
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        converted["content"] = {"application/json": {"schema": ref}}
    return converted


def _merge(current: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Fill `current` (an OpenAPI response) from `extra`, keeping what it says already."""
    headers = {**extra.get("headers", {}), **current.get("headers", {})}
    for key, value in extra.items():
        current.setdefault(key, value)
    if headers:
        current["headers"] = headers


RETRY_AFTER_HEADER: Headers = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def rate_limit_headers(policies: Sequence[RatePolicy]) -> Headers:
    """The IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers) of `policies`."""
    names = ", ".join(f"`{p.name}`" for p in policies)
    return {
        "RateLimit-Policy": {
            "description": f"The quota policies of this operation ({names}), as a structured "
            'field list: `"<policy>";q=<requests>;w=<window seconds>`.',
            "schema": {"type": "string"},
        },
        "RateLimit": {
            "description": "What is left of each policy checked for this request: "
            '`"<policy>";r=<remaining>;t=<seconds until the window resets>`.',
            "schema": {"type": "string"},
        },
    }


def rate_limited(*policies: RatePolicy, what: str = "requests") -> RaiseSite:
    """The raise site of a dependency that applies rate limits: 429 with `Retry-After`, and the
    RateLimit headers on the success answer and on the 429."""
    rules = "; ".join(
        f"`{p.name}`: {p.limit_setting.upper()} per {p.window_setting.upper()}" for p in policies
    )
    headers = rate_limit_headers(policies)
    return RaiseSite(
        responses={
            429: {
                "model": ErrorResponse,
                "description": f"Too many {what} ({rules}); wait `Retry-After` seconds.",
                "headers": {**RETRY_AFTER_HEADER, **headers},
            }
        },
        success_headers=headers,
    )


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


def link_operations(app: FastAPI, document: dict[str, Any]) -> None:
    """Name each link's target in `app`'s `document` by its `operationId`: the operation at
    the route's path (`url_path_for`) whose ID FastAPI derived from the route's name. A name
    that matches no operation fails the document's build, so a link cannot point nowhere."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for answer in operation.get("responses", {}).values():
                for link in answer.get("links", {}).values():
                    name = link.pop(_LINK_ROUTE)
                    link["operationId"] = _operation_id(app, document, name, link)


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
