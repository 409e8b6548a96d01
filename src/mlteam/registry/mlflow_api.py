"""MLflow's model-registry REST API over mlteam's registry services.

Registered-model names map to projects as experiment names do (server/mlflow.py). Aliases,
tags and descriptions are mlteam's; MLflow's legacy stages are derived from aliases, and the
protected aliases (`production`, `champion`) still move only through promotion sign-offs, so
`transition-stage` to Production and setting those aliases are refused with PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore, clean_key
from mlteam.core.errors import InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.registry.models import ModelVersion, RegisteredModel
from mlteam.server.mlflow import Routes, body, kv, ok, outward_name, req, split_name
from mlteam.server.platform import Platform
from mlteam.tracking import logged_models
from mlteam.tracking import service as tracking

router = Routes()
API = "/mlflow"  # mounted under /api/2.0 and /mlflow/<project>/api/2.0 (server/app.py)
MLFLOW_TYPES = {
    "double": "double",
    "float": "double",
    "long": "long",
    "integer": "long",
    "string": "string",
    "boolean": "boolean",
}


def _names(session: Session, user: User, request: Request, name: str) -> tuple[str, str]:
    return split_name(session, user, request, name, "registered model")


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def _version_json(
    session: Session, request: Request, slug: str, mv: ModelVersion
) -> dict[str, Any]:
    info = registry.describe(session, mv)
    return {
        "name": outward_name(request, slug, info["model"]),
        "version": str(mv.version),
        "creation_timestamp": _ms(mv.created_at),
        "last_updated_timestamp": _ms(mv.created_at),
        "user_id": mv.created_by,
        "current_stage": info["stage"],
        "description": mv.description,
        "source": f"mlflow-artifacts:/{mv.artifact_key}",
        "run_id": mv.run_id or "",
        "status": "READY",
        "tags": [{"key": k, "value": v} for k, v in info["tags"].items()],
        "aliases": info["aliases"],
        **(
            {"model_id": mv.lineage["logged_model_id"]} if mv.lineage.get("logged_model_id") else {}
        ),
    }


def _model_json(
    session: Session, user: User, request: Request, slug: str, model: RegisteredModel
) -> dict[str, Any]:
    info = registry.describe_model(session, model)
    versions = registry.list_versions(session, user, slug, model.name)
    latest: dict[str, ModelVersion] = {}
    for mv in versions:
        latest[registry.stage_of(session, mv)] = mv
    return {
        "name": outward_name(request, slug, model.name),
        "creation_timestamp": _ms(model.created_at),
        "last_updated_timestamp": _ms(versions[-1].created_at if versions else model.created_at),
        "user_id": model.created_by,
        "description": model.description,
        "latest_versions": [_version_json(session, request, slug, mv) for mv in latest.values()],
        "tags": [{"key": k, "value": v} for k, v in info["tags"].items()],
        "aliases": [{"alias": a, "version": str(v)} for a, v in info["aliases"].items()],
    }


def _source_key(
    session: Session, user: User, project_id: str, source: str, run_id: str | None
) -> tuple[str, str | None]:
    """The store key of a model source URI, and the logged model it names, if any."""
    logged_id = None
    if source.startswith("models:/m-"):
        logged_id = source.removeprefix("models:/").strip("/")
        key = logged_models.artifact_key(logged_id)
    elif source.startswith("mlflow-artifacts:"):
        key = clean_key(source.removeprefix("mlflow-artifacts:").lstrip("/"))
    elif source.startswith("runs:/"):
        run_part, _, path = source.removeprefix("runs:/").partition("/")
        key = clean_key(
            f"runs/{run_part}/artifacts/{path}" if path else f"runs/{run_part}/artifacts"
        )
    else:
        raise InvalidInput(
            f"model source {source!r} is not a models:/, runs:/ or mlflow-artifacts:/ URI of this "
            "server",
            {"field": "source"},
        )
    parts = key.split("/")
    if parts[0] == "logged_models" and len(parts) >= 3:
        logged_id = parts[1]
        row = logged_models.get(session, user, logged_id)
        owner = row.project_id
    elif parts[0] == "runs" and len(parts) >= 3:
        owner = tracking.get_run(session, user, parts[1]).project_id
    else:
        raise InvalidInput(
            f"model source {source!r} is not a model of this server", {"field": "source"}
        )
    if owner != project_id:
        raise NotFound(f"model source {source} not found")
    return key, logged_id


def _format_and_signature(store: ArtifactStore, key: str) -> tuple[str, dict[str, Any]]:
    """Read MLflow's MLmodel file: a skops-saved scikit-learn model is servable as such."""
    try:
        meta = yaml.safe_load(store.read_bytes(f"{key}/MLmodel")) or {}
    except (NotFound, yaml.YAMLError):
        return "mlflow", {}
    sk = (meta.get("flavors") or {}).get("sklearn") or {}
    fmt = "mlflow"
    if sk.get("serialization_format") == "skops" and sk.get("pickled_model") == "model.skops":
        fmt = "sklearn-skops"
    signature: dict[str, Any] = {}
    raw = (meta.get("signature") or {}).get("inputs")
    if raw:
        try:
            cols = yaml.safe_load(raw) if isinstance(raw, str) else raw
            if all(c.get("type") in MLFLOW_TYPES and c.get("name") for c in cols):
                signature = {
                    "inputs": [{"name": c["name"], "type": MLFLOW_TYPES[c["type"]]} for c in cols],
                    "output": {},
                    "task": "",
                }
        except (yaml.YAMLError, AttributeError, TypeError):
            signature = {}
    return fmt, signature


# -- registered models -------------------------------------------------------------------------


@router.post(f"{API}/registered-models/create")
async def create_registered_model(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    model = registry.create_model(
        session, user, slug, name, str(data.get("description") or ""), kv(data.get("tags"), "tags")
    )
    session.flush()
    return ok({"registered_model": _model_json(session, user, request, slug, model)})


@router.get(f"{API}/registered-models/get")
def get_registered_model(
    request: Request, session: Session, user: User, name: str = ""
) -> Response:
    slug, bare = _names(session, user, request, name)
    model = registry.get_model(session, user, slug, bare)
    return ok({"registered_model": _model_json(session, user, request, slug, model)})


@router.get(f"{API}/registered-models/search")
def search_registered_models(
    request: Request,
    session: Session,
    user: User,
    filter: str = "",
    max_results: int = 100,
) -> Response:
    from mlteam.server.mlflow import scope

    slugs = (
        [scope(request)]
        if scope(request)
        else [p.slug for p in projects.list_projects(session, user)]
    )
    wanted = None
    if filter.strip().lower().startswith("name") and "=" in filter and "like" not in filter.lower():
        wanted = filter.split("=", 1)[1].strip().strip("'\"")
    found = []
    for slug in slugs:
        for model in registry.list_models(session, user, slug):
            if (
                wanted is None
                or outward_name(request, slug, model.name) == wanted
                or model.name == wanted
            ):
                found.append(_model_json(session, user, request, slug, model))
    return ok({"registered_models": found[:max_results]})


@router.patch(f"{API}/registered-models/update")
async def update_registered_model(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    model = registry.update_model(session, user, slug, name, str(data.get("description") or ""))
    return ok({"registered_model": _model_json(session, user, request, slug, model)})


@router.post(f"{API}/registered-models/get-latest-versions")
async def get_latest_versions(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    stages = set(data.get("stages") or [])
    latest: dict[str, ModelVersion] = {}
    for mv in registry.list_versions(session, user, slug, name):
        latest[registry.stage_of(session, mv)] = mv
    picked = [mv for stage, mv in latest.items() if not stages or stage in stages]
    return ok({"model_versions": [_version_json(session, request, slug, mv) for mv in picked]})


@router.post(f"{API}/registered-models/set-tag")
async def set_registered_model_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    registry.set_model_tag(
        session, user, slug, name, str(req(data, "key")), str(data.get("value", ""))
    )
    return ok()


@router.delete(f"{API}/registered-models/delete-tag")
async def delete_registered_model_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    registry.delete_model_tag(session, user, slug, name, str(req(data, "key")))
    return ok()


@router.post(f"{API}/registered-models/alias")
async def set_alias(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    registry.set_alias(
        session, user, slug, name, str(req(data, "alias")), str(req(data, "version"))
    )
    return ok()


@router.delete(f"{API}/registered-models/alias")
async def delete_alias(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    registry.delete_alias(session, user, slug, name, str(req(data, "alias")))
    return ok()


@router.get(f"{API}/registered-models/alias")
def get_by_alias(
    request: Request, session: Session, user: User, name: str = "", alias: str = ""
) -> Response:
    slug, bare = _names(session, user, request, name)
    if not alias:
        raise InvalidInput("missing value for required parameter 'alias'", {"field": "alias"})
    mv = registry.get_version(session, user, slug, bare, alias)
    return ok({"model_version": _version_json(session, request, slug, mv)})


# -- model versions -----------------------------------------------------------------------------


@router.post(f"{API}/model-versions/create")
async def create_model_version(
    request: Request, session: Session, user: User, platform: Platform
) -> Response:
    data = await body(request)
    slug, name = _names(session, user, request, str(req(data, "name")))
    project = projects.resolve(session, user, slug, Perm.model_write)
    source = str(
        data.get("source") or (f"models:/{data['model_id']}" if data.get("model_id") else "")
    )
    if not source:
        raise InvalidInput("missing value for required parameter 'source'", {"field": "source"})
    key, logged_id = _source_key(session, user, project.id, source, data.get("run_id"))
    fmt, signature = _format_and_signature(platform.artifacts, key)
    run_id = data.get("run_id") or None
    if logged_id and not run_id:
        run_id = logged_models.get(session, user, logged_id).source_run_id
    mv = registry.register_artifacts(
        session,
        user,
        slug,
        name,
        key=key,
        fmt=fmt,
        signature=signature,
        run_id=run_id,
        lineage={"logged_model_id": logged_id, "source": source}
        if logged_id
        else {"source": source},
        description=str(data.get("description") or ""),
        tags=kv(data.get("tags"), "tags"),
    )
    return ok({"model_version": _version_json(session, request, slug, mv)})


def _version(
    session: Session, user: User, request: Request, name: str, version: str
) -> tuple[str, ModelVersion]:
    slug, bare = _names(session, user, request, name)
    if not version:
        raise InvalidInput("missing value for required parameter 'version'", {"field": "version"})
    if not str(version).isdigit():
        raise InvalidInput(f"version must be a number, got {version!r}", {"field": "version"})
    return slug, registry.get_version(session, user, slug, bare, version)


@router.get(f"{API}/model-versions/get")
def get_model_version(
    request: Request, session: Session, user: User, name: str = "", version: str = ""
) -> Response:
    slug, mv = _version(session, user, request, name, version)
    return ok({"model_version": _version_json(session, request, slug, mv)})


@router.get(f"{API}/model-versions/get-download-uri")
def get_download_uri(
    request: Request, session: Session, user: User, name: str = "", version: str = ""
) -> Response:
    _, mv = _version(session, user, request, name, version)
    return ok({"artifact_uri": f"mlflow-artifacts:/{mv.artifact_key}"})


@router.patch(f"{API}/model-versions/update")
async def update_model_version(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, mv = _version(session, user, request, str(req(data, "name")), str(req(data, "version")))
    registry.update_version(
        session,
        user,
        slug,
        registry.model_name(session, mv),
        mv.version,
        str(data.get("description") or ""),
    )
    return ok({"model_version": _version_json(session, request, slug, mv)})


@router.post(f"{API}/model-versions/transition-stage")
async def transition_stage(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, mv = _version(session, user, request, str(req(data, "name")), str(req(data, "version")))
    archive = str(data.get("archive_existing_versions", "false")).lower() == "true"
    registry.transition_stage(
        session,
        user,
        slug,
        registry.model_name(session, mv),
        mv.version,
        str(req(data, "stage")),
        archive,
    )
    return ok({"model_version": _version_json(session, request, slug, mv)})


@router.get(f"{API}/model-versions/search")
def search_model_versions(
    request: Request,
    session: Session,
    user: User,
    filter: str = "",
    max_results: int = 10000,
) -> Response:
    """Supports MLflow's common filters: `name = '...'` and `run_id = '...'`."""
    from mlteam.server.mlflow import scope

    conditions: dict[str, str] = {}
    for part in filter.split(" and ") if filter else []:
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidInput(
                f"unsupported filter {filter!r}: use name = '...' and/or run_id = '...'",
                {"field": "filter"},
            )
        conditions[key.strip().lower()] = value.strip().strip("'\"")
    if "name" in conditions:
        slug, bare = _names(session, user, request, conditions["name"])
        pairs = [(slug, mv) for mv in registry.list_versions(session, user, slug, bare)]
    else:
        slugs = (
            [scope(request)]
            if scope(request)
            else [p.slug for p in projects.list_projects(session, user)]
        )
        pairs = [
            (slug, mv)
            for slug in slugs
            for model in registry.list_models(session, user, slug)
            for mv in registry.list_versions(session, user, slug, model.name)
        ]
    if "run_id" in conditions:
        pairs = [(s, mv) for s, mv in pairs if mv.run_id == conditions["run_id"]]
    return ok(
        {
            "model_versions": [
                _version_json(session, request, s, mv) for s, mv in pairs[:max_results]
            ]
        }
    )


@router.post(f"{API}/model-versions/set-tag")
async def set_version_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, mv = _version(session, user, request, str(req(data, "name")), str(req(data, "version")))
    registry.set_version_tag(
        session,
        user,
        slug,
        registry.model_name(session, mv),
        mv.version,
        str(req(data, "key")),
        str(data.get("value", "")),
    )
    return ok()


@router.delete(f"{API}/model-versions/delete-tag")
async def delete_version_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, mv = _version(session, user, request, str(req(data, "name")), str(req(data, "version")))
    registry.delete_version_tag(
        session, user, slug, registry.model_name(session, mv), mv.version, str(req(data, "key"))
    )
    return ok()
