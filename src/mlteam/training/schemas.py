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
    candidates: list[str] | None = Field(
        default=None,
        description="subset of baseline, linear, random_forest, lightgbm (default: all; the "
        "baseline always runs)",
    )
    baseline_rule: str | None = Field(
        default=None,
        max_length=10_000,
        description="a DuckDB SQL expression over the features used as the baseline, e.g. "
        'CASE WHEN "worst radius" > 16 THEN 0 ELSE 1 END',
    )
    trials: int | None = Field(default=None, description="Optuna trials per model candidate")
    minutes: float | None = Field(default=None, description="tuning time budget per candidate")
    cv: int = Field(default=3, description="cross-validation folds while tuning")
    workers: int = Field(default=1, description="trials run at once")
    executor: str = Field(default="local", description="local or ray")
    ray_address: str | None = Field(default=None, max_length=512)
