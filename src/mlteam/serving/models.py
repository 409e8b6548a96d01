"""Deployments and their revisions (which model versions take traffic, and how much)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class Deployment(IdMixin, Base):
    __tablename__ = "deployments"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128), unique=True)
    stage: Mapped[str] = mapped_column(String(16), default="staging")
    current_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Revision(IdMixin, Base):
    __tablename__ = "deployment_revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "n"),)

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    n: Mapped[int] = mapped_column(Integer)
    # [{"model_version_id", "model", "version", "weight", "mode": "live" | "shadow"}]
    routes: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
