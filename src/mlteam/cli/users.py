"""`mlteam users` and `mlteam tokens`: people and their API tokens."""

from __future__ import annotations

import typer

from mlteam.cli.common import JsonOpt, client, err, errors, settings, table

app = typer.Typer(help="Users (admins).", no_args_is_help=True)
tokens_app = typer.Typer(help="Your API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    email: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    name: str = typer.Option("", help="Display name."),
) -> None:
    """Create a user and print a new API token alone on the last line.

    With MLTEAM_TOKEN set this asks the server (you must be an admin); without it, it writes
    to the local database directly: that is how the first admin is made.
    """
    s = settings()
    with errors():
        if s.token:
            created = client().create_user(email, name=name, admin=admin)
            token = created["token"]
        else:
            from mlteam.core.auth import create_user
            from mlteam.core.db import Database
            from mlteam.core.migrate import upgrade

            s.ensure_home()
            upgrade(s.database_url)
            db = Database(s.database_url)
            with db.session() as session:
                _, token = create_user(session, None, email, name=name, admin=admin)
            db.dispose()
        err.print(f"created {'admin ' if admin else ''}user {email}; API token (shown once):")
        typer.echo(token)


@app.command("token")
def token_for(email: str) -> None:
    """Issue a new token for an existing user, on the server's host (local database)."""
    from mlteam.core.auth import bootstrap_token
    from mlteam.core.db import Database

    s = settings()
    with errors():
        db = Database(s.database_url)
        with db.session() as session:
            secret = bootstrap_token(session, email)
        db.dispose()
        typer.echo(secret)


@app.command("list")
def list_users(as_json: bool = JsonOpt) -> None:
    """List users (admins only)."""
    with errors():
        table(client().list_users(), ["email", "name", "is_admin", "active", "created_at"], as_json)


@tokens_app.command("create")
def create_token(name: str = typer.Option("", help="What the token is for.")) -> None:
    """Create a token for yourself; printed alone on the last line."""
    with errors():
        created = client().create_token(name)
        err.print(f"token {created['token']['prefix']}… created (shown once):")
        typer.echo(created["secret"])


@tokens_app.command("list")
def list_tokens(as_json: bool = JsonOpt) -> None:
    """List your tokens (never their secrets)."""
    with errors():
        table(client().list_tokens(), ["id", "name", "prefix", "created_at", "revoked_at"], as_json)


@tokens_app.command("revoke")
def revoke(token_id: str) -> None:
    """Revoke a token by id."""
    with errors():
        client().revoke_token(token_id)
        err.print(f"revoked {token_id}")
