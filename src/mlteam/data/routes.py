"""HTTP routes of datasets. Uploads stream to a temporary file with a size limit."""

from __future__ import annotations

import os
import tempfile

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mlteam.core.errors import PayloadTooLarge
from mlteam.data import service
from mlteam.data.schemas import DatasetOut, DatasetVersionOut
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}/datasets", tags=["data"])


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
    "/{dataset}/versions",
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
) -> object:
    """Upload a CSV or Parquet file as the raw request body. Same content → same version (200)."""
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
        )
    finally:
        os.unlink(path)
    body = DatasetVersionOut.model_validate(service.describe(session, version, created))
    return JSONResponse(jsonable_encoder(body), status_code=201 if created else 200)


@router.get("", response_model=list[DatasetOut])
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


@router.get("/{dataset}/versions", response_model=list[DatasetVersionOut])
def list_versions(slug: str, dataset: str, session: SessionDep, user: CurrentUser) -> object:
    return [
        service.describe(session, v) for v in service.list_versions(session, user, slug, dataset)
    ]


@router.get("/{dataset}/versions/{n}", response_model=DatasetVersionOut)
def get_version(slug: str, dataset: str, n: str, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.get_version(session, user, slug, dataset, n))


@router.get("/{dataset}/versions/{n}/download")
def download_version(
    slug: str,
    dataset: str,
    n: str,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    format: str = "parquet",
) -> StreamingResponse:
    version = service.get_version(session, user, slug, dataset, n)
    fh, media = service.export(platform.artifacts, version, format)

    def chunks():
        with fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    name = f"{dataset}-v{version.n}.{format}"
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
