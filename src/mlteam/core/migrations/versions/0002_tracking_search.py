"""tracking search: latest metrics, NaN-safe metric points

Revision ID: 0002
Revises: 0001

`latest_metrics` holds each run's latest point of each metric (highest step, timestamp,
value, as MLflow decides), kept by `log_metrics`; search filters and sorts on it. It is
filled here from the histories already stored. `metrics.is_nan` lets SQLite keep NaN (which
it would store as NULL) the way MLflow does: value 0, is_nan true.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_nan", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":
        # PostgreSQL could store NaN itself; keep one representation on every backend.
        op.execute("UPDATE metrics SET is_nan = true, value = 0 WHERE value = 'NaN'::float8")

    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_latest_metrics_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_latest_metrics")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("latest_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_latest_metrics_key_value", ["key", "value"], unique=False)

    # Backfill from the histories: per (run, key), the point with the highest
    # (step, timestamp, value). Window functions work on SQLite >= 3.25 and PostgreSQL.
    op.execute(
        """
        INSERT INTO latest_metrics (run_id, key, value, step, timestamp, is_nan)
        SELECT run_id, key, value, step, timestamp, is_nan FROM (
            SELECT run_id, key, value, step, timestamp, is_nan,
                   ROW_NUMBER() OVER (
                       PARTITION BY run_id, key
                       ORDER BY step DESC, timestamp DESC, value DESC, id DESC
                   ) AS pos
            FROM metrics
        ) AS ranked
        WHERE pos = 1
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("latest_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_latest_metrics_key_value")
    op.drop_table("latest_metrics")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.drop_column("is_nan")
