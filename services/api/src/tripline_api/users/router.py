"""Users endpoints: sign-up (its work is in `accounts.service`) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from tripline_api.accounts import service as accounts_service
from tripline_api.accounts.schemas import SIGN_UP_MESSAGE, SignUpAccepted
from tripline_api.limits import SIGNUP, SIGNUP_ALL, SIGNUP_LIMITS, Limiter
from tripline_api.responses import UNAUTHORIZED, documented_error
from tripline_api.state import ApiSettingsDep
from tripline_api.users.schemas import UserCreate, UserPublic
from tripline_common.web import CurrentUser, QueueDep, SessionDep, client_address

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignUpAccepted,
    summary="Sign up",
    description="Starts a sign-up and always answers the same 202, whether or not the address "
    "already has an account: a new address is mailed a single-use link that confirms it "
    "(`/v1/accounts/verify-email`), after which the account (role `user`) can log in; the owner "
    "of a taken address is mailed a password-reset link instead. A new sign-up for an address "
    "still waiting for confirmation mails a new link. The password is checked against the "
    "rules (`weak_password`, 422) and stored as an Argon2 hash. Rate-limited per client "
    "address and for all clients together (429).",
    responses=documented_error(422, "Invalid input or `weak_password`."),
)
async def register(
    data: UserCreate,
    request: Request,
    session: SessionDep,
    queue: QueueDep,
    settings: ApiSettingsDep,
    limiter: Annotated[Limiter, Depends(SIGNUP_LIMITS)],
) -> SignUpAccepted:
    await limiter.hit(SIGNUP, f"signup:ip:{client_address(request)}")
    await limiter.hit(SIGNUP_ALL, "signup:all")
    await accounts_service.sign_up(
        session=session,
        queue=queue,
        settings=settings,
        email=data.email,
        display_name=data.display_name,
        password=data.password,
    )
    return SignUpAccepted(status="check_email", message=SIGN_UP_MESSAGE)


@router.get(
    "/me",
    response_model=UserPublic,
    summary="Who am I",
    description="The user of the access token.",
    responses=UNAUTHORIZED,
)
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
