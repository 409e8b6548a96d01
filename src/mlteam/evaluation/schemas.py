"""Shapes of gate sets, invariance tests and evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GateSetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    # Checked by evaluation.gates.validate_rules, which names the rule index and field.
    rules: list[Any]
    description: str = Field(default="", max_length=10_000)


class GateSetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Any]
    description: str | None = Field(default=None, max_length=10_000)


class GateSetOut(BaseModel):
    id: str
    name: str
    version: int
    rules: list[dict[str, Any]]
    description: str
    deleted: bool
    required: bool
    created_by: str
    created_at: datetime


class InvarianceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    column: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=10_000)


class InvarianceOut(BaseModel):
    name: str
    column: str
    description: str
    created_by: str
    created_at: datetime


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(
        default=None, max_length=128, description="default: the version's training dataset"
    )
    dataset_version: int | str = "latest"
    gate_set: str | None = Field(
        default=None, max_length=128, description="default: the project's required gate set"
    )
    target: str | None = Field(
        default=None,
        max_length=256,
        description="default: the target the version's run or signature records",
    )
    slice_columns: list[str] = Field(default_factory=list)
    sensitive: str | None = Field(default=None, max_length=256)
    bootstrap: int = Field(default=200, ge=0, le=10_000)
    seed: int = 0


class GateResult(BaseModel):
    name: str
    rule: dict[str, Any]
    passed: bool
    value: Any = None
    threshold: Any = None
    message: str


class EvaluationOut(BaseModel):
    id: str
    number: int
    model: str
    version: int | None
    dataset: str | None
    dataset_version_id: str | None
    gate_set: str | None
    gate_set_version: int | None
    passed: bool | None
    gates: list[GateResult]
    failed_gates: list[str]
    summary: dict[str, Any]
    options: dict[str, Any]
    notes: list[str]
    job_id: str | None
    report_json: str
    report_html: str
    created_by: str
    created_at: datetime
