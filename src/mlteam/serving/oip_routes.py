"""Open Inference Protocol v2 on every deployment: `/v2/...`, `{name}` the deployment name.

Errors answer `{"error": "..."}` (the app's error handler shapes every error under `/v2/`),
as KServe and tritonclient expect; the same Bearer token as the REST API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.serving import fast, service
from mlteam.serving.protocols import oip_metadata

router = APIRouter(prefix="/v2", tags=["inference (Open Inference Protocol v2)"])


@router.get("")
def server_metadata() -> dict[str, Any]:
    from mlteam import __version__

    return {"name": "mlteam", "version": __version__, "extensions": []}


@router.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
def ready(platform: PlatformDep) -> dict[str, bool]:
    return {"ready": True}


@router.get("/models/{name}")
def model_metadata(
    name: str, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    dep, _, routes, model = service.live_model(session, user, platform.serving, name)
    return oip_metadata(dep.name, routes, model)


@router.get("/models/{name}/ready")
def model_ready(
    name: str, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    # every version of the current revision is loaded before this answers 200
    dep, _, _, _ = service.live_model(session, user, platform.serving, name)
    return {"name": dep.name, "ready": True}


@router.post("/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    """Served by `fast.oip_infer`, matched before this route; declared here for the OpenAPI
    document (and for an app that mounts the routers alone)."""
    return await fast.oip_infer(request)
