"""Tables of sources and pipelines (the data capability's ingestion side).

Kept beside `data/models.py` (datasets and versions) so the two halves of the capability can
change apart; `mlteam.models` gathers both for Alembic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class Source(IdMixin, Base):
    """Where raw data comes from. `secret` holds the credentials, Fernet-encrypted; `config`
    never holds a credential (a password in a SQL URL is moved out of it on the way in)."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pipeline(IdMixin, Base):
    """Ordered SQL steps over named inputs, checks on the output, and when to run.

    `next_run_at` is when the cron schedule is next due: a scheduler claims a due run by a
    conditional UPDATE of it, so several servers on one database queue each run once.
    `seen_inputs` fingerprints the input versions last seen, claimed the same way for runs
    triggered by a new input version.
    """

    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000), default="")
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    steps: Mapped[list[Any]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[str] = mapped_column(String(128))
    checks: Mapped[list[Any]] = mapped_column(default=list)
    schedule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    trigger_on_new_version: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_inputs: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PipelineRun(IdMixin, Base):
    """One run of a pipeline: the job that does it, and what started it."""

    __tablename__ = "pipeline_runs"

    pipeline_id: Mapped[str] = mapped_column(
        ForeignKey("pipelines.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
