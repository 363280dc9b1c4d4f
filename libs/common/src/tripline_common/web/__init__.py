"""Web floor: the one app factory and what a handler declares (dependencies, pages, errors).

`create_app` and its resources, probes and server, middleware, error handlers, the typed
dependency aliases (`SessionDep`, `CurrentUser`, ...), request field types (`IsoDateTime`),
keyset pagination, idempotent routes and the hot-read response. The top floor: may import
every floor below.
"""

from tripline_common.web.app import create_app
from tripline_common.web.auth_deps import AdminUser, CurrentUser, OperatorUser, TokenClaims
from tripline_common.web.deps import (
    PgDep,
    QueueDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    client_address,
    pg_pool,
)
from tripline_common.web.error_handlers import DATABASE_RAISE_SITE, allowed_methods
from tripline_common.web.fields import IsoDateTime
from tripline_common.web.idempotency import IdempotentRoute, UserIdempotencyKey
from tripline_common.web.pagination import (
    Page,
    PageParams,
    PageResult,
    SortSpec,
    fetch_page,
    page_params,
    selectable,
)
from tripline_common.web.responses import (
    INVALID_LIST_QUERY,
    RaiseSite,
    Responses,
    documented_error,
    links,
    model_response,
    raises,
    rate_limited,
)
from tripline_common.web.server import serve
from tripline_common.web.state import Lifecycle, Resources, ServiceState

__all__ = [
    "DATABASE_RAISE_SITE",
    "INVALID_LIST_QUERY",
    "AdminUser",
    "CurrentUser",
    "IdempotentRoute",
    "IsoDateTime",
    "Lifecycle",
    "OperatorUser",
    "Page",
    "PageParams",
    "PageResult",
    "PgDep",
    "QueueDep",
    "RaiseSite",
    "RedisDep",
    "Resources",
    "Responses",
    "ServiceState",
    "SessionDep",
    "SettingsDep",
    "SortSpec",
    "TokenClaims",
    "UserIdempotencyKey",
    "allowed_methods",
    "client_address",
    "create_app",
    "documented_error",
    "fetch_page",
    "links",
    "model_response",
    "page_params",
    "pg_pool",
    "raises",
    "rate_limited",
    "selectable",
    "serve",
]
