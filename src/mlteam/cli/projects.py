"""`mlteam projects`, members, model requests and the audit log."""

from __future__ import annotations

import json

import typer

from mlteam.cli.common import JsonOpt, client, errors, show, table

app = typer.Typer(help="Projects, members, model requests, audit log.", no_args_is_help=True)
members_app = typer.Typer(help="Project members and their roles.", no_args_is_help=True)
requests_app = typer.Typer(help="The backlog of model requests.", no_args_is_help=True)
app.add_typer(members_app, name="members")
app.add_typer(requests_app, name="requests")


@app.command("create")
def create(
    slug: str,
    name: str = typer.Option("", help="Display name."),
    goal: str = typer.Option("", help="The business goal."),
    metric: str = typer.Option("", "--metric", help="The success metric."),
) -> None:
    """Create a project; you become its owner."""
    with errors():
        show(client().create_project(slug, name=name, goal=goal, success_metric=metric))


@app.command("list")
def list_projects(as_json: bool = JsonOpt) -> None:
    """Projects you belong to (all, for an admin), with their phase."""
    with errors():
        table(client().projects(), ["slug", "name", "phase", "my_roles", "goal"], as_json)


@app.command("show")
def show_project(slug: str) -> None:
    """A project's settings, phase and your roles."""
    with errors():
        show(client().project(slug))


@app.command("set")
def set_fields(
    slug: str,
    goal: str | None = typer.Option(None, help="The business goal."),
    metric: str | None = typer.Option(None, "--metric", help="The success metric."),
    value_matrix: str | None = typer.Option(
        None, help='JSON: {"<truth>": {"<prediction>": value}} or {"cost_per_unit_error": x}.'
    ),
    signoffs: str | None = typer.Option(None, help="Comma-separated roles that must sign off."),
    name: str | None = typer.Option(None, help="Display name."),
) -> None:
    """Change business fields (stakeholders) or settings (owners)."""
    fields = {"goal": goal, "success_metric": metric, "name": name}
    if value_matrix is not None:
        try:
            fields["value_matrix"] = json.loads(value_matrix)
        except json.JSONDecodeError as e:
            raise typer.BadParameter(f"value matrix is not JSON: {e}") from None
    if signoffs is not None:
        fields["required_signoffs"] = [r.strip() for r in signoffs.split(",") if r.strip()]
    with errors():
        show(client().update_project(slug, **{k: v for k, v in fields.items() if v is not None}))


@app.command("audit")
def audit(
    slug: str,
    action: str | None = typer.Option(None, help="Only actions starting with this."),
    limit: int = typer.Option(50, help="How many events."),
    as_json: bool = JsonOpt,
) -> None:
    """The project's audit log, newest first."""
    with errors():
        table(
            client().audit(slug, action, limit),
            ["at", "actor_email", "action", "target", "detail"],
            as_json,
        )


@members_app.command("list")
def members(slug: str, as_json: bool = JsonOpt) -> None:
    """Members and their roles."""
    with errors():
        table(client().members(slug), ["email", "roles"], as_json)


@members_app.command("add")
def add_member(slug: str, email: str, role: str) -> None:
    """Give a user a role in the project (owners)."""
    with errors():
        table(client().add_member(slug, email, role), ["email", "roles"])


@members_app.command("remove")
def remove_member(slug: str, email: str, role: str) -> None:
    """Take a role away (owners)."""
    with errors():
        client().remove_member(slug, email, role)
        typer.echo(f"removed {role} from {email}")


@requests_app.command("create")
def create_request(
    slug: str,
    title: str,
    problem: str = typer.Option("", help="What problem the model should solve."),
    metric: str = typer.Option("", help="How success is measured."),
    priority: str = typer.Option("medium", help="low, medium, high or critical."),
) -> None:
    """File a model request."""
    with errors():
        show(
            client().create_request(slug, title, problem=problem, metric=metric, priority=priority)
        )


@requests_app.command("list")
def list_requests(
    slug: str,
    state: str | None = typer.Option(None, help="Only this state."),
    as_json: bool = JsonOpt,
) -> None:
    """The backlog, most urgent first."""
    with errors():
        table(
            client().requests(slug, state),
            ["number", "title", "priority", "state", "metric"],
            as_json,
        )


@requests_app.command("triage")
def triage(
    slug: str,
    number: int,
    priority: str | None = typer.Option(None, help="low, medium, high or critical."),
    state: str | None = typer.Option(None, help="new, accepted, in_progress, done, rejected."),
    rationale: str | None = typer.Option(None, help="Why (kept in the audit log)."),
) -> None:
    """Set a request's priority or state (stakeholders)."""
    with errors():
        show(
            client().triage_request(
                slug, number, priority=priority, state=state, rationale=rationale
            )
        )
