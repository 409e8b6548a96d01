"""Request and response shapes of projects, members and model requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlteam.core.access import Role
from mlteam.core.schemas import Out

Priority = Literal["low", "medium", "high", "critical"]
RequestState = Literal["new", "accepted", "in_progress", "done", "rejected"]
Phase = Literal["ideation", "experimentation", "development", "production", "iteration"]


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = Field(default="", max_length=200)
    goal: str = Field(default="", max_length=10_000)
    success_metric: str = Field(default="", max_length=200)
    value_matrix: dict[str, Any] = Field(default_factory=dict)
    required_signoffs: list[Role] = Field(default_factory=lambda: [Role.qa])


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    goal: str | None = Field(default=None, max_length=10_000)
    success_metric: str | None = Field(default=None, max_length=200)
    value_matrix: dict[str, Any] | None = None
    required_signoffs: list[Role] | None = None
    trust_pickle: bool | None = None
    required_gate_set: str | None = Field(
        default=None, max_length=128, description="gate set promotions need; '' clears it"
    )


class ProjectOut(Out):
    id: str
    slug: str
    name: str
    goal: str
    success_metric: str
    value_matrix: dict[str, Any]
    required_signoffs: list[str]
    trust_pickle: bool
    required_gate_set: str | None = None
    created_at: datetime
    phase: Phase
    my_roles: list[str]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    role: Role


class MemberOut(BaseModel):
    email: str
    user_id: str
    roles: list[str]


class ModelRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    problem: str = Field(default="", max_length=10_000)
    metric: str = Field(default="", max_length=200)
    priority: Priority = "medium"


class ModelRequestPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    state: RequestState | None = None
    rationale: str | None = Field(default=None, max_length=10_000)


class ModelRequestOut(Out):
    id: str
    number: int
    title: str
    problem: str
    metric: str
    priority: str
    state: str
    created_at: datetime
    updated_at: datetime
