"""Deployments: named endpoints whose revisions route traffic to model versions.

`predict` checks the input against the model's signature, answers with a prediction id per
row, and hands every answer to the prediction log (off the request path).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.errors import InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.serving.models import Deployment, Revision
from mlteam.serving.predlog import PredictionLog
from mlteam.serving.runtime import ModelCache, check_records

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
STAGES = ("staging", "production")


def deploy(
    session: Session,
    actor: User,
    slug: str,
    name: str,
    *,
    model: str,
    version: int | str,
    stage: str = "staging",
) -> tuple[Deployment, Revision]:
    """Create the deployment or give it a new revision sending all traffic to one version."""
    project = projects.resolve(session, actor, slug, Perm.deploy_write)
    if not NAME.match(name):
        raise InvalidInput(
            f"invalid deployment name {name!r}: lowercase letters, digits and '-'",
            {"field": "name"},
        )
    if stage not in STAGES:
        raise InvalidInput(f"stage must be one of {STAGES}", {"field": "stage"})
    mv = registry.get_version(session, actor, slug, model, version)
    dep = session.scalar(select(Deployment).where(Deployment.name == name))
    if dep is not None and dep.project_id != project.id:
        raise InvalidInput(f"deployment name {name!r} is taken", {"field": "name"})
    if dep is None:
        dep = Deployment(project_id=project.id, name=name, stage=stage, created_by=actor.id)
        session.add(dep)
        session.flush()
    n = (
        session.scalar(select(func.max(Revision.n)).where(Revision.deployment_id == dep.id)) or 0
    ) + 1
    rev = Revision(
        deployment_id=dep.id,
        n=n,
        routes=[
            {
                "model_version_id": mv.id,
                "model": model,
                "version": mv.version,
                "weight": 100,
                "mode": "live",
            }
        ],
        created_by=actor.id,
    )
    session.add(rev)
    dep.current_revision = n
    dep.stage = stage
    session.flush()
    audit.record(
        session,
        actor,
        "deployment.revise",
        f"deployment:{name}",
        project_id=project.id,
        detail={"revision": n, "model": model, "version": mv.version, "stage": stage},
    )
    return dep, rev


def get_deployment(
    session: Session, actor: User, name: str, perm: Perm = Perm.monitor_read
) -> Deployment:
    dep = session.scalar(select(Deployment).where(Deployment.name == name))
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


def describe(session: Session, dep: Deployment) -> dict[str, Any]:
    rev = current_revision(session, dep) if dep.current_revision else None
    return {
        "id": dep.id,
        "name": dep.name,
        "stage": dep.stage,
        "revision": dep.current_revision,
        "routes": rev.routes if rev else [],
        "created_at": dep.created_at,
    }


def predict(
    session: Session,
    actor: User,
    models: ModelCache,
    log: PredictionLog,
    name: str,
    records: Any,
) -> dict[str, Any]:
    started = time.perf_counter()
    dep = get_deployment(session, actor, name, Perm.predict)
    rev = current_revision(session, dep)
    live = [r for r in rev.routes if r["mode"] == "live"]
    route = live[0]
    mv = registry.version_by_id(session, actor, route["model_version_id"])
    loaded = models.get(mv.id, mv.artifact_key, mv.format, mv.signature)
    frame = check_records(records, mv.signature)
    outputs = loaded.predict(frame)
    latency = (time.perf_counter() - started) * 1000
    now = datetime.now(UTC)
    ids = [uuid.uuid4().hex for _ in outputs]
    cols = loaded.columns
    log.append(
        [
            {
                "prediction_id": pid,
                "ts": now,
                "deployment_id": dep.id,
                "revision": rev.n,
                "model_version_id": mv.id,
                "mode": "live",
                "inputs": json.dumps({c: rec.get(c) for c in cols}),
                "output": json.dumps(out),
                "latency_ms": latency / len(outputs),
            }
            for pid, rec, out in zip(ids, records, outputs, strict=True)
        ]
    )
    return {
        "deployment": dep.name,
        "revision": rev.n,
        "model": route["model"],
        "version": mv.version,
        "predictions": [{"id": pid, "output": out} for pid, out in zip(ids, outputs, strict=True)],
    }


def count_live_deployments(session: Session, project_id: str) -> int:
    return int(
        session.scalar(
            select(func.count(Deployment.id)).where(
                Deployment.project_id == project_id, Deployment.current_revision.is_not(None)
            )
        )
        or 0
    )
