"""Projects and their backlog of model requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class Project(IdMixin, Base):
    __tablename__ = "projects"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    goal: Mapped[str] = mapped_column(Text, default="")
    success_metric: Mapped[str] = mapped_column(String(200), default="")
    # {"<truth>": {"<prediction>": value}} for classification, {"cost_per_unit_error": x} else.
    value_matrix: Mapped[dict[str, Any]] = mapped_column(default=dict)
    required_signoffs: Mapped[list[Any]] = mapped_column(default=lambda: ["qa"])
    trust_pickle: Mapped[bool] = mapped_column(Boolean, default=False)
    # The gate set (evaluation/gates.py) a version must pass before a promotion request.
    required_gate_set: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelRequest(IdMixin, Base):
    __tablename__ = "model_requests"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    problem: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str] = mapped_column(String(200), default="")
    priority: Mapped[str] = mapped_column(String(16), default="medium")
    state: Mapped[str] = mapped_column(String(16), default="new")
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
