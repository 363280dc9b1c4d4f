"""Security floor: who is asking and what they may reach (sessions, keys, limits, egress).

Access tokens and sessions (`auth/`), API keys, password hashing and policy, rate limits,
the egress guard for outgoing HTTP and secret-valued fields. No FastAPI dependencies
here: `CurrentUser` and friends are web glue (`tripline_common.web`).
"""

from tripline_common.security.apikeys import KEY_PREFIX, hash_api_key, issue_api_key
from tripline_common.security.auth.service import (
    Principal,
    authenticate,
    list_sessions,
    live_session_sql,
    open_session,
    resolve_principal,
    revoke_session,
)
from tripline_common.security.auth.tokens import (
    AccessClaims,
    create_access_token,
    decode_access_token,
    hash_token,
    new_opaque_token,
)
from tripline_common.security.egress import (
    Resolver,
    TargetRefusedError,
    guarded_transport,
    system_resolver,
    url_refusal,
)
from tripline_common.security.password_policy import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    check_new_password,
)
from tripline_common.security.passwords import HashLane, hash_password, verify_password
from tripline_common.security.ratelimit import (
    LOGIN_POLICIES,
    LoginAttempt,
    Quota,
    RatePolicy,
    admit_login_attempt,
    count_hit,
    enforce_rate_limit,
    ensure_under_limit,
    report_quotas,
    stop_reporting_quotas,
)
from tripline_common.security.secret_fields import SecretValue

__all__ = [
    "KEY_PREFIX",
    "LOGIN_POLICIES",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "AccessClaims",
    "HashLane",
    "LoginAttempt",
    "Principal",
    "Quota",
    "RatePolicy",
    "Resolver",
    "SecretValue",
    "TargetRefusedError",
    "admit_login_attempt",
    "authenticate",
    "check_new_password",
    "count_hit",
    "create_access_token",
    "decode_access_token",
    "enforce_rate_limit",
    "ensure_under_limit",
    "guarded_transport",
    "hash_api_key",
    "hash_password",
    "hash_token",
    "issue_api_key",
    "list_sessions",
    "live_session_sql",
    "new_opaque_token",
    "open_session",
    "report_quotas",
    "resolve_principal",
    "revoke_session",
    "stop_reporting_quotas",
    "system_resolver",
    "url_refusal",
    "verify_password",
]
