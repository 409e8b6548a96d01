"""Datasets and their immutable, content-addressed versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlteam.core.db import Base, IdMixin, utcnow


class Dataset(IdMixin, Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(IdMixin, Base):
    """Written once; the Parquet file it names never changes (its name is its SHA-256)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "n"),
        UniqueConstraint("dataset_id", "content_hash"),
    )

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    n: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(500))
    schema: Mapped[list[Any]] = mapped_column(default=list)
    row_count: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parents: Mapped[list[Any]] = mapped_column(default=list)
    # Per-column statistics computed at publish (data/profile.py); None for versions older
    # than migration 0005, whose profile is computed when asked for.
    profile: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # The train/validation/test split fixed on this version (data/splits.py), if any.
    split: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
