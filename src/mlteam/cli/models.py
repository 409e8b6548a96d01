"""`mlteam models`: the registry; `mlteam promotions`: promotion requests and sign-offs."""

from __future__ import annotations

import typer

from mlteam.cli.common import JsonOpt, client, errors, show, table

app = typer.Typer(help="Registered models and versions.", no_args_is_help=True)
promotions_app = typer.Typer(
    help="Promotion requests: a version becomes an alias (production) after sign-offs.",
    no_args_is_help=True,
)

Project = typer.Argument(..., help="Project slug.")
Model = typer.Argument(..., help="Registered model name.")
Version = typer.Argument(..., help="Version number, or an alias naming one.")
Number = typer.Argument(..., help="Promotion request number (see `mlteam promotions list`).")


@app.command("register")
def register(
    project: str = Project,
    model: str = Model,
    run_id: str = typer.Argument(..., help="A finished run that logged a model."),
    description: str = typer.Option("", help="Notes."),
) -> None:
    """Register a finished run's model as the next version of MODEL."""
    with errors():
        mv = client().register(project, model, run_id, description)
        typer.echo(f"registered {model} v{mv['version']} from run {run_id}")


@app.command("list")
def list_models(project: str = Project, as_json: bool = JsonOpt) -> None:
    """Registered models of a project."""
    with errors():
        table(
            client().models(project),
            ["name", "latest_version", "aliases", "tags", "description"],
            as_json,
        )


@app.command("versions")
def versions(project: str = Project, model: str = Model, as_json: bool = JsonOpt) -> None:
    """Versions of a model, with metrics, aliases and stage."""
    with errors():
        table(
            client().model_versions(project, model),
            ["version", "aliases", "stage", "run_id", "metrics"],
            as_json,
        )


@app.command("show")
def show_version(project: str = Project, model: str = Model, version: str = Version) -> None:
    """One version (number or alias): signature, metrics, lineage, aliases, stage, tags."""
    with errors():
        show(client().model_version(project, model, version))


@app.command("alias")
def alias(
    project: str = Project,
    model: str = Model,
    alias: str = typer.Argument(..., help="Alias name (production/champion need a promotion)."),
    version: int = typer.Argument(..., help="Version number."),
) -> None:
    """Point ALIAS at VERSION (protected aliases: use `mlteam promotions request`)."""
    with errors():
        client().set_alias(project, model, alias, version)
        typer.echo(f"{model}@{alias} → v{version}")


@app.command("unalias")
def unalias(
    project: str = Project,
    model: str = Model,
    alias: str = typer.Argument(..., help="Alias to remove (a protected one: owners only)."),
) -> None:
    """Remove ALIAS from the model."""
    with errors():
        client().delete_alias(project, model, alias)
        typer.echo(f"{model}@{alias} removed")


@app.command("tag")
def tag(
    project: str = Project,
    model: str = Model,
    key: str = typer.Argument(..., help="Tag key."),
    value: str | None = typer.Argument(None, help="Tag value (omit with --delete)."),
    version: str | None = typer.Option(
        None, "--version", help="Tag this version (number or alias) instead of the model."
    ),
    delete: bool = typer.Option(False, "--delete", help="Remove the tag instead of setting it."),
) -> None:
    """Set (or with --delete remove) a tag of MODEL, or of one version with --version."""
    if not delete and value is None:
        raise typer.BadParameter("give a VALUE, or --delete to remove the tag")
    with errors():
        c = client()
        if delete and version is not None:
            c.delete_version_tag(project, model, version, key)
        elif delete:
            c.delete_model_tag(project, model, key)
        elif version is not None:
            c.set_version_tag(project, model, version, key, value or "")
        else:
            c.set_model_tag(project, model, key, value or "")
        where = f"{model} v{version}" if version is not None else model
        typer.echo(f"{where}: tag {key} {'removed' if delete else 'set'}")


@app.command("describe")
def describe(
    project: str = Project,
    model: str = Model,
    text: str = typer.Argument(..., help="The new description (replaces the old one)."),
    version: str | None = typer.Option(
        None, "--version", help="Describe this version (number or alias) instead of the model."
    ),
) -> None:
    """Replace the description of MODEL, or of one version with --version."""
    with errors():
        c = client()
        if version is not None:
            c.update_model_version(project, model, version, text)
        else:
            c.update_model(project, model, text)
        typer.echo("description updated")


@app.command("stage")
def stage(
    project: str = Project,
    model: str = Model,
    version: str = Version,
    stage: str = typer.Argument(
        ..., help="None, Staging or Archived (Production goes through a promotion request)."
    ),
    archive_existing: bool = typer.Option(
        False, "--archive-existing", help="Archive the version that held the stage before."
    ),
) -> None:
    """Move a version to an MLflow stage (the matching alias moves with it)."""
    with errors():
        mv = client().transition_stage(project, model, version, stage, archive_existing)
        typer.echo(f"{model} v{mv['version']}: {mv['stage']}")


@app.command("card")
def card(
    project: str = Project,
    model: str = Model,
    version: str = Version,
    markdown: bool = typer.Option(False, "--markdown", help="Print the card as Markdown."),
    revision: int | None = typer.Option(
        None, help="Show this written revision instead of the newest (0: none)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """The model card of a version: generated facts and the written parts."""
    with errors():
        c = client()
        if markdown:
            typer.echo(c.model_card(project, model, version, "markdown", revision), nl=False)
        else:
            show(c.model_card(project, model, version, "json", revision), as_json)


@app.command("card-edit")
def card_edit(
    project: str = Project,
    model: str = Model,
    version: str = Version,
    intended_use: str | None = typer.Option(None, help="What the model is for, and for whom."),
    limitations: str | None = typer.Option(None, help="Where it is known not to work."),
    ethical_considerations: str | None = typer.Option(
        None, help="Risks, affected groups, fairness."
    ),
    caveats: str | None = typer.Option(None, help="Caveats and recommendations."),
    notes: str | None = typer.Option(None, help="Anything else."),
) -> None:
    """Write parts of a version's model card (a new revision; parts left out are kept)."""
    fields = {
        "intended_use": intended_use,
        "limitations": limitations,
        "ethical_considerations": ethical_considerations,
        "caveats": caveats,
        "notes": notes,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        raise typer.BadParameter("give at least one part to write, e.g. --intended-use")
    with errors():
        out = client().edit_model_card(project, model, version, **fields)
        typer.echo(f"{model} v{out['version']}: card revision {out['revision']}")


# -- promotions --------------------------------------------------------------------------------


def _summary(req: dict) -> str:
    return (
        f"promotion #{req['number']}: {req['model']} v{req['version']} → {req['target']} "
        f"[{req['state']}]"
        + (f", waiting for {', '.join(req['pending'])}" if req["pending"] else "")
    )


@promotions_app.command("request")
def request(
    project: str = Project,
    model: str = Model,
    version: str = Version,
    rationale: str = typer.Option(..., help="Why this version should be promoted (required)."),
    to: str = typer.Option("production", "--to", help="The alias to move."),
) -> None:
    """Ask for VERSION of MODEL to become an alias, pending the project's sign-offs."""
    with errors():
        typer.echo(_summary(client().request_promotion(project, model, version, rationale, to)))


@promotions_app.command("list")
def list_promotions(
    project: str = Project,
    state: str | None = typer.Option(
        None, help="Only requests in this state: open, approved, rejected or withdrawn."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Promotion requests of a project, newest first."""
    with errors():
        table(
            client().promotions(project, state),
            ["number", "model", "version", "target", "state", "pending", "requester"],
            as_json,
        )


@promotions_app.command("show")
def show_promotion(project: str = Project, number: int = Number) -> None:
    """One request: rationale, required roles and every sign-off."""
    with errors():
        show(client().promotion(project, number))


def _sign(project: str, number: int, role: str, decision: str, rationale: str) -> None:
    with errors():
        typer.echo(_summary(client().sign_promotion(project, number, role, decision, rationale)))


@promotions_app.command("approve")
def approve(
    project: str = Project,
    number: int = Number,
    role: str = typer.Option(..., "--as", help="The role you sign as (qa, compliance, ...)."),
    rationale: str = typer.Option(..., help="Why you approve (required)."),
) -> None:
    """Approve a request as one of your roles; the last approval moves the alias."""
    _sign(project, number, role, "approve", rationale)


@promotions_app.command("reject")
def reject(
    project: str = Project,
    number: int = Number,
    role: str = typer.Option(..., "--as", help="The role you sign as (qa, compliance, ...)."),
    rationale: str = typer.Option(..., help="Why you reject (required)."),
) -> None:
    """Reject a request as one of your roles; this ends it."""
    _sign(project, number, role, "reject", rationale)


@promotions_app.command("withdraw")
def withdraw(
    project: str = Project,
    number: int = Number,
    rationale: str = typer.Option("", help="Why it is withdrawn."),
) -> None:
    """Withdraw an open request (its requester, or an owner)."""
    with errors():
        typer.echo(_summary(client().withdraw_promotion(project, number, rationale)))
