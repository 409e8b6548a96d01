"""`mlteam data`: upload files as dataset versions, list and download them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from mlteam.cli.common import JsonOpt, client, errors, show, table

app = typer.Typer(help="Datasets and their versions.", no_args_is_help=True)


class _Reading:
    """A file wrapper that advances a progress bar as the upload streams it."""

    def __init__(self, path: Path, progress: Progress, task: int) -> None:
        self._fh = path.open("rb")
        self.name = str(path)
        self._progress, self._task = progress, task

    def read(self, n: int = -1) -> bytes:
        block = self._fh.read(n)
        self._progress.advance(self._task, len(block))
        return block

    def close(self) -> None:
        self._fh.close()


@app.command("upload")
def upload(
    project: str,
    dataset: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A CSV or Parquet file."),
    format: str | None = typer.Option(None, help="csv or parquet (default: from the file name)."),
) -> None:
    """Upload a file as a new version of DATASET (the same content twice is one version)."""
    with errors():
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
            reader = _Reading(file, progress, task)
            try:
                fmt = format or ("parquet" if file.suffix.lower() in (".parquet", ".pq") else "csv")
                v = client().upload(project, dataset, reader, fmt)  # type: ignore[arg-type]
            finally:
                reader.close()
        state = "new version" if v["created"] else "unchanged: same content as version"
        typer.echo(
            f"{dataset} v{v['n']} ({state}) rows={v['row_count']} sha256={v['content_hash'][:12]}"
        )


@app.command("list")
def list_datasets(project: str, as_json: bool = JsonOpt) -> None:
    """Datasets of a project, with their latest version."""
    with errors():
        table(client().datasets(project), ["name", "latest_version", "created_at"], as_json)


@app.command("versions")
def versions(project: str, dataset: str, as_json: bool = JsonOpt) -> None:
    """Versions of a dataset."""
    with errors():
        table(
            client().dataset_versions(project, dataset),
            ["n", "row_count", "size_bytes", "content_hash", "created_at"],
            as_json,
        )


@app.command("show")
def show_version(project: str, dataset: str, version: str = typer.Argument("latest")) -> None:
    """One version: schema, row count, lineage."""
    with errors():
        show(client().dataset_version(project, dataset, version))


@app.command("download")
def download(
    project: str,
    dataset: str,
    version: str = typer.Argument("latest"),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the file."),
    format: str = typer.Option("parquet", help="parquet or csv."),
) -> None:
    """Download a version as Parquet or CSV."""
    with errors():
        path = client().download(project, dataset, version, out, format)
        typer.echo(f"wrote {path}")
