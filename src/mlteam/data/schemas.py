"""Shapes of datasets and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlteam.core.schemas import Out


class ColumnOut(Out):
    name: str
    type: str


class DatasetVersionOut(Out):
    id: str
    dataset: str
    n: int
    content_hash: str
    columns: list[ColumnOut]
    row_count: int
    size_bytes: int
    source: dict[str, Any]
    parents: list[Any]
    split: dict[str, Any] | None = None
    created_at: datetime
    created: bool = False


class DatasetOut(Out):
    id: str
    name: str
    description: str
    created_at: datetime
    latest_version: int | None


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["hash", "time"] = Field(description="hash of a key column, or time cutoffs")
    column: str = Field(description="The key column (hash) or the time column (time).")
    fractions: dict[str, float] | None = Field(
        None, description="hash: shares of train/validation/test adding up to 1 (default .8/.1/.1)"
    )
    cutoffs: dict[str, Any] | None = Field(
        None, description="time: where validation and test start, e.g. {'test': '2024-06-01'}"
    )


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(description="DuckDB SQL; tables are <dataset> (latest) and <dataset>_v<n>.")
    limit: int = Field(1000, description="At most this many rows come back (max 100,000).")
    timeout_s: float = Field(30.0, description="Stop the query after this many seconds (max 60).")


class QueryOut(Out):
    columns: list[ColumnOut]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    seconds: float
