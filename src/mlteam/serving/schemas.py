"""Shapes of deployments, revisions and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    version: int | str | None = Field(default=None, description="a version number or an alias")
    routes: list[dict[str, Any]] | None = Field(
        default=None, description="[{model, version, weight, mode}] instead of model and version"
    )
    stage: str | None = Field(default=None, description="staging (default) or production")


class ReviseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[dict[str, Any]] = Field(description="[{model, version, weight, mode}]")
    stage: str | None = Field(default=None, description="keep the current stage if not given")


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: str = Field(min_length=1, max_length=128)
    version: int | str = Field(default="latest", description="dataset version, or latest")
    model: str = Field(min_length=1, max_length=256)
    model_version: int | str = Field(description="a version number or an alias")
    output: str | None = Field(default=None, description="output dataset; <dataset>-scored")


class DeploymentOut(BaseModel):
    id: str
    name: str
    stage: str
    revision: int | None
    routes: list[dict[str, Any]]
    created_at: datetime


class RevisionOut(BaseModel):
    revision: int
    routes: list[dict[str, Any]]
    current: bool
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
