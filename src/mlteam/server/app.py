"""The app factory: mounts every capability's routes, error handlers and /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from mlteam import __version__
from mlteam.config import Settings
from mlteam.core import gcpolicy
from mlteam.core.errors import STATUS, MlteamError
from mlteam.core.routes import router as core_router
from mlteam.data.pipeline_routes import router as pipelines_router
from mlteam.data.routes import router as data_router
from mlteam.evaluation.routes import router as evaluation_router
from mlteam.monitoring.routes import router as monitoring_router
from mlteam.projects.routes import router as projects_router
from mlteam.registry.mlflow_api import router as registry_mlflow
from mlteam.registry.routes import router as registry_router
from mlteam.server.mlflow import mlflow_app
from mlteam.server.platform import Platform
from mlteam.serving.fast import inference_routes
from mlteam.serving.oip_routes import router as oip_router
from mlteam.serving.routes import router as serving_router
from mlteam.tracking.mlflow_api import router as tracking_mlflow
from mlteam.tracking.routes import router as tracking_router
from mlteam.training.routes import router as training_router

log = logging.getLogger("mlteam.server")

_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "not_found",
    409: "conflict",
    413: "payload_too_large",
}


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


# mlteam error code → (MLflow error_code, HTTP status), for the MLflow-compatible endpoints.
MLFLOW_CODES = {
    "invalid_input": ("INVALID_PARAMETER_VALUE", 400),
    "unauthenticated": ("UNAUTHENTICATED", 401),
    "forbidden": ("PERMISSION_DENIED", 403),
    "not_found": ("RESOURCE_DOES_NOT_EXIST", 404),
    "conflict": ("RESOURCE_ALREADY_EXISTS", 400),
    "payload_too_large": ("INVALID_PARAMETER_VALUE", 413),
    "user_code_error": ("INVALID_PARAMETER_VALUE", 400),
    "unavailable": ("TEMPORARILY_UNAVAILABLE", 503),
    "internal": ("INTERNAL_ERROR", 500),
}


def _is_mlflow(request: Request) -> bool:
    path = request.url.path
    return "/api/2.0/mlflow" in path or "/api/3.0/mlflow" in path


def _is_oip(request: Request) -> bool:
    return request.url.path.startswith("/v2/") or request.url.path == "/v2"


def _is_invocations(request: Request) -> bool:
    return request.url.path.endswith("/invocations")


def error_response(
    request: Request, code: str, message: str, details: object = None
) -> JSONResponse:
    """One error, in the shape the caller's protocol expects."""
    if _is_oip(request):  # Open Inference Protocol: {"error": "..."}
        return JSONResponse({"error": message}, status_code=STATUS.get(code, 500))
    if _is_invocations(request):  # MLflow's scoring server
        mlflow_code = (
            "BAD_REQUEST"
            if code == "invalid_input"
            else MLFLOW_CODES.get(code, ("INTERNAL_ERROR",))[0]
        )
        return JSONResponse(
            {"error_code": mlflow_code, "message": message}, status_code=STATUS.get(code, 500)
        )
    if _is_mlflow(request):
        mlflow_code, status = MLFLOW_CODES.get(code, ("INTERNAL_ERROR", 500))
        return JSONResponse({"error_code": mlflow_code, "message": message}, status_code=status)
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=STATUS.get(code, 500))


def error_handlers() -> dict[Any, Any]:
    """Exception → response in the caller's protocol, for FastAPI and plain Starlette apps."""

    async def _mlteam(request: Request, err: MlteamError) -> JSONResponse:
        if err.code == "internal":
            log.error("internal error: %s", err.message)
        return error_response(request, err.code, err.message, err.details)

    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        details = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in err.errors()]
        first = details[0] if details else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return error_response(request, "invalid_input", message, details)

    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(
            err.status_code, "invalid_input" if err.status_code < 500 else "internal"
        )
        if _is_mlflow(request) and err.status_code == 404:
            body = {
                "error_code": "ENDPOINT_NOT_FOUND",
                "message": f"no endpoint {request.url.path}",
            }
            return JSONResponse(body, status_code=404)
        if _is_oip(request) or _is_invocations(request):
            resp = error_response(request, code, str(err.detail))
            resp.status_code = err.status_code
            return resp
        body = {"error": {"code": code, "message": str(err.detail), "details": None}}
        return JSONResponse(body, status_code=err.status_code)

    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, "internal", f"internal error: {type(err).__name__}")

    return {
        MlteamError: _mlteam,
        RequestValidationError: _invalid,
        StarletteHTTPException: _http,
        Exception: _bug,
    }


def install_error_handlers(app: FastAPI) -> None:
    for exc_class, handler in error_handlers().items():
        app.add_exception_handler(exc_class, handler)


def create_app(settings: Settings, platform: Platform | None = None) -> FastAPI:
    platform = platform or Platform(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        platform.start()
        gcpolicy.tune()
        try:
            yield
        finally:
            platform.stop()

    app = FastAPI(
        title="mlteam",
        version=__version__,
        description="A self-hosted, self-service ML platform.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    # Open Inference Protocol v2 at the root, as KServe and Triton clients expect. Routes
    # match in order: the inference routes come first, so a prediction does not walk the rest.
    app.include_router(oip_router)
    for router in (
        serving_router,
        core_router,
        projects_router,
        data_router,
        pipelines_router,
        tracking_router,
        training_router,
        registry_router,
        evaluation_router,
        monitoring_router,
    ):
        app.include_router(router, prefix="/api/v1")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format (serving requests, errors, latency per deployment/version)."""
        m = platform.serving.metrics
        return Response(m.render(), media_type=m.content_type)

    # MLflow's REST API: at the root (experiments named "<project>/<name>") and per project.
    # One mounted sub-app, matched first: an MLflow call does not walk every native route.
    mlflow_api = _mlflow_app(platform)
    # The inference endpoints before both: plain Starlette routes (serving/fast.py), the
    # traffic of every deployment.
    app.router.routes[0:0] = [
        *inference_routes(),
        Mount("/api/2.0", mlflow_api),
        Mount("/mlflow/{project}/api/2.0", mlflow_api),
    ]
    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process (`mlteam server --workers N`), its settings read
    from the environment the server was started with."""
    return create_app(Settings())


def _mlflow_app(platform: Platform) -> Starlette:
    return mlflow_app(platform, tracking_mlflow, registry_mlflow, handlers=error_handlers())
