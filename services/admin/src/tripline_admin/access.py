"""Who may call the admin API: operators and admins, checked once for every `/v1` route.

`OPERATOR_ONLY` is a dependency of the one router every resource router is included in
(`tripline_admin.main.create_admin_app`), so a new route is protected without anyone having to
remember it; admin-only routes add `AdminUser`. The RBAC test walks the app's route table.
"""

from __future__ import annotations

from typing import get_args

from tripline_common.web import AdminUser, OperatorUser, Responses, documented_error

# The same dependency object as in `OperatorUser`, so FastAPI resolves it once per request even
# when a handler also asks for the operator.
OPERATOR_ONLY = get_args(OperatorUser)[1]
ADMIN_ONLY = get_args(AdminUser)[1]

AUTH_RESPONSES: Responses = {
    **documented_error(401, "Missing, invalid or revoked token."),
    **documented_error(
        403,
        "Your role does not allow this (`insufficient_role`), or a rule protects the account "
        "(`own_account`, `admin_required`).",
    ),
}


def not_found(what: str) -> Responses:
    """The documented 404 of a route that names `what` in its path."""
    return documented_error(404, f"No such {what}.")


def conflict(description: str) -> Responses:
    """The documented 409 of a route whose action depends on the current state."""
    return documented_error(409, description)
