"""Dependencies typed once, so routes read like signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from mlteam.core.auth import authenticate
from mlteam.core.models import User
from mlteam.server.platform import Platform


async def get_platform(request: Request) -> Platform:
    # async: a plain attribute read needs no thread-pool round trip
    return request.app.state.platform


def get_session(request: Request) -> Iterator[Session]:
    # scope="function": the unit of work commits before the response is sent, so a client
    # never sees a success that was not stored.
    with request.app.state.platform.db.session() as session:
        yield session


PlatformDep = Annotated[Platform, Depends(get_platform)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_user(request: Request, session: SessionDep) -> User:
    return authenticate(session, bearer_token(request))


CurrentUser = Annotated[User, Depends(current_user)]

