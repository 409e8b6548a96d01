"""HTTP routes of monitoring: feedback and the drift/performance report."""

from __future__ import annotations

from fastapi import APIRouter

from mlteam.monitoring import service
from mlteam.monitoring.schemas import FeedbackIn, FeedbackOut
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/deployments/{name}", tags=["monitoring"])


@router.post("/feedback", response_model=FeedbackOut, status_code=201)
def feedback(
    name: str, body: FeedbackIn, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> object:
    items = [i.model_dump() for i in body.items]
    return {"recorded": service.submit_feedback(session, user, platform.predictions, name, items)}


@router.get("/report")
def report(name: str, session: SessionDep, user: CurrentUser, platform: PlatformDep) -> object:
    return service.report(session, user, platform.artifacts, platform.predictions, name)
