"""Open Inference Protocol v2 on every deployment: `/v2/...`, `{name}` the deployment name.

Errors answer `{"error": "..."}` (the app's error handler shapes every error under `/v2/`),
as KServe and tritonclient expect; the same Bearer token as the REST API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep
from mlteam.serving import service
from mlteam.serving.protocols import oip_checker, oip_metadata, output_datatype
from mlteam.serving.routes import parse_json

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
async def infer(
    name: str, request: Request, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> JSONResponse:
    # tritonclient sends no Content-Type: the body is read as JSON whatever it says
    body = parse_json(await request.body())
    check = oip_checker(body)
    request_id = body.get("id") if isinstance(body.get("id"), str) else None

    def work() -> JSONResponse:
        dep, _, a = service.infer(session, user, platform.serving, name, check, request_id)
        out: dict[str, Any] = {
            "model_name": dep.name,
            "model_version": str(a.model.version),
            "outputs": [
                {
                    "name": "predict",
                    "datatype": output_datatype(a.outputs),
                    "shape": [len(a.outputs)],
                    "data": a.outputs,
                }
            ],
            "parameters": {"prediction_ids": ",".join(a.ids)},
        }
        if request_id is not None:
            out["id"] = request_id
        return JSONResponse(out)  # as is: no generic encoder walking every value

    return await run_in_threadpool(work)
