"""MLflow's REST protocol, shared by the tracking and registry adapters.

Protobuf-JSON responses, request-body parsing with MLflow's error wording, and how a request
maps to an mlteam project: the tracking URI `http://HOST/mlflow/<project>` scopes every call
to that project; at the root, names are `<project>/<name>` (or your only project's).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from mlteam.core.errors import InvalidInput
from mlteam.core.models import User
from mlteam.projects import service as projects


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
    if not await request.body():
        return {}
    try:
        data = await request.json()
    except ValueError as err:
        raise InvalidInput("request body is not JSON") from err
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
