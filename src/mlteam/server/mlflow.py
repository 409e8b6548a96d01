"""MLflow's REST protocol, shared by the tracking and registry adapters.

Protobuf-JSON responses, request-body parsing with MLflow's error wording, and how a request
maps to an mlteam project: the tracking URI `http://HOST/mlflow/<project>` scopes every call
to that project; at the root, names are `<project>/<name>` (or your only project's).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlteam.core.auth import authenticate
from mlteam.core.errors import InvalidInput
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.server.deps import bearer_token
from mlteam.server.jsonbody import parse_json


class MlflowJSON(JSONResponse):
    """MLflow's JSON: NaN and infinities as the `NaN`/`Infinity` tokens its client reads
    (Python's json accepts them), rendered in one pass."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=True).encode()


def ok(content: Any = None) -> MlflowJSON:
    return MlflowJSON(content if content is not None else {})


# -- mapping projects and experiments --------------------------------------------------------


def scope(request: Request) -> str | None:
    return request.path_params.get("project")


def default_project(session: Session, actor: User, request: Request) -> str:
    slug = scope(request)
    if slug:
        return slug
    mine = projects.list_projects(session, actor)
    if len(mine) == 1:
        return mine[0].slug
    raise InvalidInput(
        "name the experiment '<project>/<experiment>', or use the tracking URI "
        "http://<host>/mlflow/<project>",
        {"field": "experiment"},
    )


async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def req(data: dict[str, Any], field: str) -> Any:
    value = data.get(field)
    if value is None or value == "":
        raise InvalidInput(f"missing value for required parameter '{field}'", {"field": field})
    return value


def kv(items: Any, field: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidInput(f"'{field}' must be a list of {{key, value}}", {"field": field})
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "key" not in item:
            raise InvalidInput(f"{field}[{i}] must have a key", {"field": f"{field}[{i}]"})
        out[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
    return out


def split_name(
    session: Session, actor: User, request: Request, name: str, what: str
) -> tuple[str, str]:
    """(project slug, name within it) of an experiment or registered model name."""
    if not name:
        raise InvalidInput(f"{what} name is required", {"field": "name"})
    if scope(request) is None and "/" in name:
        slug, _, rest = name.partition("/")
        return slug, rest
    return default_project(session, actor, request), name


def outward_name(request: Request, slug: str, name: str) -> str:
    """The name as the client knows it: bare when scoped to a project, else `<project>/<name>`."""
    return name if scope(request) else f"{slug}/{name}"


# -- serving the handlers ---------------------------------------------------------------------


class Routes:
    """The MLflow API's handlers, registered by method and path.

    They are served by a plain Starlette app (`mlflow_app`), not FastAPI: the stock client
    sends many tiny requests (one metric each), and FastAPI's per-route dependency solving cost
    a third of such a request. A handler names what it needs as parameters: `request`,
    `session` and `user` (one unit of work, committed before the response goes out),
    `platform`, and path or query parameters by name, their default giving type and value.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Callable[..., Any]]] = []

    def route(self, method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.entries.append((method, path, fn))
            return fn

        return register

    def get(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PUT", path)

    def patch(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PATCH", path)

    def delete(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("DELETE", path)


_PROVIDED = ("request", "session", "user", "platform")


def _argument(request: Request, name: str, default: Any) -> Any:
    if name in request.path_params:
        return request.path_params[name]
    raw = request.query_params.get(name)
    if raw is None:
        if default is inspect.Parameter.empty:
            raise InvalidInput(f"missing value for required parameter '{name}'", {"field": name})
        return default
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(raw)
        except ValueError as err:
            raise InvalidInput(f"'{name}' must be an integer", {"field": name}) from err
    return raw


def endpoint(fn: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint calling `fn` with what its parameters name (see `Routes`)."""
    params = inspect.signature(fn).parameters
    wanted = [(n, p.default) for n, p in params.items()]
    is_async = inspect.iscoroutinefunction(fn)

    async def call(request: Request) -> Response:
        platform = request.app.state.platform
        with platform.db.session() as session:
            user = None
            if "user" in params:
                user = authenticate(session, bearer_token(request))
            provided = {"request": request, "session": session, "user": user, "platform": platform}
            kwargs = {
                n: provided[n] if n in _PROVIDED else _argument(request, n, default)
                for n, default in wanted
            }
            if is_async:
                return await fn(**kwargs)
            return await run_in_threadpool(fn, **kwargs)

    call.__name__ = fn.__name__
    return call


def mlflow_app(platform: Any, *route_sets: Routes, handlers: dict[Any, Any]) -> Starlette:
    """The MLflow API as one Starlette app; `handlers` map exceptions to MLflow's errors."""
    routes = [
        Route(path, endpoint(fn), methods=[method])
        for routes in route_sets
        for method, path, fn in routes.entries
    ]
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.platform = platform
    return app
