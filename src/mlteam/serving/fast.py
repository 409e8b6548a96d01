"""The inference endpoints as plain Starlette routes, matched before every other route.

MLflow's `POST /api/v1/deployments/{name}/invocations` and Open Inference
`POST /v2/models/{name}/infer` carry a deployment's traffic, most of it single rows. Served as
FastAPI routes, a single-row request cost ~2 ms of server CPU, most of it around the model:
dependency solving, a unit-of-work dependency, an ORM load of the deployment and a thread-pool
hop each way (ONNX Runtime's own predict is ~40 µs). Here a request is only: read the body,
the token's user (cached 5 s by `core.auth`), parse the body (orjson), the deployment's
pointer (four columns, read afresh every request, see `service.infer`), the check against the
signature, the predict, the log append, the answer: ~0.4 ms of CPU in the app, ~0.5-1.0 ms
with uvicorn and the kernel's loopback.

A small body is answered on the event loop: the whole request takes less CPU than the
thread-pool round trip did. A large one (over `THREAD_MIN_BYTES`) is parsed, checked and
predicted in the thread pool, so a 1,000-row request does not hold up the small ones; so is a
request whose deployment's models this process has yet to load.

Errors are raised as `MlteamError` and shaped by the app's handlers, by path, exactly as
before: `{"error": "..."}` under `/v2/`, MLflow's `{"error_code", "message"}` on
`/invocations`. The FastAPI routers keep a route of the same path for the OpenAPI document,
which calls these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlteam.core.auth import authenticate
from mlteam.core.models import User
from mlteam.server.deps import bearer_token
from mlteam.server.jsonbody import parse_json
from mlteam.serving import service
from mlteam.serving.protocols import mlflow_request, oip_checker, output_datatype

# From this body size on, the work runs in the thread pool (a 1,000-row MLflow body of 30
# columns is ~240 KB; a single row ~0.9 KB).
THREAD_MIN_BYTES = 64 * 1024


class FastJSON(Response):
    """JSON rendered by orjson: ~4x faster than `json.dumps` on 1,000 numbers. A NaN or
    infinite prediction is written as null, never a failed response."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # an int past 64 bits: the standard library writes any int
            return json.dumps(content, default=_plain).encode()


def _plain(value: Any) -> Any:
    """What JSON cannot say natively: a DuckDB decimal (a SQL rule's answer) as a float, a
    numpy scalar as its Python value, anything else as its text."""
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@contextmanager
def _caller(request: Request) -> Iterator[tuple[Session, User, Any]]:
    """One unit of work (committed before the response goes out) and the caller: the token
    is checked before the body is read, as the API does (no token: 401, whatever the body)."""
    platform = request.app.state.platform
    with platform.db.session() as session:
        yield session, authenticate(session, bearer_token(request)), platform


async def _run(work: Callable[[bool], Response], size: int) -> Response:
    """`work(may_load)` on the event loop for a small body whose deployment is loaded in this
    process; in the thread pool for a large body, or to load the models first (the first
    request of a deployment or revision in each process: a load takes 0.1-1 s)."""
    if size < THREAD_MIN_BYTES:
        try:
            return work(False)
        except service.NotLoaded:
            pass
    return await run_in_threadpool(work, True)


async def invocations(request: Request) -> Response:
    """MLflow's scoring protocol: one of dataframe_split, dataframe_records, instances, inputs."""
    raw = await request.body()
    name = request.path_params["name"]
    request_id = request.headers.get("x-request-id")
    ctype = request.headers.get("content-type", "application/json")

    def work(may_load: bool) -> Response:
        with _caller(request) as (session, user, platform):
            if not ctype.startswith("application/json"):
                # MLflow answers 415 for a content type it cannot read
                return JSONResponse(
                    {
                        "error_code": "BAD_REQUEST",
                        "message": f"content type {ctype!r} is not supported; "
                        "send application/json",
                    },
                    status_code=415,
                )
            check = mlflow_request(raw)
            _, _, answer = service.infer(
                session, user, platform.serving, name, check, request_id, may_load
            )
        return FastJSON({"predictions": answer.outputs})

    return await _run(work, len(raw))


async def oip_infer(request: Request) -> Response:
    """Open Inference Protocol v2 `infer`: tensors in, one `predict` tensor out."""
    # tritonclient sends no Content-Type: the body is read as JSON whatever it says
    raw = await request.body()
    name = request.path_params["name"]

    def work(may_load: bool) -> Response:
        with _caller(request) as (session, user, platform):
            body = parse_json(raw)
            check = oip_checker(body)
            request_id = body.get("id") if isinstance(body.get("id"), str) else None
            dep, _, a = service.infer(
                session, user, platform.serving, name, check, request_id, may_load
            )
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
        return FastJSON(out)

    return await _run(work, len(raw))


def inference_routes() -> list[Route]:
    """The routes to put first in the app (`app.router.routes[0:0] = inference_routes()`)."""
    return [
        Route("/api/v1/deployments/{name}/invocations", invocations, methods=["POST"]),
        Route("/v2/models/{name}/infer", oip_infer, methods=["POST"]),
    ]
