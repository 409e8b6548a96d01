"""HTTP routes of sources and pipelines."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from mlteam.core.schemas import JobOut
from mlteam.data import pipelines, sources
from mlteam.data.pipeline_schemas import (
    PipelineIn,
    PipelineOut,
    PipelineRunOut,
    RunIn,
    SourceIn,
    SourceOut,
)
from mlteam.data.secrets import SecretBox
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}", tags=["pipelines"])


@router.post("/sources", response_model=SourceOut, status_code=201)
def create_source(
    slug: str, body: SourceIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    """Add a source; credentials (or a password in a SQL URL) are stored encrypted."""
    source = sources.create_source(
        session,
        user,
        SecretBox(platform.settings),
        platform.settings,
        slug,
        body.name,
        body.kind,
        body.config,
        body.credentials,
    )
    return sources.describe(source)


@router.get("/sources", response_model=list[SourceOut])
def list_sources(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [sources.describe(s) for s in sources.list_sources(session, user, slug)]


@router.get("/sources/{name}", response_model=SourceOut)
def get_source(slug: str, name: str, session: SessionDep, user: CurrentUser) -> object:
    return sources.describe(sources.get_source(session, user, slug, name))


@router.delete("/sources/{name}", status_code=204)
def delete_source(slug: str, name: str, session: SessionDep, user: CurrentUser) -> Response:
    sources.delete_source(session, user, slug, name)
    return Response(status_code=204)


@router.post("/pipelines", response_model=PipelineOut, status_code=201)
def create_pipeline(
    slug: str, body: PipelineIn, session: SessionDep, user: CurrentUser, replace: bool = False
) -> object:
    """Create a pipeline; `replace=true` updates the one of that name (200)."""
    spec = body.model_dump(exclude_none=True)
    pipeline, created = pipelines.save_pipeline(session, user, slug, spec, replace=replace)
    body_out = PipelineOut.model_validate(pipelines.describe(pipeline))
    return JSONResponse(jsonable_encoder(body_out), status_code=201 if created else 200)


@router.get("/pipelines", response_model=list[PipelineOut])
def list_pipelines(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [pipelines.describe(p) for p in pipelines.list_pipelines(session, user, slug)]


@router.get("/pipelines/{name}", response_model=PipelineOut)
def get_pipeline(slug: str, name: str, session: SessionDep, user: CurrentUser) -> object:
    return pipelines.describe(pipelines.get_pipeline(session, user, slug, name))


@router.delete("/pipelines/{name}", status_code=204)
def delete_pipeline(slug: str, name: str, session: SessionDep, user: CurrentUser) -> Response:
    pipelines.delete_pipeline(session, user, slug, name)
    return Response(status_code=204)


@router.post("/pipelines/{name}/runs", response_model=JobOut, status_code=202)
def run_pipeline(
    slug: str,
    name: str,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    background: BackgroundTasks,
    body: RunIn | None = None,
) -> object:
    """Queue a run now; poll `/jobs/{id}` for its progress and report."""
    job = pipelines.start_run(session, user, slug, name, body.params if body else None)
    background.add_task(platform.executor.wake)  # after the commit, so the executor sees it
    return job


@router.get("/pipelines/{name}/runs", response_model=list[PipelineRunOut])
def list_runs(
    slug: str, name: str, session: SessionDep, user: CurrentUser, limit: int = 50
) -> object:
    return [
        {"trigger": run.trigger, "job": job}
        for run, job in pipelines.list_runs(session, user, slug, name, limit)
    ]
