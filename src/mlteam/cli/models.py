"""`mlteam models`: the registry."""

from __future__ import annotations

import typer

from mlteam.cli.common import JsonOpt, client, errors, show, table

app = typer.Typer(help="Registered models and versions.", no_args_is_help=True)


@app.command("register")
def register(
    project: str, model: str, run_id: str, description: str = typer.Option("", help="Notes.")
) -> None:
    """Register a finished run's model as the next version of MODEL."""
    with errors():
        mv = client().register(project, model, run_id, description)
        typer.echo(f"registered {model} v{mv['version']} from run {run_id}")


@app.command("list")
def list_models(project: str, as_json: bool = JsonOpt) -> None:
    """Registered models of a project."""
    with errors():
        table(client().models(project), ["name", "description", "created_at"], as_json)


@app.command("versions")
def versions(project: str, model: str, as_json: bool = JsonOpt) -> None:
    """Versions of a model, with metrics and aliases."""
    with errors():
        table(
            client().model_versions(project, model),
            ["version", "aliases", "run_id", "metrics"],
            as_json,
        )


@app.command("show")
def show_version(project: str, model: str, version: str) -> None:
    """One version (number or alias): signature, metrics, lineage."""
    with errors():
        show(client().model_version(project, model, version))


@app.command("alias")
def alias(project: str, model: str, alias: str, version: int) -> None:
    """Point ALIAS at VERSION."""
    with errors():
        client().set_alias(project, model, alias, version)
        typer.echo(f"{model}@{alias} → v{version}")
