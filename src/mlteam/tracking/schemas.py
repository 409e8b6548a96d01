"""Shapes of experiments and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlteam.core.schemas import Out


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)


class ExperimentOut(Out):
    id: str
    name: str
    created_at: datetime


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str = Field(default="default", min_length=1, max_length=256)
    name: str = Field(default="", max_length=256)
    parent_run_id: str | None = None
    inputs: list[str] = Field(default_factory=list, description="dataset version ids")
    code_version: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class RunOut(BaseModel):
    id: str
    experiment: str
    name: str
    kind: str
    status: str
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    inputs: list[Any]
    code_version: dict[str, Any]
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]


class MetricIn(BaseModel):
    key: str = Field(min_length=1, max_length=250)
    value: float
    step: int = 0
    timestamp: int | None = None


class MetricsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricIn]


class KeyValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: dict[str, str]


class RunPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str


class ArtifactOut(BaseModel):
    path: str
    is_dir: bool
    size: int
