"""HTTP routes of datasets. Uploads stream to a temporary file with a size limit."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mlteam.core.errors import InvalidInput, PayloadTooLarge
from mlteam.data import access, diff, service, splits
from mlteam.data.schemas import DatasetOut, DatasetVersionOut, QueryIn, QueryOut, SplitIn
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}", tags=["data"])


async def spool_body(request: Request, limit_mb: int) -> str:
    """Stream the request body to a temporary file, refusing it past the limit."""
    limit = limit_mb * 1024 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"upload larger than the limit of {limit_mb} MB")
    fd, path = tempfile.mkstemp(prefix="mlteam-body-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"upload larger than the limit of {limit_mb} MB")
                fh.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


@router.post(
    "/datasets/{dataset}/versions",
    response_model=DatasetVersionOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            }
        }
    },
)
async def upload_version(
    slug: str,
    dataset: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    filename: str | None = None,
    format: str | None = None,
    types: str | None = Query(
        None, description='Pinned CSV column types as JSON, e.g. {"id": "BIGINT"}; else sniffed.'
    ),
) -> object:
    """Upload a CSV or Parquet file as the raw request body. Same content → same version (200)."""
    pinned = _types(types)
    path = await spool_body(request, platform.settings.max_upload_mb)
    try:
        version, created = await run_in_threadpool(
            service.upload_version,
            session,
            user,
            platform.artifacts,
            slug,
            dataset,
            path,
            filename=filename,
            fmt=format,
            types=pinned,
        )
    finally:
        os.unlink(path)
    body = DatasetVersionOut.model_validate(service.describe(session, version, created))
    return JSONResponse(jsonable_encoder(body), status_code=201 if created else 200)


@router.get("/datasets", response_model=list[DatasetOut])
def list_datasets(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [
        {
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "created_at": d.created_at,
            "latest_version": n,
        }
        for d, n in service.list_datasets(session, user, slug)
    ]


@router.get("/datasets/{dataset}/versions", response_model=list[DatasetVersionOut])
def list_versions(slug: str, dataset: str, session: SessionDep, user: CurrentUser) -> object:
    return [
        service.describe(session, v) for v in service.list_versions(session, user, slug, dataset)
    ]


@router.get("/datasets/{dataset}/versions/{n}", response_model=DatasetVersionOut)
def get_version(slug: str, dataset: str, n: str, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.get_version(session, user, slug, dataset, n))


@router.get("/datasets/{dataset}/versions/{n}/download")
def download_version(
    slug: str,
    dataset: str,
    n: str,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    format: str = Query("parquet", description="parquet, csv or arrow (an Arrow IPC stream)."),
    split: str | None = Query(None, description="Only this part of the version's split."),
    columns: str | None = Query(None, description="Only these columns, comma-separated."),
) -> StreamingResponse:
    """The version's rows, streamed (all of them, one split's, or some columns)."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    version, media, chunks = access.stream_rows(
        session,
        user,
        platform.artifacts,
        slug,
        dataset,
        n,
        fmt=format,
        split=split,
        columns=cols,
    )
    part = f"-{split}" if split else ""
    name = f"{dataset}-v{version.n}{part}.{format}"
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/datasets/{dataset}/versions/{n}/profile")
def get_profile(
    slug: str, dataset: str, n: str, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    """Per-column profile: type, nulls, distinct, min/max/mean/std/quartiles, top values,
    histogram."""
    return access.get_profile(session, user, platform.artifacts, slug, dataset, n)


@router.get("/datasets/{dataset}/diff")
def diff_versions(
    slug: str,
    dataset: str,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    from_: str = Query(..., alias="from", description="The older version."),
    to: str = Query("latest", description="The newer version."),
) -> dict[str, Any]:
    """Schema changes, row counts and per-column distribution shift between two versions."""
    return diff.diff_versions(session, user, platform.artifacts, slug, dataset, from_, to)


@router.post("/datasets/{dataset}/versions/{n}/split", response_model=DatasetVersionOut)
def set_split(
    slug: str,
    dataset: str,
    n: str,
    body: SplitIn,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
) -> object:
    """Fix a deterministic train/validation/test split on the version."""
    version = splits.set_split(
        session,
        user,
        platform.artifacts,
        slug,
        dataset,
        n,
        method=body.method,
        column=body.column,
        fractions=body.fractions,
        cutoffs=body.cutoffs,
    )
    return service.describe(session, version)


@router.post("/query", response_model=QueryOut)
def query(
    slug: str, body: QueryIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    """Read-only SQL (DuckDB) over the project's datasets: `<dataset>` is the latest version,
    `<dataset>_v<n>` version n."""
    return access.run_query(
        session,
        user,
        platform.artifacts,
        slug,
        body.sql,
        limit=body.limit,
        timeout_s=body.timeout_s,
    )


def _types(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise InvalidInput(
            'types must be a JSON object such as {"id": "BIGINT"}', {"field": "types"}
        ) from err
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(
            'types must be a JSON object such as {"id": "BIGINT"}', {"field": "types"}
        )
    return value
