"""Datasets: uploads become immutable, content-addressed Parquet versions.

An upload is parsed and checked in full before anything is stored; the Parquet file is written
under its SHA-256 and renamed into place, and only then is the version row added. The same
content uploaded twice is one version.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.data import ingest, profile
from mlteam.data.models import Dataset, DatasetVersion
from mlteam.projects import service as projects

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FORMATS = ("csv", "parquet")


def check_name(name: str, field: str = "name") -> str:
    if not NAME.match(name):
        raise InvalidInput(
            f"invalid {field} {name!r}: use letters, digits, '_', '-', '.' (max 128)",
            {"field": field},
        )
    return name


def detect_format(filename: str | None, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
    elif filename and filename.lower().endswith((".parquet", ".pq")):
        fmt = "parquet"
    elif filename and filename.lower().endswith((".csv", ".txt")):
        fmt = "csv"
    if fmt not in FORMATS:
        raise InvalidInput(
            f"cannot tell the file format of {filename!r}: pass format=csv or format=parquet",
            {"field": "format"},
        )
    return fmt


def read_csv(path: str, types: dict[str, str] | None = None) -> pa.Table:
    """Parse a CSV fully (through `ingest`), naming the line and column of the first fault."""
    with tempfile.TemporaryDirectory(prefix="mlteam-csv-") as tmp:
        out = os.path.join(tmp, "data.parquet")
        ingest.csv_to_parquet(path, out, types)
        return pq.read_table(out)


def read_parquet(path: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", {"field": "file"}) from err
    if table.num_rows == 0:
        raise InvalidInput("the file has no rows", {"field": "file"})
    return table


def rewrite_parquet(path: str, out: str) -> int:
    """Check an uploaded Parquet file and rewrite it (zstd), one row group at a time."""
    try:
        src = pq.ParquetFile(path)
        if src.metadata.num_rows == 0:
            raise InvalidInput("the file has no rows", {"field": "file"})
        with pq.ParquetWriter(
            out,
            src.schema_arrow,
            compression="zstd",
            write_statistics=statistics_columns(src.schema_arrow),
        ) as writer:
            for i in range(src.num_row_groups):
                writer.write_table(src.read_row_group(i))
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInput(f"not a readable Parquet file: {err}", {"field": "file"}) from err
    return src.metadata.num_rows


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns whose min/max a version's Parquet file written by Arrow keeps: not the
    floats (nor nested ones). Arrow leaves NaN out of a float column's statistics, as the
    format asks, and DuckDB takes them for the whole truth: `isnan` folds to false, a filter
    never finds a NaN row, `max` answers from the footer without it. With no statistics
    DuckDB reads the values. (DuckDB's own writer counts NaN in, so its files are right.)"""
    return [
        f.name
        for f in schema
        if not pa.types.is_floating(f.type) and not pa.types.is_nested(f.type)
    ]


def write_parquet(table: pa.Table, path: str) -> None:
    """Write rows to become a version (a pipeline's output, a batch score) as Arrow writes
    them for mlteam: zstd, and no float statistics (`statistics_columns`)."""
    pq.write_table(
        table, path, compression="zstd", write_statistics=statistics_columns(table.schema)
    )


def schema_of(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _dataset(session: Session, project_id: str, name: str) -> Dataset | None:
    return session.scalar(
        select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)
    )


def upload_version(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    dataset: str,
    path: str,
    *,
    filename: str | None = None,
    fmt: str | None = None,
    types: dict[str, str] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Turn an uploaded file into a dataset version; returns (version, created).

    CSV is parsed by DuckDB, streaming and in bounded memory; `types` pins column types
    (`{"col": "INTEGER"}`), else they are sniffed.
    """
    project = projects.resolve(session, actor, slug, Perm.data_write)
    check_name(dataset, "dataset")
    fmt = detect_format(filename, fmt)
    if types and fmt != "csv":
        raise InvalidInput("types applies to CSV uploads only", {"field": "types"})
    with tempfile.TemporaryDirectory(prefix="mlteam-upload-") as tmp:
        pq_path = os.path.join(tmp, "data.parquet")
        if fmt == "csv":
            ingest.csv_to_parquet(path, pq_path, types)
        else:
            rewrite_parquet(path, pq_path)
        return publish(
            session,
            actor,
            store,
            project.id,
            dataset,
            pq_path,
            source={"kind": "upload", "filename": filename or "", "format": fmt},
        )


def publish(
    session: Session,
    actor: User,
    store: ArtifactStore,
    project_id: str,
    dataset: str,
    parquet_path: str,
    *,
    source: dict[str, Any],
    parents: list[str] | None = None,
    column_profile: dict[str, Any] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Publish a finished, checked Parquet file as the next version of `dataset`; the file
    is the store's afterwards (moved into it where it can be).

    The one way a version comes to exist (uploads, pipelines, batch scoring): the file is
    stored under its SHA-256, renamed into place, and only then is the row added. The same
    content again returns the existing version with `created=False`. Callers have checked
    access (data_write on the project). A caller that has profiled the file already (a
    pipeline, whose checks the profile answers) passes `column_profile`.

    The file is hashed while it is profiled (hashlib and DuckDB both work outside the GIL:
    1M x 20, ~0.05-0.1 s saved), unless a version of the dataset has its very size and so
    may be the same content, which would make the profile wasted work.
    """
    check_name(dataset, "dataset")
    meta = pq.read_metadata(parquet_path)
    schema = schema_of(pq.read_schema(parquet_path))
    size = os.path.getsize(parquet_path)
    ds = _dataset(session, project_id, dataset)
    if ds is None:
        ds = Dataset(project_id=project_id, name=dataset, created_by=actor.id)
        session.add(ds)
        session.flush()
        audit.record(session, actor, "dataset.create", f"dataset:{dataset}", project_id=project_id)
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        hashing = pool.submit(_sha256, parquet_path)
        same_size = session.scalar(
            select(DatasetVersion.id)
            .where(DatasetVersion.dataset_id == ds.id, DatasetVersion.size_bytes == size)
            .limit(1)
        )
        if column_profile is None and same_size is None:
            column_profile = profile.profile_parquet(parquet_path)
        digest = hashing.result()
    existing = session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == ds.id, DatasetVersion.content_hash == digest
        )
    )
    if existing is not None:
        return existing, False
    column_profile = column_profile or profile.profile_parquet(parquet_path)
    key = f"datasets/{project_id}/{digest}.parquet"
    if not store.exists(key):
        store.move_file(parquet_path, key)
    n = (
        session.scalar(select(func.max(DatasetVersion.n)).where(DatasetVersion.dataset_id == ds.id))
        or 0
    ) + 1
    version = DatasetVersion(
        dataset_id=ds.id,
        n=n,
        content_hash=digest,
        key=key,
        schema=schema,
        row_count=meta.num_rows,
        size_bytes=size,
        source=source,
        parents=list(parents or []),
        profile=column_profile,
        created_by=actor.id,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError as err:  # a concurrent publish of the same dataset won the number
        raise Conflict("a concurrent upload took this version number; retry") from err
    audit.record(
        session,
        actor,
        "dataset.version.create",
        f"dataset:{dataset}@{n}",
        project_id=project_id,
        detail={"rows": meta.num_rows, "content_hash": digest, "source": source.get("kind")},
    )
    return version, True


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_datasets(session: Session, actor: User, slug: str) -> list[tuple[Dataset, int | None]]:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    latest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.n).label("n"))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    rows = session.execute(
        select(Dataset, latest.c.n)
        .outerjoin(latest, latest.c.dataset_id == Dataset.id)
        .where(Dataset.project_id == project.id)
        .order_by(Dataset.name)
    )
    return [(d, n) for d, n in rows]


def list_versions(session: Session, actor: User, slug: str, dataset: str) -> list[DatasetVersion]:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    ds = _dataset(session, project.id, dataset)
    if ds is None:
        raise NotFound(f"dataset {dataset} not found")
    return list(
        session.scalars(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == ds.id)
            .order_by(DatasetVersion.n)
        )
    )


def get_version(
    session: Session, actor: User, slug: str, dataset: str, n: int | str
) -> DatasetVersion:
    """Version `n` of a dataset; `n="latest"` is the newest."""
    versions = list_versions(session, actor, slug, dataset)
    if not versions:
        raise NotFound(f"dataset {dataset} has no versions")
    if n == "latest":
        return versions[-1]
    for v in versions:
        if str(v.n) == str(n):
            return v
    raise NotFound(f"dataset {dataset} has no version {n}")


def version_by_id(session: Session, actor: User, version_id: str) -> DatasetVersion:
    """A version by id, checked against the actor's access to its project."""
    from mlteam.core.access import require

    v = session.get(DatasetVersion, version_id)
    if v is None:
        raise NotFound(f"dataset version {version_id} not found")
    ds = session.get(Dataset, v.dataset_id)
    require(session, actor, ds.project_id, Perm.data_read, what=f"dataset version {version_id}")
    return v


def dataset_name(session: Session, version: DatasetVersion) -> str:
    ds = session.get(Dataset, version.dataset_id)
    return ds.name if ds else ""


def describe(session: Session, version: DatasetVersion, created: bool = False) -> dict[str, Any]:
    return {
        "id": version.id,
        "dataset": dataset_name(session, version),
        "n": version.n,
        "content_hash": version.content_hash,
        "columns": version.schema,
        "row_count": version.row_count,
        "size_bytes": version.size_bytes,
        "source": version.source,
        "parents": version.parents,
        "split": version.split,
        "created_at": version.created_at,
        "created": created,
    }


def read_table(store: ArtifactStore, version: DatasetVersion) -> pa.Table:
    with store.open(version.key) as fh:
        return pq.read_table(fh)


def count_versions(session: Session, project_id: str) -> int:
    return int(
        session.scalar(
            select(func.count(DatasetVersion.id))
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .where(Dataset.project_id == project_id)
        )
        or 0
    )
