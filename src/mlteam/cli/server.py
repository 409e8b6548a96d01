"""`mlteam server` and `mlteam db upgrade`: run the platform on this host."""

from __future__ import annotations

import typer

from mlteam.cli.common import out, settings

app = typer.Typer(help="Run the server.")
db_app = typer.Typer(help="The metadata store.", no_args_is_help=True)


def serve(
    host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", workers: int = 1
) -> None:
    import uvicorn

    from mlteam.server.app import create_app

    s = settings()
    if workers == 1:
        uvicorn.run(
            create_app(s), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10
        )
        return
    # Several processes: each builds the app from the same environment (settings are read
    # from it). Migrations run here once, before any worker starts.
    from mlteam.core.migrate import upgrade
    from mlteam.server.workers import serve as serve_workers

    s.ensure_home()
    upgrade(s.database_url)
    out.print(f"mlteam on http://{host}:{port} with {workers} worker processes")
    raise typer.Exit(serve_workers(host, port, workers, log_level))


@db_app.command("upgrade")
def upgrade() -> None:
    """Apply the database migrations (the server also does this at start)."""
    from mlteam.core.migrate import current, upgrade

    s = settings()
    s.ensure_home()
    upgrade(s.database_url)
    out.print(f"database at revision {current(s.database_url)}")
