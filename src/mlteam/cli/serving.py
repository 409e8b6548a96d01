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
    stage: str = typer.Option("staging", help="staging or production."),
) -> None:
    """Create deployment NAME, or give it a new revision serving MODEL VERSION."""
    with errors():
        d = client().deploy(project, name, model, version, stage)
        typer.echo(
            f"deployment {d['name']} revision {d['revision']} serves {model} v{d['routes'][0]['version']}"
        )


@app.command("list")
def list_deployments(project: str, as_json: bool = JsonOpt) -> None:
    """Deployments of a project."""
    with errors():
        table(client().deployments(project), ["name", "stage", "revision", "routes"], as_json)


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
