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
    metrics: dict[str, float | None] = Field(description="latest values; NaN and ±inf as null")


class MetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class MetricPointOut(BaseModel):
    key: str
    value: float | None = Field(description="NaN and ±inf as null")
    step: int
    timestamp: int


class RunSearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str = Field(
        default="",
        max_length=20_000,
        description="MLflow filter, e.g. \"metrics.acc > 0.9 and params.lr = '0.01'\"",
    )
    order_by: list[str] = Field(
        default_factory=list, description='e.g. ["metrics.acc DESC", "params.lr"]'
    )
    max_results: int = Field(default=1000, ge=1, le=50_000)
    page_token: str | None = Field(default=None, description="next_page_token of the last page")
    experiments: list[str] | None = Field(default=None, description="names; default all")


class RunSearchOut(BaseModel):
    runs: list[RunOut]
    next_page_token: str | None


class CompareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_ids: list[str] = Field(min_length=1, max_length=100)


class CompareRunOut(BaseModel):
    id: str
    name: str
    experiment: str


class AlignedMetricOut(BaseModel):
    steps: list[int]
    values: dict[str, list[float | None]] = Field(
        description="per run id, one value per step (null where the run has none, or NaN)"
    )


class CompareOut(BaseModel):
    runs: list[CompareRunOut]
    params: dict[str, dict[str, str | None]]
    metrics: dict[str, AlignedMetricOut]
