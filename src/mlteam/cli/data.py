"""`mlteam data`: upload files as dataset versions; list, profile, diff, split, query and
download them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from mlteam.cli.common import JsonOpt, client, err, errors, show, table
from mlteam.core.errors import InvalidInput

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
    type_: list[str] = typer.Option(
        [],
        "--type",
        help="Pin a CSV column's type, COLUMN=TYPE (e.g. id=BIGINT); repeat for more. "
        "Other columns are sniffed.",
    ),
) -> None:
    """Upload a file as a new version of DATASET (the same content twice is one version)."""
    with errors():
        types = _pairs(type_, "--type")
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
                v = client().upload(project, dataset, reader, fmt, types or None)  # type: ignore[arg-type]
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
    split: str | None = typer.Option(
        None, help="Only this part of the version's split: train, validation or test."
    ),
    columns: str | None = typer.Option(None, help="Only these columns, comma-separated."),
) -> None:
    """Download a version (or one split of it, or some columns) as Parquet or CSV."""
    with errors():
        cols = [c.strip() for c in columns.split(",")] if columns else None
        with _working(f"downloading {dataset} v{version}"):
            path = client().download(project, dataset, version, out, format, split, cols)
        typer.echo(f"wrote {path}")


@app.command("profile")
def profile(
    project: str,
    dataset: str,
    version: str = typer.Argument("latest", help="Version number, or latest."),
    as_json: bool = JsonOpt,
) -> None:
    """Per-column profile: type, nulls, distinct, min/max/mean/std, top values."""
    with errors():
        with _working("profiling"):
            p = client().profile(project, dataset, version)
        if as_json:
            show(p, True)
            return
        rows = [
            {
                **c,
                "top": ", ".join(
                    f"{t['value']}({t['count']})" for t in (c.get("top_values") or [])[:3]
                ),
            }
            for c in p["columns"]
        ]
        table(
            rows,
            ["name", "type", "nulls", "distinct", "min", "max", "mean", "std", "top"],
            title=f"{dataset} v{p['n']}: {p['row_count']} rows",
        )


@app.command("diff")
def diff(
    project: str,
    dataset: str,
    from_version: str = typer.Argument(..., metavar="FROM", help="The older version."),
    to_version: str = typer.Argument("latest", metavar="TO", help="The newer version."),
    as_json: bool = JsonOpt,
) -> None:
    """What changed between two versions: schema, row count, distribution shift per column."""
    with errors():
        with _working("comparing"):
            d = client().diff(project, dataset, from_version, to_version)
        if as_json:
            show(d, True)
            return
        rows = d["rows"]
        typer.echo(f"{dataset} v{d['from']} → v{d['to']}: rows {rows['from']} → {rows['to']}")
        for kind in ("added", "removed"):
            for c in d["schema"][kind]:
                typer.echo(f"  {kind} column {c['name']} ({c['type']})")
        for c in d["schema"]["type_changed"]:
            typer.echo(f"  column {c['name']}: {c['from']} → {c['to']}")
        table(d["columns"], ["name", "type", "psi", "p_value", "drifted"], title="shift")


@app.command("split")
def split(
    project: str,
    dataset: str,
    version: str = typer.Argument(..., help="Version number, or latest."),
    column: str = typer.Option(..., help="The key column (hash) or time column (time)."),
    method: str = typer.Option("hash", help="hash (of the key column) or time (cutoffs)."),
    fractions: str = typer.Option(
        "0.8,0.1,0.1", help="hash: train,validation,test shares adding up to 1."
    ),
    validation_from: str | None = typer.Option(
        None, help="time: the first time value of validation (earlier rows are train)."
    ),
    test_from: str | None = typer.Option(None, help="time: the first time value of test."),
) -> None:
    """Fix a deterministic train/validation/test split on a version."""
    with errors():
        if method == "hash":
            parts = [float(x) for x in fractions.split(",")]
            if len(parts) != 3:
                raise InvalidInput("--fractions takes three numbers: train,validation,test")
            shares = dict(zip(("train", "validation", "test"), parts, strict=True))
            v = client().split(project, dataset, version, column, "hash", fractions=shares)
        else:
            cutoffs = {"validation": validation_from, "test": test_from}
            cutoffs = {k: x for k, x in cutoffs.items() if x is not None}
            v = client().split(project, dataset, version, column, method, cutoffs=cutoffs)
        counts = v["split"]["counts"]
        typer.echo(
            f"{dataset} v{v['n']} split by {v['split']['method']} of {column}: "
            + ", ".join(f"{k}={n}" for k, n in counts.items())
        )


@app.command("query")
def query(
    project: str,
    sql: str = typer.Argument(
        ..., help="DuckDB SQL; tables are <dataset> (latest) and <dataset>_v<n>. '-' reads stdin."
    ),
    limit: int = typer.Option(1000, help="At most this many rows (max 100,000)."),
    timeout: float = typer.Option(30.0, help="Stop the query after this many seconds (max 60)."),
    as_json: bool = JsonOpt,
) -> None:
    """Read-only SQL over the project's dataset versions."""
    with errors():
        if sql == "-":
            sql = typer.get_text_stream("stdin").read()
        with _working("querying"):
            r = client().query(project, sql, limit=limit, timeout_s=timeout)
        names = [c["name"] for c in r["columns"]]
        rows = [dict(zip(names, row, strict=True)) for row in r["rows"]]
        if as_json:
            typer.echo(json.dumps(rows, default=str))
        else:
            table(rows, names, title=f"{r['row_count']} rows in {r['seconds']:.3f} s")
        if r["truncated"]:
            err.print(f"[yellow]truncated at {limit} rows[/]: raise --limit for more")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} takes COLUMN=TYPE, not {item!r}")
        out[key] = value
    return out


@contextmanager
def _working(what: str) -> Iterator[None]:
    """A spinner on stderr while the server works (profiles, diffs, queries)."""
    with err.status(f"{what}…"):
        yield
