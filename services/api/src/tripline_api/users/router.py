"""Users endpoints: declarations only; the work happens in `users.service`."""

from __future__ import annotations

from fastapi import APIRouter, status

from tripline_api.users import service
from tripline_api.users.schemas import UserCreate, UserPublic
from tripline_common.auth.deps import CurrentUser
from tripline_common.deps import SessionDep
from tripline_common.errors import ErrorResponse

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    summary="Register a user",
    description="Creates an account with the `user` role. The password is stored as an Argon2 "
    "hash and never returned.",
    responses={409: {"model": ErrorResponse, "description": "The email is already registered."}},
)
async def register(data: UserCreate, session: SessionDep) -> UserPublic:
    user = await service.register_user(session=session, data=data)
    return UserPublic.model_validate(user)


@router.get(
    "/me",
    response_model=UserPublic,
    summary="Who am I",
    description="The user of the access token.",
    responses={401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."}},
)
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
