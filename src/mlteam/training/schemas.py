"""Shapes of training requests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=128)
    version: int | str = "latest"
    target: str = Field(min_length=1)
    features: list[str] | None = None
    task: str = "auto"
    experiment: str = Field(default="training", min_length=1, max_length=256)
    test_fraction: float = 0.2
    seed: int = 42
    register_as: str | None = Field(
        default=None, description="register the best candidate as a version of this model"
    )
