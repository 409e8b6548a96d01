"""Dependencies typed once, so routes read like signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from mlteam.core.auth import authenticate
from mlteam.core.models import User
from mlteam.server.platform import Platform


async def get_platform(request: Request) -> Platform:
    # async: a plain attribute read needs no thread-pool round trip
    return request.app.state.platform


async def get_session(request: Request) -> AsyncIterator[Session]:
    # scope="function": the unit of work commits before the response is sent, so a client
    # never sees a success that was not stored. `async`, as is `current_user`: a sync
    # dependency costs a thread-pool round trip each way on every request, and what they do
    # (a session, a cached token lookup, the commit) takes less than the hand-off did. Sync
    # routes still run in the pool and use the session there, one thread at a time.
    with request.app.state.platform.db.session() as session:
        yield session


PlatformDep = Annotated[Platform, Depends(get_platform)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def current_user(request: Request, session: SessionDep) -> User:
    return authenticate(session, bearer_token(request))


CurrentUser = Annotated[User, Depends(current_user)]
