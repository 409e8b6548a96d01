"""The model registry: versions made from a run's model artifact, with lineage and aliases.

A version points at its run's `model/` artifact folder, which is immutable once the run has
finished; its signature and metrics are copied in so serving and monitoring need no run.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.registry.models import ModelAlias, ModelVersion, RegisteredModel
from mlteam.tracking import service as tracking

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


def _model(session: Session, project_id: str, name: str) -> RegisteredModel | None:
    return session.scalar(
        select(RegisteredModel).where(
            RegisteredModel.project_id == project_id, RegisteredModel.name == name
        )
    )


def register_version(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    name: str,
    run_id: str,
    description: str = "",
) -> ModelVersion:
    """Register the model a finished run logged under `model/` as the next version of `name`."""
    project = projects.resolve(session, actor, slug, Perm.model_write)
    data.check_name(name, "model")
    run = tracking.get_run(session, actor, run_id)
    if run.project_id != project.id:
        raise NotFound(f"run {run_id} not found")
    if run.status != "FINISHED":
        raise Conflict(f"run {run_id} is {run.status}; only finished runs can be registered")
    key = tracking.artifact_key(run, "model")
    try:
        meta = json.loads(store.read_bytes(f"{key}/mlteam-model.json"))
    except NotFound as err:
        raise InvalidInput(
            f"run {run_id} logged no model under model/", {"field": "run_id"}
        ) from err
    model = _model(session, project.id, name)
    if model is None:
        model = RegisteredModel(project_id=project.id, name=name, created_by=actor.id)
        session.add(model)
        session.flush()
        audit.record(session, actor, "model.create", f"model:{name}", project_id=project.id)
    number = (
        session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        )
        or 0
    ) + 1
    inputs = []
    for dv_id in run.inputs:
        dv = data.version_by_id(session, actor, dv_id)
        inputs.append({"id": dv.id, "dataset": data.dataset_name(session, dv), "n": dv.n})
    mv = ModelVersion(
        model_id=model.id,
        project_id=project.id,
        version=number,
        run_id=run.id,
        artifact_key=key,
        format=meta.get("format", "unknown"),
        signature=meta.get("signature", {}),
        metrics=tracking.latest_metrics(session, run),
        lineage={"run_id": run.id, "dataset_versions": inputs, "candidate": meta.get("candidate")},
        description=description,
        created_by=actor.id,
    )
    session.add(mv)
    session.flush()
    audit.record(
        session,
        actor,
        "model.version.create",
        f"model:{name}/{number}",
        project_id=project.id,
        detail={"run_id": run.id},
    )
    return mv


def list_models(session: Session, actor: User, slug: str) -> list[RegisteredModel]:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    return list(
        session.scalars(
            select(RegisteredModel)
            .where(RegisteredModel.project_id == project.id)
            .order_by(RegisteredModel.name)
        )
    )


def get_model(session: Session, actor: User, slug: str, name: str) -> RegisteredModel:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    model = _model(session, project.id, name)
    if model is None:
        raise NotFound(f"model {name} not found")
    return model


def list_versions(session: Session, actor: User, slug: str, name: str) -> list[ModelVersion]:
    model = get_model(session, actor, slug, name)
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id)
            .order_by(ModelVersion.version)
        )
    )


def get_version(
    session: Session, actor: User, slug: str, name: str, version: int | str
) -> ModelVersion:
    """A version by number, or by alias (`champion`, `production`, ...)."""
    model = get_model(session, actor, slug, name)
    if str(version).isdigit():
        mv = session.scalar(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id, ModelVersion.version == int(version)
            )
        )
    else:
        alias = session.get(ModelAlias, (model.id, str(version)))
        mv = session.get(ModelVersion, alias.version_id) if alias else None
    if mv is None:
        raise NotFound(f"model {name} has no version {version}")
    return mv


def version_by_id(
    session: Session, actor: User, version_id: str, perm: Perm = Perm.model_read
) -> ModelVersion:
    mv = session.get(ModelVersion, version_id)
    if mv is None:
        raise NotFound(f"model version {version_id} not found")
    require(session, actor, mv.project_id, perm, what="model version")
    return mv


def set_alias(
    session: Session, actor: User, slug: str, name: str, alias: str, version: int
) -> ModelAlias:
    if not ALIAS.match(alias):
        raise InvalidInput(f"invalid alias {alias!r}", {"field": "alias"})
    project = projects.resolve(session, actor, slug, Perm.model_write)
    mv = get_version(session, actor, slug, name, version)
    row = session.get(ModelAlias, (mv.model_id, alias))
    if row is None:
        row = ModelAlias(model_id=mv.model_id, alias=alias, version_id=mv.id)
        session.add(row)
    else:
        row.version_id = mv.id
    audit.record(
        session,
        actor,
        "model.alias.set",
        f"model:{name}@{alias}",
        project_id=project.id,
        detail={"version": mv.version},
    )
    return row


def aliases_of(session: Session, mv: ModelVersion) -> list[str]:
    return sorted(session.scalars(select(ModelAlias.alias).where(ModelAlias.version_id == mv.id)))


def model_name(session: Session, mv: ModelVersion) -> str:
    model = session.get(RegisteredModel, mv.model_id)
    return model.name if model else ""


def describe(session: Session, mv: ModelVersion) -> dict[str, Any]:
    return {
        "id": mv.id,
        "model": model_name(session, mv),
        "version": mv.version,
        "run_id": mv.run_id,
        "format": mv.format,
        "signature": mv.signature,
        "metrics": mv.metrics,
        "lineage": mv.lineage,
        "description": mv.description,
        "status": mv.status,
        "aliases": aliases_of(session, mv),
        "created_at": mv.created_at,
    }


def count_versions(session: Session, project_id: str) -> int:
    return int(
        session.scalar(
            select(func.count(ModelVersion.id)).where(ModelVersion.project_id == project_id)
        )
        or 0
    )
