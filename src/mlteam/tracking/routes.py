"""HTTP routes of tracking: experiments, runs, logging, artifacts."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mlteam.data.routes import spool_body
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.tracking import compare, search, service
from mlteam.tracking.schemas import (
    ArtifactOut,
    CompareIn,
    CompareOut,
    ExperimentIn,
    ExperimentOut,
    KeyValues,
    MetricPointOut,
    MetricsIn,
    RunIn,
    RunOut,
    RunPatch,
    RunSearchIn,
    RunSearchOut,
)

router = APIRouter(tags=["tracking"])


@router.post("/projects/{slug}/experiments", response_model=ExperimentOut, status_code=201)
def create_experiment(
    slug: str, body: ExperimentIn, session: SessionDep, user: CurrentUser
) -> object:
    return service.get_or_create_experiment(session, user, slug, body.name)


@router.get("/projects/{slug}/experiments", response_model=list[ExperimentOut])
def list_experiments(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return service.list_experiments(session, user, slug)


@router.post("/projects/{slug}/runs", response_model=RunOut, status_code=201)
def create_run(slug: str, body: RunIn, session: SessionDep, user: CurrentUser) -> object:
    exp = service.get_or_create_experiment(session, user, slug, body.experiment)
    run = service.create_run(session, user, exp, **body.model_dump(exclude={"experiment"}))
    return service.describe(session, run)


@router.get("/projects/{slug}/runs", response_model=list[RunOut])
def list_runs(
    slug: str, session: SessionDep, user: CurrentUser, experiment: str | None = None
) -> object:
    return service.describe_many(session, service.list_runs(session, user, slug, experiment))


@router.post("/projects/{slug}/runs/search", response_model=RunSearchOut)
def search_runs(slug: str, body: RunSearchIn, session: SessionDep, user: CurrentUser) -> object:
    runs, token = search.search_project_runs(
        session,
        user,
        slug,
        body.filter,
        body.order_by,
        body.max_results,
        body.page_token,
        body.experiments,
    )
    return {"runs": service.describe_many(session, runs), "next_page_token": token}


@router.post("/runs/compare", response_model=CompareOut)
def compare_runs(body: CompareIn, session: SessionDep, user: CurrentUser) -> object:
    return compare.compare_runs(session, user, body.run_ids)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: str, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.get_run(session, user, run_id))


@router.patch("/runs/{run_id}", response_model=RunOut)
def update_run(run_id: str, body: RunPatch, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.finish_run(session, user, run_id, body.status))


@router.post("/runs/{run_id}/params", status_code=204)
def log_params(run_id: str, body: KeyValues, session: SessionDep, user: CurrentUser) -> None:
    service.log_params(session, user, run_id, body.values)


@router.post("/runs/{run_id}/tags", status_code=204)
def set_tags(run_id: str, body: KeyValues, session: SessionDep, user: CurrentUser) -> None:
    service.set_tags(session, user, run_id, body.values)


@router.post("/runs/{run_id}/metrics", status_code=204)
def log_metrics(run_id: str, body: MetricsIn, session: SessionDep, user: CurrentUser) -> None:
    service.log_metrics(session, user, run_id, [m.model_dump() for m in body.metrics])


@router.get("/runs/{run_id}/metrics/{key:path}", response_model=list[MetricPointOut])
def metric_history(run_id: str, key: str, session: SessionDep, user: CurrentUser) -> object:
    return service.metric_history(session, user, run_id, key)


@router.put("/runs/{run_id}/artifacts/{path:path}", status_code=204)
async def put_artifact(
    run_id: str,
    path: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
) -> None:
    tmp = await spool_body(request, platform.settings.max_upload_mb)
    try:
        await run_in_threadpool(
            service.put_artifact, session, user, platform.artifacts, run_id, path, tmp
        )
    finally:
        os.unlink(tmp)


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(
    run_id: str, session: SessionDep, user: CurrentUser, platform: PlatformDep, path: str = ""
) -> object:
    return service.list_artifacts(session, user, platform.artifacts, run_id, path)


@router.get("/runs/{run_id}/artifacts/{path:path}")
def get_artifact(
    run_id: str, path: str, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> StreamingResponse:
    fh = service.open_artifact(session, user, platform.artifacts, run_id, path)

    def chunks():
        with fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    return StreamingResponse(chunks(), media_type="application/octet-stream")
