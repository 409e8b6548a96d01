"""Migrations give exactly the models' schema, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from mlteam.core.migrate import alembic_config, current, upgrade
from mlteam.models import metadata


def test_upgrade_head_matches_models(databases) -> None:
    url = databases.new()
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
    assert {"users", "projects", "dataset_versions", "runs", "model_versions", "feedback"} <= tables


def test_upgrade_is_idempotent(databases) -> None:
    url = databases.new()
    upgrade(url)
    head = current(url)
    upgrade(url)
    heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
    assert current(url) == head == ",".join(sorted(heads))
