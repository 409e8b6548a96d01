"""HTTP routes of serving: deployments and the native predict endpoint."""

from __future__ import annotations

from fastapi import APIRouter

from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.serving import service
from mlteam.serving.schemas import DeployIn, DeploymentOut, PredictIn, PredictOut

router = APIRouter(tags=["serving"])


@router.post("/projects/{slug}/deployments", response_model=DeploymentOut, status_code=201)
def deploy(slug: str, body: DeployIn, session: SessionDep, user: CurrentUser) -> object:
    dep, _ = service.deploy(
        session, user, slug, body.name, model=body.model, version=body.version, stage=body.stage
    )
    return service.describe(session, dep)


@router.get("/projects/{slug}/deployments", response_model=list[DeploymentOut])
def list_deployments(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [service.describe(session, d) for d in service.list_deployments(session, user, slug)]


@router.get("/deployments/{name}", response_model=DeploymentOut)
def get_deployment(name: str, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.get_deployment(session, user, name))


@router.post("/deployments/{name}/predict", response_model=PredictOut)
def predict(
    name: str, body: PredictIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    return service.predict(session, user, platform.models, platform.predictions, name, body.inputs)
