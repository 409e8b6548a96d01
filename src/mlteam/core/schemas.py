"""Pydantic shapes of the core objects (users, tokens, audit events, jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    admin: bool = False


class UserOut(Out):
    id: str
    email: str
    name: str
    is_admin: bool
    active: bool
    created_at: datetime


class UserCreated(BaseModel):
    user: UserOut
    token: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)


class TokenOut(Out):
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str


class AuditEventOut(Out):
    id: str
    at: datetime
    actor_email: str
    action: str
    target: str
    detail: dict[str, Any]
    rationale: str | None


class JobOut(Out):
    id: str
    project_id: str
    kind: str
    state: str
    progress: float
    message: str
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobLog(Out):
    id: str
    state: str
    log: str
