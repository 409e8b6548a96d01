"""Ground truth fed back from production."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class Feedback(IdMixin, Base):
    __tablename__ = "feedback"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(32), index=True)
    prediction_id: Mapped[str] = mapped_column(String(32), unique=True)
    truth: Mapped[dict[str, Any]] = mapped_column()  # {"value": ...}: JSON keeps its type
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
