"""Shapes of registered models and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlteam.core.schemas import Out


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=10_000)


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class ModelOut(Out):
    id: str
    name: str
    description: str
    created_at: datetime


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
    created_at: datetime
