"""Shapes of deployments and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=256)
    version: int | str = Field(description="a version number or an alias")
    stage: str = "staging"


class DeploymentOut(BaseModel):
    id: str
    name: str
    stage: str
    revision: int | None
    routes: list[dict[str, Any]]
    created_at: datetime


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[dict[str, Any]] = Field(description="one record per row: {column: value}")


class PredictionOut(BaseModel):
    id: str
    output: Any


class PredictOut(BaseModel):
    deployment: str
    revision: int
    model: str
    version: int
    predictions: list[PredictionOut]
