"""What every CLI module shares: the client from settings, output, and errors at the edge."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlteam.client import Client
from mlteam.config import Settings
from mlteam.core.errors import MlteamError

out = Console()
# Messages are not folded at the terminal's width: a path or SQL in one stays whole, for the
# reader and for whoever greps a log of it.
err = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    return Settings()


def client() -> Client:
    s = settings()
    if not s.token:
        err.print("[red]error:[/] no API token: set MLTEAM_TOKEN (see `mlteam users create`)")
        raise typer.Exit(2)
    return Client(s.url, s.token)


@contextmanager
def errors() -> Iterator[None]:
    """Turn platform errors into one red line and exit code 1, not a traceback."""
    try:
        yield
    except MlteamError as e:
        err.print(f"[red]error:[/] {escape(e.message)}")
        if e.details:
            err.print(f"  details: {escape(json.dumps(e.details, default=str)[:2000])}")
        raise typer.Exit(1) from None
    except OSError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None


def show(data: Any, as_json: bool = False) -> None:
    if as_json or not sys.stdout.isatty():
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        out.print_json(json.dumps(data, default=str))


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    as_json: bool = False,
    title: str | None = None,
    fmt: dict[str, Callable[[Any], str]] | None = None,
) -> None:
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2, default=str))
        return
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[(fmt or {}).get(c, _cell)(r.get(c)) for c in columns])
    out.print(t)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return str(v)


JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
