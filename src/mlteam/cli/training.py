"""`mlteam train`, `mlteam jobs` and `mlteam runs`."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mlteam.cli.common import JsonOpt, client, err, errors, show, table
from mlteam.client import Client

jobs_app = typer.Typer(help="Background jobs.", no_args_is_help=True)
runs_app = typer.Typer(help="Tracked runs.", no_args_is_help=True)


def follow(c: Client, job_id: str) -> dict:
    """Show a job's progress until it ends; return it (raises if it failed)."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("queued", total=1.0)

        def update(job: dict) -> None:
            progress.update(
                task, completed=job["progress"], description=job["message"] or job["state"]
            )

        return c.wait(job_id, on_progress=update)


def train(
    project: str,
    dataset: str,
    target: str = typer.Option(..., help="The column to predict."),
    version: str = typer.Option("latest", help="Dataset version."),
    features: str | None = typer.Option(
        None, help="Comma-separated feature columns (default: all others)."
    ),
    task: str = typer.Option("auto", help="auto, classification or regression."),
    register_as: str | None = typer.Option(None, help="Register the best candidate as this model."),
    wait: bool = typer.Option(True, help="Wait for the job and show its progress."),
) -> None:
    """Train a non-ML baseline and a candidate on a dataset version, as a background job."""
    with errors():
        c = client()
        job = c.train(
            project,
            dataset,
            target,
            version=version,
            task=task,
            register_as=register_as,
            features=[f.strip() for f in features.split(",")] if features else None,
        )
        err.print(f"job {job['id']} queued")
        if not wait:
            typer.echo(job["id"])
            return
        job = follow(c, job["id"])
        result = job["result"]
        table(
            [{"run": r["run_id"], "candidate": r["name"], **r["metrics"]} for r in result["runs"]],
            ["candidate", "run", *result["runs"][0]["metrics"].keys()],
        )
        typer.echo(result["verdict"])
        if mv := result.get("model_version"):
            typer.echo(f"registered {mv['model']} v{mv['version']}")


@jobs_app.command("list")
def list_jobs(project: str, as_json: bool = JsonOpt) -> None:
    """Recent jobs of a project."""
    with errors():
        table(
            client().jobs(project), ["id", "kind", "state", "progress", "message", "error"], as_json
        )


@jobs_app.command("show")
def show_job(job_id: str) -> None:
    """A job's state, progress, result or error."""
    with errors():
        show(client().job(job_id))


@jobs_app.command("log")
def job_log(job_id: str) -> None:
    """A job's log."""
    with errors():
        typer.echo(client().job_log(job_id))


@jobs_app.command("wait")
def wait_job(job_id: str) -> None:
    """Follow a job until it ends."""
    with errors():
        show(follow(client(), job_id))


@runs_app.command("list")
def list_runs(
    project: str,
    experiment: str | None = typer.Option(None, help="Only this experiment."),
    as_json: bool = JsonOpt,
) -> None:
    """Runs of a project, newest first."""
    with errors():
        table(
            client().runs(project, experiment),
            ["id", "experiment", "name", "kind", "status", "metrics"],
            as_json,
        )


@runs_app.command("show")
def show_run(run_id: str) -> None:
    """A run's params, tags, metrics and lineage."""
    with errors():
        show(client().run(run_id))
