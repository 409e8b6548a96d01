"""Alembic environment: the metadata of every capability's tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from mlteam.core.db import _sqlite_pragmas
from mlteam.models import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    if url.startswith("sqlite"):
        from sqlalchemy import event

        event.listen(engine, "connect", _sqlite_pragmas)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
