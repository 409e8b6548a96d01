"""HTTP routes of serving: deployments, revisions, and the native and MLflow scoring endpoints."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from mlteam.core.errors import InvalidInput
from mlteam.core.schemas import JobOut
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.serving import batch, fast, service
from mlteam.serving.schemas import (
    DeployIn,
    DeploymentOut,
    PredictIn,
    PredictOut,
    ReviseIn,
    RevisionOut,
    ScoreIn,
)

router = APIRouter(tags=["serving"])


@router.post("/projects/{slug}/deployments", response_model=DeploymentOut, status_code=201)
def deploy(
    slug: str, body: DeployIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    if body.routes is not None:
        dep, _ = service.create_or_revise(
            session, user, slug, body.name, body.routes, stage=body.stage, models=platform.models
        )
    else:
        for field in ("model", "version"):
            if getattr(body, field) is None:
                raise InvalidInput(f"{field}: required (or give routes)", {"field": field})
        dep, _ = service.deploy(
            session,
            user,
            slug,
            body.name,
            model=body.model,
            version=body.version,
            stage=body.stage,
            models=platform.models,
        )
    return service.describe(session, dep, platform.models)


@router.get("/projects/{slug}/deployments", response_model=list[DeploymentOut])
def list_deployments(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [service.describe(session, d) for d in service.list_deployments(session, user, slug)]


@router.get("/deployments/{name}", response_model=DeploymentOut)
def get_deployment(
    name: str, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    dep = service.get_deployment(session, user, name)
    return service.describe(session, dep, platform.models, user)


@router.post("/deployments/{name}/revisions", response_model=DeploymentOut, status_code=201)
def revise(
    name: str, body: ReviseIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    dep, _ = service.revise(
        session, user, name, body.routes, stage=body.stage, models=platform.models
    )
    return service.describe(session, dep, platform.models)


@router.get("/deployments/{name}/revisions", response_model=list[RevisionOut])
def revisions(name: str, session: SessionDep, user: CurrentUser) -> object:
    return service.list_revisions(session, user, name)


@router.post("/deployments/{name}/rollback", response_model=DeploymentOut)
def rollback(name: str, session: SessionDep, user: CurrentUser, platform: PlatformDep) -> object:
    dep, _ = service.rollback(session, user, name, models=platform.models)
    return service.describe(session, dep, platform.models)


@router.post("/projects/{slug}/score", response_model=JobOut, status_code=202)
def score(
    slug: str,
    body: ScoreIn,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    background: BackgroundTasks,
) -> object:
    """Queue a batch scoring job: a dataset version scored by a model version."""
    job = batch.start_batch_score(session, user, slug, **body.model_dump())
    background.add_task(platform.executor.wake)  # after the commit, so the executor sees it
    return job


@router.post("/deployments/{name}/predict", response_model=PredictOut)
def predict(
    name: str,
    body: PredictIn,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
) -> object:
    return service.predict(
        session, user, platform.serving, name, body.inputs, request.headers.get("x-request-id")
    )


@router.post("/deployments/{name}/invocations")
async def invocations(name: str, request: Request) -> Response:
    """MLflow's scoring protocol: one of dataframe_split, dataframe_records, instances, inputs.

    Served by `fast.invocations`, matched before this route; declared here for the OpenAPI
    document (and for an app that mounts the routers alone)."""
    return await fast.invocations(request)
