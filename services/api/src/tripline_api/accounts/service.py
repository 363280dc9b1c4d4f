"""Account lifecycle: sign-up, verifying the address, resetting and changing the password.

No HTTP here. Every path that mails something adds an `account_tokens` row and enqueues its mail
after commit; the worker draws the token and mails it (`tripline_worker.jobs.account_mail`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_api.settings import ApiSettings
from tripline_common.data import AccountMail, enqueue_account_mail
from tripline_common.data.models import AccountToken, AccountTokenPurpose, AuthSession, User
from tripline_common.messaging import JobQueue
from tripline_common.platform import BadRequestError, ForbiddenError, GoneError
from tripline_common.security import (
    HashLane,
    check_new_password,
    hash_password,
    hash_token,
    verify_password,
)

log = structlog.get_logger("tripline.accounts")


async def sign_up(
    *,
    session: AsyncSession,
    queue: JobQueue,
    settings: ApiSettings,
    email: str,
    display_name: str,
    password: str,
) -> None:
    """Start a sign-up. The caller's answer is the same whatever happens here:

    - a new address: an unverified user, and a "confirm your address" mail;
    - an address waiting for confirmation: the newest sign-up's name and password replace the
      stored ones, and a new link is mailed (the link of each sign-up applies that sign-up's
      password when followed; following one retires the others);
    - a confirmed address: no change, and a "someone tried to sign up; reset your password
      here" mail to the owner.

    Every path checks the password rules and hashes the password (in the account lane), so
    the work, and the time it takes, do not depend on whether the address is taken.
    """
    check_new_password(password, email=email)
    password_hash = await hash_password(password, lane=HashLane.ACCOUNT)
    user = await _user_by_email(session, email, for_update=True)
    if user is None:
        try:
            async with session.begin_nested():
                user = User(email=email, display_name=display_name, password_hash=password_hash)
                session.add(user)
                await session.flush()
        except IntegrityError:  # A concurrent sign-up for the same address won the insert.
            user = await _user_by_email(session, email, for_update=True)
            if user is None:
                raise
    elif user.email_verified_at is None:
        user.display_name = display_name
        user.password_hash = password_hash
    now = datetime.now(UTC)
    if user.email_verified_at is None:
        token = AccountToken(
            user_id=user.id,
            purpose=AccountTokenPurpose.VERIFY_EMAIL,
            password_hash=password_hash,
            expires_at=now + timedelta(seconds=settings.verify_email_token_ttl_seconds),
        )
        mail = AccountMail.VERIFY_EMAIL
    else:
        token = AccountToken(
            user_id=user.id,
            purpose=AccountTokenPurpose.RESET_PASSWORD,
            expires_at=now + timedelta(seconds=settings.reset_password_token_ttl_seconds),
        )
        mail = AccountMail.SIGNUP_ATTEMPT
    session.add(token)
    await session.flush()
    enqueue_account_mail(session=session, queue=queue, token=token, mail=mail)
    log.info("sign_up_accepted", user_id=str(user.id), mail=mail.value)


async def verify_email(*, session: AsyncSession, token: str) -> None:
    """Confirm the address of the link's account and set that sign-up's password.

    The link is used up, and so are the account's other confirmation links. A link for an
    account confirmed meanwhile (by another link or a password reset) changes nothing.
    """
    row = await _usable_token(session, token, AccountTokenPurpose.VERIFY_EMAIL)
    user = await session.get(User, row.user_id, with_for_update=True)
    assert user is not None  # The foreign key cascades: no token outlives its user.
    now = datetime.now(UTC)
    if user.email_verified_at is None:
        user.email_verified_at = now
        if row.password_hash:
            user.password_hash = row.password_hash
    await _use_up_tokens(session, row, now)
    log.info("email_verified", user_id=str(user.id))


async def request_password_reset(
    *, session: AsyncSession, queue: JobQueue, settings: ApiSettings, email: str
) -> None:
    """Mail a reset link to the account of `email`, if there is an active one; silently nothing
    otherwise (the caller answers the same either way)."""
    user = await _user_by_email(session, email, for_update=False)
    if user is None or not user.is_active:
        log.info("password_reset_for_no_account")
        return
    token = AccountToken(
        user_id=user.id,
        purpose=AccountTokenPurpose.RESET_PASSWORD,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.reset_password_token_ttl_seconds),
    )
    session.add(token)
    await session.flush()
    enqueue_account_mail(session=session, queue=queue, token=token, mail=AccountMail.RESET_PASSWORD)
    log.info("password_reset_requested", user_id=str(user.id))


async def reset_password(*, session: AsyncSession, token: str, new_password: str) -> None:
    """Set a new password with a mailed reset link: the link and the account's other reset
    links are used up, every session of the account is revoked, and the address counts as
    confirmed (the link reached it)."""
    row = await _usable_token(session, token, AccountTokenPurpose.RESET_PASSWORD)
    user = await session.get(User, row.user_id, with_for_update=True)
    assert user is not None
    # A refused password leaves the link usable: the user can try a better one.
    check_new_password(new_password, email=user.email, field="new_password")
    user.password_hash = await hash_password(new_password, lane=HashLane.ACCOUNT)
    now = datetime.now(UTC)
    if user.email_verified_at is None:
        user.email_verified_at = now
    await _use_up_tokens(session, row, now)
    revoked = await revoke_sessions(
        session=session, user_id=user.id, reason="password_reset", keep=None
    )
    log.info("password_reset", user_id=str(user.id), sessions_revoked=revoked)


async def change_password(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    current_session_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> None:
    """Change the password of a logged-in user who knows the current one; their other
    sessions are revoked, the one making the change is kept."""
    user = await session.get(User, user_id, with_for_update=True)
    assert user is not None  # The caller's session was just checked live.
    if not await verify_password(current_password, user.password_hash):
        raise ForbiddenError("The current password is not correct.", code="wrong_password")
    check_new_password(new_password, email=user.email, field="new_password")
    user.password_hash = await hash_password(new_password, lane=HashLane.ACCOUNT)
    revoked = await revoke_sessions(
        session=session, user_id=user.id, reason="password_changed", keep=current_session_id
    )
    log.info("password_changed", user_id=str(user.id), sessions_revoked=revoked)


async def revoke_sessions(
    *, session: AsyncSession, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None
) -> int:
    """Revoke every live session of the user except `keep`; returns how many."""
    conditions = [col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)]
    if keep is not None:
        conditions.append(col(AuthSession.id) != keep)
    result = await session.execute(
        update(AuthSession)
        .where(*conditions)
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason, refresh_token_hash=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _user_by_email(session: AsyncSession, email: str, *, for_update: bool) -> User | None:
    query = select(User).where(func.lower(col(User.email)) == email.lower())
    if for_update:
        query = query.with_for_update()
    user: User | None = await session.scalar(query)
    return user


async def _usable_token(
    session: AsyncSession, token: str, purpose: AccountTokenPurpose
) -> AccountToken:
    """The unused, unexpired token row of `purpose` for `token`; 400 or 410 otherwise."""
    row: AccountToken | None = await session.scalar(
        select(AccountToken)
        .where(col(AccountToken.token_hash) == hash_token(token))
        .with_for_update()
    )
    if row is None or row.purpose is not purpose:
        raise BadRequestError("This link is not valid.", code="invalid_token")
    if row.used_at is not None:
        raise GoneError("This link has already been used.", code="token_used")
    if row.expires_at <= datetime.now(UTC):
        raise GoneError("This link has expired; ask for a new one.", code="token_expired")
    return row


async def _use_up_tokens(session: AsyncSession, row: AccountToken, now: datetime) -> None:
    """Mark `row` used, and retire the account's other open tokens of the same purpose."""
    await session.execute(
        update(AccountToken)
        .where(
            col(AccountToken.user_id) == row.user_id,
            col(AccountToken.purpose) == row.purpose,
            col(AccountToken.used_at).is_(None),
        )
        .values(used_at=now)
    )
