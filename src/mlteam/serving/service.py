"""Deployments: named endpoints whose revisions route traffic to model versions.

A revision is immutable: `[{model_version_id, model, version, weight, mode}]`, live routes
sharing traffic by weight (canary: 95/5) and shadow routes mirroring it (answers logged, never
returned). Changing the revision or rolling back makes a new revision and moves the
deployment's pointer in one transaction; a request reads the pointer once and finishes on the
revision it read, so a switch fails no request in flight.

A production deployment takes on its live routes only versions holding one of the required
aliases (`production` or `champion`), which move only through promotion sign-offs. Rolling
back returns to a revision that passed that check when it was made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.errors import InvalidInput, NotFound, Unavailable
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.serving.engine import Answer, ServingEngine
from mlteam.serving.models import Deployment, Revision
from mlteam.serving.runtime import Columns, LoadedModel, ModelCache, check_records

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
STAGES = ("staging", "production")
MODES = ("live", "shadow")
# A production deployment's live versions must hold one of these aliases.
REQUIRED_ALIASES = ("production", "champion")
MAX_ROUTES = 10


def _check_routes(
    session: Session, actor: User, slug: str, stage: str, routes: Any
) -> list[dict[str, Any]]:
    """Resolve `[{model, version, weight, mode}]` to stored routes, refusing what cannot serve."""
    if not isinstance(routes, list) or not routes:
        raise InvalidInput("routes must be a non-empty list", {"field": "routes"})
    if len(routes) > MAX_ROUTES:
        raise InvalidInput(f"at most {MAX_ROUTES} routes", {"field": "routes"})
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, r in enumerate(routes):
        field = f"routes[{i}]"
        if not isinstance(r, dict):
            raise InvalidInput(f"{field} must be an object", {"field": field})
        unknown = set(r) - {"model", "version", "weight", "mode"}
        if unknown:
            raise InvalidInput(f"{field}: unknown keys {sorted(unknown)}", {"field": field})
        model, version = r.get("model"), r.get("version")
        mode, weight = r.get("mode", "live"), r.get("weight", 100 if len(routes) == 1 else None)
        if not isinstance(model, str) or not model:
            raise InvalidInput(
                f"{field}.model: a model name is required", {"field": f"{field}.model"}
            )
        if isinstance(version, bool) or not isinstance(version, int | str) or version == "":
            raise InvalidInput(
                f"{field}.version: a version number or alias is required",
                {"field": f"{field}.version"},
            )
        if mode not in MODES:
            raise InvalidInput(f"{field}.mode must be one of {MODES}", {"field": f"{field}.mode"})
        if mode == "shadow" and weight is None:
            weight = 0
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidInput(
                f"{field}.weight: an integer from 0 to 100 is required",
                {"field": f"{field}.weight"},
            )
        mv = registry.get_version(session, actor, slug, model, version)
        if mv.id in seen:
            raise InvalidInput(
                f"{field}: {model} v{mv.version} appears twice", {"field": f"{field}.version"}
            )
        seen.add(mv.id)
        if mode == "live" and stage == "production":
            held = registry.aliases_of(session, mv)
            if not any(a.lower() in REQUIRED_ALIASES for a in held):
                raise InvalidInput(
                    f"{field}: {model} v{mv.version} holds none of the aliases a production "
                    f"deployment requires ({', '.join(REQUIRED_ALIASES)}); promote it through a "
                    "promotion request, or deploy it to staging",
                    {"field": f"{field}.version", "required_aliases": list(REQUIRED_ALIASES)},
                )
        out.append(
            {
                "model_version_id": mv.id,
                "model": model,
                "version": mv.version,
                "weight": weight if mode == "live" else 0,
                "mode": mode,
            }
        )
    live_weight = sum(r["weight"] for r in out if r["mode"] == "live")
    if live_weight != 100:
        raise InvalidInput(
            f"the weights of the live routes must add up to 100 (they add up to {live_weight})",
            {"field": "routes"},
        )
    return out


def _preload(
    session: Session, actor: User, models: ModelCache | None, routes: list[dict[str, Any]]
) -> None:
    """Load every version of a new revision before it takes traffic (a file that cannot be
    served is refused now, not at the first request)."""
    if models is None:
        return
    for r in routes:
        _load(session, actor, models, r["model_version_id"])


def _load(session: Session, actor: User, models: ModelCache, version_id: str) -> LoadedModel:
    loaded = models.cached(version_id)
    if loaded is not None:
        return loaded
    mv = registry.version_by_id(session, actor, version_id)
    return models.get(
        mv.id,
        mv.artifact_key,
        mv.format,
        mv.signature,
        registry.model_name(session, mv),
        mv.version,
    )


def _new_revision(
    session: Session,
    actor: User,
    dep: Deployment,
    routes: list[dict[str, Any]],
    action: str,
    detail: dict[str, Any],
) -> Revision:
    n = (
        session.scalar(select(func.max(Revision.n)).where(Revision.deployment_id == dep.id)) or 0
    ) + 1
    rev = Revision(deployment_id=dep.id, n=n, routes=routes, created_by=actor.id)
    session.add(rev)
    previous = dep.current_revision
    dep.current_revision = n
    session.flush()
    audit.record(
        session,
        actor,
        action,
        f"deployment:{dep.name}",
        project_id=dep.project_id,
        detail={
            "revision": n,
            "previous_revision": previous,
            "stage": dep.stage,
            "routes": [{k: r[k] for k in ("model", "version", "weight", "mode")} for r in routes],
            **detail,
        },
    )
    return rev


def deploy(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    *,
    model: str,
    version: int | str,
    stage: str | None = None,
    models: ModelCache | None = None,
) -> tuple[Deployment, Revision]:
    """Create the deployment or give it a new revision sending all traffic to one version.
    `stage` None keeps an existing deployment's stage (a new one starts in staging)."""
    return create_or_revise(
        session,
        actor,
        slug,
        name,
        [{"model": model, "version": version, "weight": 100, "mode": "live"}],
        stage=stage,
        models=models,
    )


def create_or_revise(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    routes: Any,
    *,
    stage: str | None = None,
    models: ModelCache | None = None,
) -> tuple[Deployment, Revision]:
    """Create deployment `name` in project `slug`, or give it a new revision with `routes`."""
    project = projects.resolve(session, actor, slug, Perm.deploy_write)
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"invalid deployment name {name!r}: lowercase letters, digits and '-'",
            {"field": "name"},
        )
    dep = session.scalar(select(Deployment).where(Deployment.name == name))
    if dep is not None and dep.project_id != project.id:
        raise InvalidInput(f"deployment name {name!r} is taken", {"field": "name"})
    stage = stage or (dep.stage if dep is not None else "staging")
    if stage not in STAGES:
        raise InvalidInput(f"stage must be one of {STAGES}", {"field": "stage"})
    resolved = _check_routes(session, actor, slug, stage, routes)
    _preload(session, actor, models, resolved)
    if dep is None:
        dep = Deployment(project_id=project.id, name=name, stage=stage, created_by=actor.id)
        session.add(dep)
        session.flush()
    dep.stage = stage
    rev = _new_revision(session, actor, dep, resolved, "deployment.revise", {})
    return dep, rev


def revise(
    session: Session,
    actor: User,
    name: str,
    routes: Any,
    *,
    stage: str | None = None,
    models: ModelCache | None = None,
) -> tuple[Deployment, Revision]:
    """A new revision of an existing deployment: its routes (and optionally its stage)."""
    dep = get_deployment(session, actor, name, Perm.deploy_write)
    slug = projects.by_id(session, dep.project_id).slug
    return create_or_revise(session, actor, slug, name, routes, stage=stage, models=models)


def rollback(
    session: Session, actor: User, name: str, *, models: ModelCache | None = None
) -> tuple[Deployment, Revision]:
    """Serve the previous revision's routes again, as a new revision (history is kept).

    "Previous" is the revision before the current one, so two rollbacks in a row return to
    where they started. The alias check is not made again: the routes passed it when that
    revision was made, and a rollback must work after the alias has moved on.
    """
    dep = get_deployment(session, actor, name, Perm.deploy_write)
    current = dep.current_revision or 0
    target = session.scalar(
        select(Revision).where(Revision.deployment_id == dep.id, Revision.n == current - 1)
    )
    if target is None:
        raise InvalidInput(
            f"deployment {name} has no revision before {current} to roll back to",
            {"field": "revision"},
        )
    routes = [dict(r) for r in target.routes]
    _preload(session, actor, models, routes)
    rev = _new_revision(
        session, actor, dep, routes, "deployment.rollback", {"rolled_back_to": target.n}
    )
    return dep, rev


# Built once: every prediction looks its deployment up, and building the statement anew
# (SQLAlchemy's expression coercion) cost more than running it.
_DEPLOYMENT_BY_NAME = select(Deployment).where(Deployment.name == bindparam("name"))


def get_deployment(
    session: Session, actor: User, name: str, perm: Perm = Perm.monitor_read
) -> Deployment:
    dep = session.scalar(_DEPLOYMENT_BY_NAME, {"name": name})
    if dep is None:
        raise NotFound(f"deployment {name} not found")
    require(session, actor, dep.project_id, perm, what=f"deployment {name}")
    return dep


def current_revision(session: Session, dep: Deployment) -> Revision:
    rev = session.scalar(
        select(Revision).where(Revision.deployment_id == dep.id, Revision.n == dep.current_revision)
    )
    if rev is None:
        raise NotFound(f"deployment {dep.name} has no revision")
    return rev


def list_deployments(session: Session, actor: User, slug: str) -> list[Deployment]:
    project = projects.resolve(session, actor, slug, Perm.monitor_read)
    return list(
        session.scalars(
            select(Deployment).where(Deployment.project_id == project.id).order_by(Deployment.name)
        )
    )


def list_revisions(session: Session, actor: User, name: str) -> list[dict[str, Any]]:
    """Every revision of a deployment, newest first."""
    dep = get_deployment(session, actor, name)
    revs = session.scalars(
        select(Revision).where(Revision.deployment_id == dep.id).order_by(Revision.n.desc())
    )
    return [
        {
            "revision": r.n,
            "routes": r.routes,
            "current": r.n == dep.current_revision,
            "created_at": r.created_at,
        }
        for r in revs
    ]


def describe(
    session: Session,
    dep: Deployment,
    models: ModelCache | None = None,
    actor: User | None = None,
) -> dict[str, Any]:
    """The deployment and its current routes. Given the process's models (and the actor to
    load them as), each route also says which runtime serves its version ("onnxruntime",
    "sklearn", ...) and, when a faster runtime was offered but not used, why."""
    rev = current_revision(session, dep) if dep.current_revision else None
    routes = [dict(r) for r in rev.routes] if rev else []
    if models is not None:
        for r in routes:
            loaded = models.cached(r["model_version_id"])
            if loaded is None and actor is not None:
                loaded = _load(session, actor, models, r["model_version_id"])
            if loaded is not None:
                r["runtime"] = loaded.runtime
                r["runtime_note"] = loaded.runtime_note
    return {
        "id": dep.id,
        "name": dep.name,
        "stage": dep.stage,
        "revision": dep.current_revision,
        "routes": routes,
        "created_at": dep.created_at,
    }


def _routes_now(session: Session, engine: ServingEngine, dep: Deployment) -> tuple[int, list]:
    """The current revision's routes (revisions never change, so each is read once)."""
    key = (dep.id, dep.current_revision or 0)
    routes = engine.revisions.get(key)
    if routes is None:
        routes = current_revision(session, dep).routes
        engine.revisions[key] = routes
    return key[1], routes


@dataclass(frozen=True)
class Target:
    """What a prediction needs of its deployment, read afresh for every request."""

    id: str
    name: str
    project_id: str
    revision: int


# The deployment's pointer: four plain columns read on every request (no cache), so a switch
# made by any process takes effect at the next request of every process.
_POINTER = select(
    Deployment.id, Deployment.name, Deployment.project_id, Deployment.current_revision
).where(Deployment.name == bindparam("name"))
_POINTER_SQL: dict[str, tuple[str, bool]] = {}  # dialect name → (its SQL, positional)


def _read_pointer(session: Session, name: str) -> tuple[Any, ...] | None:
    """The pointer row of deployment `name`, run as the driver's own SQL on a pooled DBAPI
    connection. Measured per call: ORM entity load ~180 µs, Core select on the session's
    connection ~50 µs plus the session's transaction, this ~13 µs (SQLite)."""
    engine = session.get_bind()
    dialect = engine.dialect
    compiled = _POINTER_SQL.get(dialect.name)
    if compiled is None:
        c = _POINTER.compile(dialect=dialect)
        compiled = _POINTER_SQL[dialect.name] = (c.string, bool(c.positional))
    sql, positional = compiled
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        try:
            cur.execute(sql, (name,) if positional else {"name": name})
            return cur.fetchone()
        finally:
            cur.close()
    except dialect.dbapi.OperationalError as err:
        raise Unavailable("the metadata store is unavailable; retry shortly") from err
    finally:
        conn.close()


class NotLoaded(Exception):  # noqa: N818 - a signal to the caller, not an error
    """The revision's versions are not loaded in this process yet, and the caller asked not to
    load them here (it runs on the event loop, where a load would hold up every request)."""


def infer(
    session: Session,
    actor: User,
    engine: ServingEngine,
    name: str,
    check: Callable[[LoadedModel], Columns],
    request_id: str | None = None,
    may_load: bool = True,
) -> tuple[Target, int, Answer]:
    """Answer one request on deployment `name`: `check` turns the request's input into checked
    columns for the version picked. Every protocol (native, Open Inference, MLflow) ends here.
    With `may_load` false, raises `NotLoaded` (having changed nothing) rather than load."""
    row = _read_pointer(session, name)
    if row is None:
        raise NotFound(f"deployment {name} not found")
    dep = Target(row[0], row[1], row[2], row[3] or 0)
    require(session, actor, dep.project_id, Perm.predict, what=f"deployment {name}")
    routes, loaded = _served(session, actor, engine, dep, may_load)
    answer = engine.answer(
        dep.name, dep.id, dep.revision, routes, loaded.__getitem__, check, request_id
    )
    return dep, dep.revision, answer


def _served(
    session: Session, actor: User, engine: ServingEngine, dep: Target, may_load: bool = True
) -> tuple[list[dict[str, Any]], dict[str, LoadedModel]]:
    """A revision's routes and its versions, loaded: read and loaded once per process
    (revisions and versions never change)."""
    key = (dep.id, dep.revision)
    hit = engine.served.get(key)
    if hit is not None:
        return hit
    if not may_load:
        raise NotLoaded(dep.name)
    if not dep.revision:
        raise NotFound(f"deployment {dep.name} has no revision")
    rev = session.scalar(
        select(Revision).where(Revision.deployment_id == dep.id, Revision.n == dep.revision)
    )
    if rev is None:
        raise NotFound(f"deployment {dep.name} has no revision")
    routes = rev.routes
    loaded = {
        r["model_version_id"]: _load(session, actor, engine.models, r["model_version_id"])
        for r in routes
    }
    engine.served[key] = (routes, loaded)
    return routes, loaded


def predict(
    session: Session,
    actor: User,
    engine: ServingEngine,
    name: str,
    records: Any,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The native protocol: records in, one prediction id per row out (for feedback)."""
    dep, n, a = infer(
        session,
        actor,
        engine,
        name,
        lambda m: check_records(records, m.signature),
        request_id,
    )
    return {
        "deployment": dep.name,
        "revision": n,
        "model": a.route["model"],
        "version": a.model.version,
        "predictions": [
            {"id": pid, "output": out} for pid, out in zip(a.ids, a.outputs, strict=True)
        ],
    }


def live_model(
    session: Session, actor: User, engine: ServingEngine, name: str
) -> tuple[Deployment, int, list[dict[str, Any]], LoadedModel]:
    """The deployment, its revision, routes and the first live version, loaded (metadata and
    readiness of the inference protocols)."""
    dep = get_deployment(session, actor, name, Perm.predict)
    n, routes = _routes_now(session, engine, dep)
    first = next(r for r in routes if r["mode"] == "live")
    for r in routes:
        _load(session, actor, engine.models, r["model_version_id"])
    return dep, n, routes, _load(session, actor, engine.models, first["model_version_id"])


def count_live_deployments(session: Session, project_id: str) -> int:
    return int(
        session.scalar(
            select(func.count(Deployment.id)).where(
                Deployment.project_id == project_id, Deployment.current_revision.is_not(None)
            )
        )
        or 0
    )
