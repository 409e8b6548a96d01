"""Reading dataset versions: profiles, streamed rows (a split, some columns), read-only SQL.

Rows leave the server as a stream of record batches (Arrow IPC, CSV or Parquet), produced by
DuckDB from the stored file batch by batch: a 2 GB version does not need 2 GB of memory.
User SQL runs in a DuckDB that sees the project's versions and nothing else: external access
is off and the configuration locked before the first user statement, with a row limit and a
time limit (the query is interrupted past it).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
from sqlalchemy.orm import Session

from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput, UserCodeError
from mlteam.core.models import User
from mlteam.data import service
from mlteam.data.ingest import connect
from mlteam.data.models import DatasetVersion
from mlteam.data.profile import jsonable, profile_relation, q
from mlteam.data.scan import arrow_dataset, connect_version
from mlteam.data.splits import PARTS, part_sql
from mlteam.projects import service as projects

BATCH_ROWS = 64 * 1024
MEDIA = {
    "arrow": "application/vnd.apache.arrow.stream",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}
QUERY_MAX_ROWS = 100_000
QUERY_MAX_SECONDS = 60.0


def get_profile(
    session: Session, actor: User, store: ArtifactStore, slug: str, dataset: str, n: int | str
) -> dict[str, Any]:
    """The per-column profile of a version (computed now for versions from before profiles)."""
    version = service.get_version(session, actor, slug, dataset, n)
    prof = version.profile
    if prof is None:
        with connect_version(store, version) as con:
            prof = profile_relation(con, "v")
    return {"dataset": dataset, "n": version.n, **prof}


def _select(version: DatasetVersion, split: str | None, columns: list[str] | None) -> str:
    names = [c["name"] for c in version.schema]
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InvalidInput(
                f"columns not in v{version.n}: {', '.join(missing)} (has: {', '.join(names)})",
                {"field": "columns", "columns": missing},
            )
    cols = ", ".join(q(c) for c in columns) if columns else "*"
    where = ""
    if split is not None:
        if split not in PARTS:
            raise InvalidInput("split must be train, validation or test", {"field": "split"})
        if version.split is None:
            raise InvalidInput(
                f"v{version.n} has no split yet: set one with POST .../versions/{version.n}/split",
                {"field": "split"},
            )
        where = f" WHERE {part_sql(version.split)} = '{split}'"
    return f"SELECT {cols} FROM v{where}"


def stream_rows(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    dataset: str,
    n: int | str,
    *,
    fmt: str = "parquet",
    split: str | None = None,
    columns: list[str] | None = None,
) -> tuple[DatasetVersion, str, Iterator[bytes]]:
    """(version, media type, byte chunks) of a version's rows, or one split's, or some columns."""
    if fmt not in MEDIA:
        raise InvalidInput("format must be parquet, csv or arrow", {"field": "format"})
    version = service.get_version(session, actor, slug, dataset, n)
    sql = _select(version, split, columns)
    if fmt == "parquet" and split is None and not columns:
        return version, MEDIA[fmt], _file_chunks(store.open(version.key))
    return version, MEDIA[fmt], _query_chunks(store, version, sql, fmt)


def _file_chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


class _Sink(io.RawIOBase):
    """A write-only buffer the writers fill and the stream drains after every batch."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += b
        return len(b)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def _query_chunks(
    store: ArtifactStore, version: DatasetVersion, sql: str, fmt: str
) -> Iterator[bytes]:
    with connect_version(store, version) as con:
        if fmt == "parquet":  # Parquet needs its footer last: write a temp file, then stream it
            with tempfile.TemporaryDirectory(prefix="mlteam-export-") as tmp:
                out = os.path.join(tmp, "part.parquet")
                con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
                yield from _file_chunks(open(out, "rb"))  # noqa: SIM115
            return
        reader = _batches(con.sql(sql))
        sink = _Sink()
        writer: Any = (
            paipc.new_stream(sink, reader.schema)
            if fmt == "arrow"
            else pacsv.CSVWriter(sink, reader.schema)
        )
        for batch in reader:
            writer.write_batch(batch) if fmt == "arrow" else writer.write(batch)
            if len(sink.buf) >= 1 << 20:
                yield sink.take()
        writer.close()
        yield sink.take()


def _batches(result: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    fetch = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
    return fetch(BATCH_ROWS)


# -- SQL ------------------------------------------------------------------------------------------

_TABLE = re.compile(r"[^A-Za-z0-9_]")


def table_names(session: Session, actor: User, slug: str) -> dict[str, DatasetVersion]:
    """`<dataset>` (latest) and `<dataset>_v<n>` → version, for every dataset of the project."""
    out: dict[str, DatasetVersion] = {}
    for ds, _latest in service.list_datasets(session, actor, slug):
        versions = service.list_versions(session, actor, slug, ds.name)
        for v in versions:
            out[f"{ds.name}_v{v.n}"] = v
        if versions:
            out[ds.name] = versions[-1]
    return out


def run_query(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    sql: str,
    *,
    limit: int = 1000,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Run read-only SQL over the project's dataset versions; at most `limit` rows back."""
    projects.resolve(session, actor, slug, Perm.data_read)
    if not sql or not sql.strip():
        raise InvalidInput("sql is empty", {"field": "sql"})
    if not 1 <= limit <= QUERY_MAX_ROWS:
        raise InvalidInput(f"limit must be 1..{QUERY_MAX_ROWS}", {"field": "limit"})
    if not 0 < timeout_s <= QUERY_MAX_SECONDS:
        raise InvalidInput(
            f"timeout_s must be in (0, {QUERY_MAX_SECONDS:g}]", {"field": "timeout_s"}
        )
    tables = table_names(session, actor, slug)
    con = connect()
    try:
        for name, version in tables.items():
            con.register(name, arrow_dataset(store, version))
        # From here the SQL sees only what was registered above: no files, no network, and
        # no way to switch that back on.
        for setting in (
            "SET autoinstall_known_extensions=false",
            "SET autoload_known_extensions=false",
            "SET enable_external_access=false",
            "SET lock_configuration=true",
        ):
            con.execute(setting)
        timer = threading.Timer(timeout_s, con.interrupt)
        started = time.monotonic()
        timer.start()
        try:
            rel = con.sql(sql)
            table = None if rel is None else _arrow(rel.limit(limit + 1))
        except duckdb.InterruptException as err:
            raise UserCodeError(
                f"the query ran past the time limit of {timeout_s:g} s and was stopped",
                {"field": "sql", "timeout_s": timeout_s},
            ) from err
        except duckdb.PermissionException as err:
            raise UserCodeError(
                "queries may read only this project's dataset versions (tables: "
                f"{', '.join(sorted(tables)) or 'none'}); files and the network are off",
                {"field": "sql", "error": str(err).splitlines()[0]},
            ) from err
        except duckdb.Error as err:
            raise UserCodeError(
                f"your SQL failed: {str(err).splitlines()[0]}",
                {"field": "sql", "tables": sorted(tables)},
            ) from err
        finally:
            timer.cancel()
        elapsed = time.monotonic() - started
    finally:
        con.close()
    if table is None:
        return {"columns": [], "rows": [], "row_count": 0, "truncated": False, "seconds": elapsed}
    truncated = table.num_rows > limit
    table = table.slice(0, limit)
    return {
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "rows": jsonable([list(r.values()) for r in table.to_pylist()]),
        "row_count": table.num_rows,
        "truncated": truncated,
        "seconds": round(elapsed, 4),
    }


def _arrow(rel: duckdb.DuckDBPyRelation) -> pa.Table:
    for name in ("to_arrow_table", "fetch_arrow_table"):
        fn = getattr(rel, name, None)
        if fn is not None:
            return fn()
    out = rel.arrow()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out
