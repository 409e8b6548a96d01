"""HTTP routes of the core: health, users, tokens, jobs."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from mlteam.core import auth, jobs
from mlteam.core.schemas import (
    JobLog,
    JobOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserCreated,
    UserIn,
    UserOut,
)
from mlteam.server.deps import CurrentUser, SessionDep

router = APIRouter()


@router.get("/health", tags=["core"])
def health(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/me", response_model=UserOut, tags=["users"])
def me(user: CurrentUser) -> object:
    return user


@router.post("/users", response_model=UserCreated, status_code=201, tags=["users"])
def create_user(body: UserIn, session: SessionDep, user: CurrentUser) -> object:
    created, secret = auth.create_user(session, user, body.email, name=body.name, admin=body.admin)
    return {"user": created, "token": secret}


@router.get("/users", response_model=list[UserOut], tags=["users"])
def list_users(session: SessionDep, user: CurrentUser) -> object:
    return auth.list_users(session, user)


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["users"])
def create_token(body: TokenIn, session: SessionDep, user: CurrentUser) -> object:
    row, secret = auth.create_token(session, user, body.name)
    return {"token": row, "secret": secret}


@router.get("/tokens", response_model=list[TokenOut], tags=["users"])
def list_tokens(session: SessionDep, user: CurrentUser) -> object:
    return auth.list_tokens(session, user)


@router.delete("/tokens/{token_id}", status_code=204, tags=["users"])
def revoke_token(token_id: str, session: SessionDep, user: CurrentUser) -> Response:
    auth.revoke_token(session, user, token_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def get_job(job_id: str, session: SessionDep, user: CurrentUser) -> object:
    return jobs.get(session, user, job_id)


@router.get("/jobs/{job_id}/log", response_model=JobLog, tags=["jobs"])
def get_job_log(job_id: str, session: SessionDep, user: CurrentUser) -> object:
    return jobs.get(session, user, job_id)
