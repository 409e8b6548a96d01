"""evaluation: gate sets, invariance tests, evaluations; projects.required_gate_set

Revision ID: 0007
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlteam.core.db import UTCDateTime

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def _owned(table: str) -> list[sa.SchemaItem]:
    """project_id (cascade), created_by, created_at, id: what every table here has."""
    return [
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f(f"fk_{table}_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f(f"fk_{table}_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "gate_sets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_owned("gate_sets"),
        sa.UniqueConstraint(
            "project_id", "name", "version", name=op.f("uq_gate_sets_project_id_name_version")
        ),
    )
    op.create_index(op.f("ix_gate_sets_project_id"), "gate_sets", ["project_id"], unique=False)
    op.create_table(
        "invariance_tests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("column", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_owned("invariance_tests"),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_invariance_tests_project_id_name")),
    )
    op.create_index(
        op.f("ix_invariance_tests_project_id"), "invariance_tests", ["project_id"], unique=False
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("dataset_version_id", sa.String(length=32), nullable=True),
        sa.Column("gate_set", sa.String(length=128), nullable=True),
        sa.Column("gate_set_version", sa.Integer(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("report_key", sa.String(length=500), nullable=False),
        sa.Column("html_key", sa.String(length=500), nullable=False),
        *_owned("evaluations"),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_evaluations_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("project_id", "number", name=op.f("uq_evaluations_project_id_number")),
    )
    op.create_index(op.f("ix_evaluations_project_id"), "evaluations", ["project_id"], unique=False)
    op.create_index(
        op.f("ix_evaluations_model_version_id"), "evaluations", ["model_version_id"], unique=False
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("required_gate_set", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("required_gate_set")
    op.drop_index(op.f("ix_evaluations_model_version_id"), table_name="evaluations")
    op.drop_index(op.f("ix_evaluations_project_id"), table_name="evaluations")
    op.drop_table("evaluations")
    op.drop_index(op.f("ix_invariance_tests_project_id"), table_name="invariance_tests")
    op.drop_table("invariance_tests")
    op.drop_index(op.f("ix_gate_sets_project_id"), table_name="gate_sets")
    op.drop_table("gate_sets")
