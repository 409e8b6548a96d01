"""HTTP routes of training."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from mlteam.core.schemas import JobOut
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.training import service
from mlteam.training.schemas import TrainIn

router = APIRouter(tags=["training"])


@router.post("/projects/{slug}/train", response_model=JobOut, status_code=202)
def train(
    slug: str,
    body: TrainIn,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    background: BackgroundTasks,
) -> object:
    """Queue a training job (baseline + candidates, optionally tuned); poll `/jobs/{id}`."""
    job = service.start_training(
        session,
        user,
        slug,
        **body.model_dump(),
        store=platform.artifacts,
        default_ray_address=platform.settings.ray_address,
    )
    background.add_task(platform.executor.wake)  # after the commit, so the executor sees it
    return job
