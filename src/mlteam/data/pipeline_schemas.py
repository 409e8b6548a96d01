"""Shapes of sources and pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlteam.core.schemas import JobOut, Out


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128)
    kind: str = Field(description="dataset, uri or sql")
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] | None = Field(
        default=None, description="Stored encrypted, never shown again (s3 key/secret, password)."
    )


class SourceOut(Out):
    id: str
    name: str
    kind: str
    config: dict[str, Any]
    has_credentials: bool
    created_at: datetime


class PipelineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128)
    description: str = ""
    inputs: dict[str, Any]
    steps: list[Any]
    params: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None
    checks: list[Any] = Field(default_factory=list)
    schedule: str | None = None
    trigger_on_new_version: bool = False


class PipelineOut(Out):
    id: str
    name: str
    description: str
    inputs: dict[str, Any]
    steps: list[Any]
    params: dict[str, Any]
    output: str
    checks: list[Any]
    schedule: str | None
    trigger_on_new_version: bool
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)


class PipelineRunOut(BaseModel):
    trigger: str
    job: JobOut
