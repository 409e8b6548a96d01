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


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def train(
    project: str,
    dataset: str,
    target: str = typer.Option(..., help="The column to predict."),
    version: str = typer.Option("latest", help="Dataset version."),
    features: str | None = typer.Option(
        None, help="Comma-separated feature columns (default: all others)."
    ),
    task: str = typer.Option("auto", help="auto, classification or regression."),
    candidates: str | None = typer.Option(
        None,
        help="Comma-separated subset of baseline, linear, random_forest, lightgbm "
        "(default: all; the baseline always runs).",
    ),
    baseline_rule: str | None = typer.Option(
        None,
        help="Baseline as a DuckDB SQL expression over the features, e.g. "
        "'CASE WHEN \"worst radius\" > 16 THEN 0 ELSE 1 END'.",
    ),
    trials: int | None = typer.Option(
        None, help="Optuna trials per model candidate (default: no tuning)."
    ),
    minutes: float | None = typer.Option(None, help="Tuning time budget per candidate."),
    cv: int = typer.Option(3, help="Cross-validation folds while tuning."),
    workers: int = typer.Option(1, help="Tuning trials run at once."),
    executor: str = typer.Option("local", help="Where trials run: local or ray."),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster address for --executor ray (default: MLTEAM_RAY_ADDRESS)."
    ),
    seed: int = typer.Option(42, help="Seed of the split, the models and the tuner."),
    test_fraction: float = typer.Option(
        0.2, help="Share of rows for test (and again for validation) without a version split."
    ),
    experiment: str = typer.Option("training", help="Experiment of the runs."),
    register_as: str | None = typer.Option(None, help="Register the best candidate as this model."),
    wait: bool = typer.Option(True, help="Wait for the job and show its progress."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a non-ML baseline and model candidates on a dataset version (optionally tuned), as a
    background job; says whether the best beats the baseline."""
    with errors():
        c = client()
        job = c.train(
            project,
            dataset,
            target,
            version=version,
            task=task,
            register_as=register_as,
            features=_csv(features),
            candidates=_csv(candidates),
            baseline_rule=baseline_rule,
            trials=trials,
            minutes=minutes,
            cv=cv,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            seed=seed,
            test_fraction=test_fraction,
            experiment=experiment,
        )
        err.print(f"job {job['id']} queued")
        if not wait:
            typer.echo(job["id"])
            return
        job = follow(c, job["id"])
        result = job["result"]
        if as_json:
            show(result, True)
            return
        keys = list(result["runs"][0]["metrics"].keys())
        rows = []
        for r in result["runs"]:
            tuned = (result.get("tuning") or {}).get("candidates", {}).get(r["name"])
            rows.append(
                {
                    "run": r["run_id"],
                    "candidate": r["name"],
                    **r["metrics"],
                    "trials": tuned["trials"] if tuned else "",
                    "onnx": "yes" if r.get("onnx") else "",
                }
            )
        table(rows, ["candidate", "run", *keys, "trials", "onnx"])
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


@runs_app.command("search")
def search_runs(
    project: str = typer.Argument(..., help="Project slug."),
    filter_string: str = typer.Option(
        "",
        "--filter",
        "-f",
        help="MLflow filter, e.g. \"metrics.acc > 0.9 and params.lr = '0.01'\".",
    ),
    order_by: list[str] | None = typer.Option(
        None, "--order-by", help="Sort key such as 'metrics.acc DESC'; repeat for ties."
    ),
    max_results: int = typer.Option(100, help="Runs per page (1..50000)."),
    page_token: str | None = typer.Option(None, help="The token a previous page printed."),
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Only this experiment; repeat for more."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Runs of a project matching a filter, sorted; newest first by default."""
    with errors():
        page = client().search_runs(
            project, filter_string, order_by, max_results, page_token, experiment
        )
        if as_json:
            show(page, True)
            return
        table(page["runs"], ["id", "experiment", "name", "status", "params", "metrics"])
        if page["next_page_token"]:
            err.print(f"more runs: --page-token {page['next_page_token']}")


@runs_app.command("compare")
def compare_runs(
    run_ids: list[str] = typer.Argument(..., help="The runs to compare (ids)."),
    as_json: bool = JsonOpt,
) -> None:
    """Runs side by side: params, and each metric's last value (--json: full histories)."""
    with errors():
        data = client().compare_runs(run_ids)
        if as_json:
            show(data, True)
            return
        labels = {r["id"]: f"{r['name'] or 'run'} {r['id'][:8]}" for r in data["runs"]}
        columns = list(labels.values())
        table(
            [
                {"param": k, **{labels[i]: v for i, v in by_run.items()}}
                for k, by_run in data["params"].items()
            ],
            ["param", *columns],
        )
        last = [
            {"metric": k, **{labels[i]: _last(v) for i, v in m["values"].items()}}
            for k, m in data["metrics"].items()
        ]
        table(last, ["metric", *columns])


def _last(values: list[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)
