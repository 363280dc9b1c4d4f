"""Who may call the admin API: operators and admins, checked once for every `/v1` route.

`OPERATOR_ONLY` is a dependency of the one router every resource router is included in
(`tripline_admin.main.create_admin_app`), so a new route is protected without anyone having to
remember it; admin-only routes add `AdminUser`. The RBAC test walks the app's route table.
"""

from __future__ import annotations

from typing import Any

from tripline_common.platform import ErrorResponse
from tripline_common.web import AdminUser, OperatorUser

# The same dependency object as in `OperatorUser`, so FastAPI resolves it once per request even
# when a handler also asks for the operator.
OPERATOR_ONLY = OperatorUser.__metadata__[0]
ADMIN_ONLY = AdminUser.__metadata__[0]

Responses = dict[int | str, dict[str, Any]]

AUTH_RESPONSES: Responses = {
    401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."},
    403: {
        "model": ErrorResponse,
        "description": "Your role does not allow this (`insufficient_role`), or a rule protects "
        "the account (`own_account`, `admin_required`).",
    },
}


def not_found(what: str) -> Responses:
    """The documented 404 of a route that names `what` in its path."""
    return {404: {"model": ErrorResponse, "description": f"No such {what}."}}


def conflict(description: str) -> Responses:
    """The documented 409 of a route whose action depends on the current state."""
    return {409: {"model": ErrorResponse, "description": description}}


INVALID_LIST_QUERY: Responses = {
    400: {
        "model": ErrorResponse,
        "description": "A sort field outside the allowlist (`invalid_sort`), an unknown field in "
        "`fields` (`invalid_fields`), a cursor that is not ours or is for another sort "
        "(`invalid_cursor`, `cursor_sort_mismatch`), or `offset` with `cursor`.",
    }
}
