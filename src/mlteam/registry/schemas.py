"""Shapes of registered models and versions, model cards and promotion requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=10_000)


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class DescriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(max_length=10_000)


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=5000)


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="None, Staging, Production or Archived (any case)")
    archive_existing: bool = False


class ModelOut(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int | None


class VersionOut(BaseModel):
    id: str
    model: str
    version: int
    run_id: str | None
    format: str
    signature: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    description: str
    status: str
    aliases: list[str]
    stage: str
    tags: dict[str, str]
    evaluations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="evaluations of this version, newest first: gates passed, the ship "
        "statement, links to the JSON and HTML reports",
    )
    created_at: datetime


class CardIn(BaseModel):
    """The written part of a model card; fields left out keep their current text."""

    model_config = ConfigDict(extra="forbid")

    intended_use: str | None = Field(default=None, max_length=20_000)
    limitations: str | None = Field(default=None, max_length=20_000)
    ethical_considerations: str | None = Field(default=None, max_length=20_000)
    caveats: str | None = Field(default=None, max_length=20_000)
    notes: str | None = Field(default=None, max_length=20_000)


class CardOut(BaseModel):
    model: str
    version: int
    revision: int
    edited_by: str | None
    edited_at: datetime | None
    generated: dict[str, Any]
    human: dict[str, str]


class CardRevisionOut(BaseModel):
    revision: int
    edited_by: str | None
    at: datetime
    human: dict[str, Any]


class PromotionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    version: int | str = Field(description="a version number, or an alias naming one")
    target: str = Field(default="production", min_length=1, max_length=128)
    rationale: str = Field(min_length=1, max_length=10_000)


class SignOffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=32)
    decision: Literal["approve", "reject"]
    rationale: str = Field(min_length=1, max_length=10_000)


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(default="", max_length=10_000)


class SignOffOut(BaseModel):
    role: str
    user: str
    decision: str
    rationale: str
    at: datetime


class PromotionOut(BaseModel):
    id: str
    number: int
    model: str
    version: int | None
    target: str
    requester: str
    rationale: str
    state: str
    required: list[str]
    pending: list[str]
    signoffs: list[SignOffOut]
    created_at: datetime
    decided_at: datetime | None
