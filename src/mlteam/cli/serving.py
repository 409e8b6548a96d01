"""`mlteam deploy`, `predict`, `feedback` and `report`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mlteam.cli.common import JsonOpt, client, errors, show, table

app = typer.Typer(help="Deployments.", no_args_is_help=True)


@app.command("create")
def deploy(
    project: str,
    name: str,
    model: str = typer.Option(..., help="Registered model."),
    version: str = typer.Option(..., help="Version number or alias."),
    stage: str | None = typer.Option(
        None, help="staging or production; default: unchanged (new deployments: staging)."
    ),
) -> None:
    """Create deployment NAME, or give it a new revision serving MODEL VERSION."""
    with errors():
        d = client().deploy(project, name, model, version, stage)
        typer.echo(
            f"deployment {d['name']} revision {d['revision']} serves {model} v{d['routes'][0]['version']}"
        )


def _route(spec: str, mode: str) -> dict:
    model, sep, rest = spec.partition(":")
    version, _, weight = rest.partition(":")
    if not sep or not model or not version:
        raise typer.BadParameter(f"{spec!r}: expected MODEL:VERSION[:WEIGHT]")
    route: dict = {"model": model, "version": int(version) if version.isdigit() else version}
    route["mode"] = mode
    if weight:
        if not weight.isdigit():
            raise typer.BadParameter(f"{spec!r}: the weight must be a whole number")
        route["weight"] = int(weight)
    return route


@app.command("revise")
def revise(
    name: str,
    route: list[str] = typer.Option(
        ...,
        "--route",
        help="Live route MODEL:VERSION[:WEIGHT] (version number or alias); repeat for a "
        "canary, e.g. --route clf:1:95 --route clf:2:5. Live weights add up to 100.",
    ),
    shadow: list[str] = typer.Option(
        [],
        "--shadow",
        help="Shadow route MODEL:VERSION: gets a copy of traffic, answers logged only.",
    ),
    stage: str | None = typer.Option(None, help="staging or production; default: unchanged."),
) -> None:
    """Give deployment NAME a new revision: which versions take traffic, and how much."""
    with errors():
        routes = [_route(r, "live") for r in route] + [_route(s, "shadow") for s in shadow]
        if len(route) == 1 and "weight" not in routes[0]:
            routes[0]["weight"] = 100
        d = client().revise(name, routes, stage)
        typer.echo(f"deployment {d['name']} revision {d['revision']}: {_routes_text(d['routes'])}")


@app.command("rollback")
def rollback(name: str) -> None:
    """Serve the previous revision of deployment NAME again (a new revision, audited)."""
    with errors():
        d = client().rollback(name)
        typer.echo(f"deployment {d['name']} revision {d['revision']}: {_routes_text(d['routes'])}")


@app.command("show")
def show_deployment(
    name: str,
    revisions: bool = typer.Option(False, "--revisions", help="List every revision too."),
    as_json: bool = JsonOpt,
) -> None:
    """A deployment, its stage and current routes."""
    with errors():
        c = client()
        d = c.deployment(name)
        revs = c.revisions(name) if revisions else None
        if as_json:
            show({**d, "revisions": revs} if revs is not None else d, True)
            return
        typer.echo(
            f"{d['name']} ({d['stage']}) revision {d['revision']}: {_routes_text(d['routes'])}"
        )
        if revs:
            rows = [{**r, "routes": _routes_text(r["routes"])} for r in revs]
            table(rows, ["revision", "current", "routes", "created_at"], title="revisions")


def _routes_text(routes: list) -> str:
    return ", ".join(
        f"{r['model']} v{r['version']} " + (f"{r['weight']}%" if r["mode"] == "live" else "shadow")
        for r in routes
    )


@app.command("list")
def list_deployments(project: str, as_json: bool = JsonOpt) -> None:
    """Deployments of a project."""
    with errors():
        rows = client().deployments(project)
        if not as_json:
            rows = [{**r, "routes": _routes_text(r["routes"])} for r in rows]
        table(rows, ["name", "stage", "revision", "routes"], as_json)


def _records(source: str) -> list:
    """JSON given inline, `-` for standard input, or the path of a JSON file."""
    if source == "-":
        text = sys.stdin.read()
    elif source.lstrip().startswith(("[", "{")):
        text = source
    else:
        text = Path(source).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"not JSON: {e}") from None
    return data if isinstance(data, list) else [data]


def predict(
    deployment: str,
    inputs: str = typer.Argument(
        ..., help="JSON records (a list or one object), a JSON file, or - for stdin."
    ),
) -> None:
    """Send records to a deployment; prints predictions with their ids (for feedback)."""
    with errors():
        show(client().predict(deployment, _records(inputs)))


def feedback(
    deployment: str,
    items: str = typer.Argument(
        ..., help='JSON [{"prediction_id", "truth"}], a JSON file, or - for stdin.'
    ),
) -> None:
    """Send ground truth for earlier predictions."""
    with errors():
        typer.echo(f"recorded {client().feedback(deployment, _records(items))}")


def report(deployment: str, as_json: bool = JsonOpt) -> None:
    """Drift of live inputs against the training data, and accuracy on fed-back predictions."""
    with errors():
        rep = client().report(deployment)
        if as_json:
            show(rep, True)
            return
        typer.echo(
            f"{rep['deployment']}: {rep['predictions']} predictions, {rep['feedback']} with feedback"
        )
        for v in rep["versions"]:
            typer.echo(
                f"{v['model']} v{v['version']}: {v['predictions']} predictions, performance {v['performance']}"
            )
            rows = [
                {"feature": f, **d}
                for f, d in sorted(v["drift"].items(), key=lambda kv: -kv[1]["psi"])
            ]
            table(
                rows[:15], ["feature", "psi", "ks", "p_value", "drifted"], title="drift (top PSI)"
            )


def score(
    project: str,
    dataset: str,
    model: str = typer.Option(..., help="Registered model."),
    model_version: str = typer.Option(..., help="Model version number or alias."),
    version: str = typer.Option("latest", help="Dataset version to score."),
    output: str | None = typer.Option(None, help="Output dataset (default DATASET-scored)."),
    wait: bool = typer.Option(True, help="Wait for the job and show its progress."),
) -> None:
    """Score a dataset version with a model version, as a job: a new dataset version with a
    `prediction` column, whose parent is the input version."""
    from mlteam.cli.training import follow

    with errors():
        c = client()
        job = c.score(project, dataset, model, model_version, version, output)
        if not wait:
            typer.echo(job["id"])
            return
        r = follow(c, job["id"])["result"]
        typer.echo(f"scored {r['rows']} rows into {r['dataset']} v{r['version']}")
