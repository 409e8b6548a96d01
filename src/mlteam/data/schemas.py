"""Shapes of datasets and versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    created_at: datetime
    created: bool = False


class DatasetOut(Out):
    id: str
    name: str
    description: str
    created_at: datetime
    latest_version: int | None
