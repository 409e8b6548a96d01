"""`mlteam data sources ...` and `mlteam data pipelines ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from mlteam.cli.common import JsonOpt, client, err, errors, show, table
from mlteam.cli.training import follow
from mlteam.core.errors import InvalidInput

sources_app = typer.Typer(help="Where pipelines read raw data from.", no_args_is_help=True)
pipelines_app = typer.Typer(
    help="SQL pipelines that publish dataset versions.", no_args_is_help=True
)


def register(data_app: typer.Typer) -> None:
    """Hang `sources` and `pipelines` under `mlteam data`."""
    data_app.add_typer(sources_app, name="sources")
    data_app.add_typer(pipelines_app, name="pipelines")


def _value(text: str) -> Any:
    """A --param value: JSON if it parses (numbers, true, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@sources_app.command("create")
def create_source(
    project: str,
    name: str,
    kind: str = typer.Option(..., help="dataset, uri or sql."),
    dataset: str | None = typer.Option(None, help="dataset: the dataset to read."),
    version: str = typer.Option("latest", help="dataset: a version number or latest."),
    uri: str | None = typer.Option(None, help="uri: a local path or s3://bucket/key."),
    format: str | None = typer.Option(None, help="uri: parquet, csv or jsonl."),
    url: str | None = typer.Option(
        None,
        envvar="MLTEAM_SOURCE_URL",
        help="sql: a SQLAlchemy URL; its password is stored encrypted (or set MLTEAM_SOURCE_URL).",
    ),
    table_name: str | None = typer.Option(None, "--table", help="sql: the table to read."),
    query: str | None = typer.Option(None, help="sql: a query to read instead of a table."),
    s3_key: str | None = typer.Option(None, envvar="MLTEAM_SOURCE_S3_KEY", help="uri: s3 key."),
    s3_secret: str | None = typer.Option(
        None, envvar="MLTEAM_SOURCE_S3_SECRET", help="uri: s3 secret (stored encrypted)."
    ),
    endpoint_url: str | None = typer.Option(
        None, help="uri: an S3-compatible endpoint (MinIO, Ceph, ...) instead of AWS."
    ),
) -> None:
    """Add a source: a dataset version, a file at a URI, or a SQL table or query."""
    with errors():
        if kind == "dataset":
            config: dict[str, Any] = {
                "dataset": dataset,
                "version": int(version) if version.isdigit() else version,
            }
        elif kind == "uri":
            config = {"uri": uri, "format": format}
            if endpoint_url:
                config["options"] = {"endpoint_url": endpoint_url}
        else:
            config = {"url": url, "table": table_name, "query": query}
        creds = {k: v for k, v in {"key": s3_key, "secret": s3_secret}.items() if v}
        src = client().create_source(
            project, name, kind, {k: v for k, v in config.items() if v is not None}, creds or None
        )
        typer.echo(f"source {src['name']} ({src['kind']}) created")


@sources_app.command("list")
def list_sources(project: str, as_json: bool = JsonOpt) -> None:
    """Sources of a project (credentials are never shown)."""
    with errors():
        table(client().sources(project), ["name", "kind", "config", "has_credentials"], as_json)


@sources_app.command("show")
def show_source(project: str, name: str) -> None:
    """One source."""
    with errors():
        show(client().source(project, name))


@sources_app.command("delete")
def delete_source(project: str, name: str) -> None:
    """Remove a source."""
    with errors():
        client().delete_source(project, name)
        typer.echo(f"source {name} deleted")


def load_definition(path: Path) -> dict[str, Any]:
    """A pipeline definition from a JSON or YAML file."""
    text = path.read_text()
    try:
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise InvalidInput(f"{path} is not valid JSON/YAML: {e}", {"field": "file"}) from None
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path} must hold one pipeline definition (an object)")
    return spec


@pipelines_app.command("create")
def create_pipeline(
    project: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Definition (JSON/YAML)."),
    replace: bool = typer.Option(False, help="Update the pipeline of that name if it exists."),
) -> None:
    """Create a pipeline from a JSON or YAML definition file."""
    with errors():
        p = client().create_pipeline(project, load_definition(file), replace=replace)
        typer.echo(f"pipeline {p['name']} saved: {len(p['steps'])} steps → dataset {p['output']}")


@pipelines_app.command("list")
def list_pipelines(project: str, as_json: bool = JsonOpt) -> None:
    """Pipelines of a project."""
    with errors():
        rows = client().pipelines(project)
        table(
            rows, ["name", "output", "schedule", "trigger_on_new_version", "next_run_at"], as_json
        )


@pipelines_app.command("show")
def show_pipeline(project: str, name: str) -> None:
    """A pipeline's definition."""
    with errors():
        show(client().pipeline(project, name))


@pipelines_app.command("delete")
def delete_pipeline(project: str, name: str) -> None:
    """Remove a pipeline (the versions it published stay)."""
    with errors():
        client().delete_pipeline(project, name)
        typer.echo(f"pipeline {name} deleted")


@pipelines_app.command("run")
def run_pipeline(
    project: str,
    name: str,
    param: list[str] | None = typer.Option(None, "--param", "-p", help="NAME=VALUE; repeat."),
    wait: bool = typer.Option(True, help="Wait for the run and show its progress."),
) -> None:
    """Run a pipeline now, as a background job."""
    with errors():
        params = {}
        for item in param or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvalidInput(f"--param {item!r}: use NAME=VALUE", {"field": "param"})
            params[key] = _value(value)
        c = client()
        job = c.run_pipeline(project, name, params)
        err.print(f"job {job['id']} queued")
        if not wait:
            typer.echo(job["id"])
            return
        try:
            job = follow(c, job["id"])
        finally:
            report = c.job(job["id"])["result"] or {}
            for check in report.get("checks", []):
                mark = "ok  " if check["passed"] else "FAIL"
                typer.echo(f"{mark} {check['name']}: {check['message']}")
        v = job["result"]["version"]
        state = "published" if v["created"] else "unchanged: same content as"
        typer.echo(f"{v['dataset']} v{v['n']} {state}")


@pipelines_app.command("runs")
def list_runs(project: str, name: str, as_json: bool = JsonOpt) -> None:
    """Runs of a pipeline, newest first."""
    with errors():
        rows = [
            {"trigger": r["trigger"], **{k: r["job"][k] for k in ("id", "state", "error")},
             "created_at": r["job"]["created_at"]}
            for r in client().pipeline_runs(project, name)
        ]  # fmt: skip
        table(rows, ["id", "trigger", "state", "created_at", "error"], as_json)
