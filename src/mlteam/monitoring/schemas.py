"""Shapes of feedback and monitoring reports."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=64)
    truth: Any


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackItem]


class FeedbackOut(BaseModel):
    recorded: int
