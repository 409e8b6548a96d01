"""Evaluation's tables: QA's gate sets, domain experts' invariance tests, stored evaluations.

A gate set is versioned: every change (and a deletion, as a tombstone) is a new row with the
next `version`, so an evaluation names exactly which rules it was judged by. An evaluation row
is written once, at the end of its job, after its report files are in the artifact store: a
failed job leaves no row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class GateSet(IdMixin, Base):
    """One version of a named gate set; the highest version is current (unless `deleted`)."""

    __tablename__ = "gate_sets"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvarianceTest(IdMixin, Base):
    """ "Changing `column` must not change the prediction", declared per project."""

    __tablename__ = "invariance_tests"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    column: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(IdMixin, Base):
    """The outcome of one evaluation job of a model version: gates, summary, report files."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    model_version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    dataset_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    gate_set: Mapped[str | None] = mapped_column(String(128), nullable=True)
    gate_set_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # None when no gate set was checked; else every gate passed.
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    gates: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    report_key: Mapped[str] = mapped_column(String(500))
    html_key: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
