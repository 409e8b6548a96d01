"""Logged models (MLflow 3): a model's artifacts and metadata, logged from a run or alone.

A logged model's artifacts live under `logged_models/<id>/artifacts/`; they can be written
while the model is PENDING and are frozen once it is finalized READY, so a registered version
that points at them never changes underneath its users.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.tracking import service as tracking
from mlteam.tracking.models import Experiment, LoggedModel

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")


def artifact_key(model_id: str) -> str:
    return f"logged_models/{model_id}/artifacts"


def create(
    session: Session,
    actor: User,
    experiment: Experiment,
    *,
    name: str = "",
    model_type: str = "",
    source_run_id: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    require(session, actor, experiment.project_id, Perm.tracking_write)
    if source_run_id:
        run = tracking.get_run(session, actor, source_run_id)
        if run.project_id != experiment.project_id:
            raise InvalidInput(f"run {source_run_id} not found", {"field": "source_run_id"})
    now = tracking.now_ms()
    model_id = f"m-{uuid.uuid4().hex}"
    row = LoggedModel(
        id=model_id,
        experiment_id=experiment.id,
        project_id=experiment.project_id,
        name=(name or model_id)[:256],
        model_type=model_type[:128],
        source_run_id=source_run_id,
        creator_id=actor.id,
        created_ms=now,
        updated_ms=now,
        params=dict(params or {}),
        tags=dict(tags or {}),
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "logged_model.create",
        f"logged_model:{model_id}",
        project_id=row.project_id,
        detail={"name": row.name, "run_id": source_run_id},
    )
    return row


def get(
    session: Session, actor: User, model_id: str, perm: Perm = Perm.tracking_read
) -> LoggedModel:
    row = session.get(LoggedModel, model_id)
    if row is None or row.lifecycle_stage == "deleted" and perm != Perm.tracking_read:
        raise NotFound(f"logged model {model_id} not found")
    require(session, actor, row.project_id, perm, what=f"logged model {model_id}")
    return row


def finalize(session: Session, actor: User, model_id: str, status: str) -> LoggedModel:
    row = get(session, actor, model_id, Perm.tracking_write)
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {STATUSES}", {"field": "status"})
    row.status = status
    row.updated_ms = tracking.now_ms()
    audit.record(
        session,
        actor,
        "logged_model.finalize",
        f"logged_model:{model_id}",
        project_id=row.project_id,
        detail={"status": status},
    )
    return row


def set_tags(session: Session, actor: User, model_id: str, tags: dict[str, str]) -> LoggedModel:
    row = get(session, actor, model_id, Perm.tracking_write)
    row.tags = {**row.tags, **{k: str(v) for k, v in tags.items()}}
    row.updated_ms = tracking.now_ms()
    return row


def delete_tag(session: Session, actor: User, model_id: str, key: str) -> None:
    row = get(session, actor, model_id, Perm.tracking_write)
    if key not in row.tags:
        raise NotFound(f"logged model {model_id} has no tag {key}")
    row.tags = {k: v for k, v in row.tags.items() if k != key}


def log_params(session: Session, actor: User, model_id: str, params: dict[str, str]) -> None:
    row = get(session, actor, model_id, Perm.tracking_write)
    for key, value in params.items():
        if key in row.params and row.params[key] != str(value):
            raise InvalidInput(
                f"param {key!r} was already logged with another value", {"field": key}
            )
    row.params = {**row.params, **{k: str(v) for k, v in params.items()}}


def delete(session: Session, actor: User, model_id: str) -> None:
    row = get(session, actor, model_id, Perm.tracking_write)
    row.lifecycle_stage = "deleted"
    audit.record(
        session, actor, "logged_model.delete", f"logged_model:{model_id}", project_id=row.project_id
    )


def search(
    session: Session, actor: User, experiment_ids: list[str], max_results: int = 100
) -> list[LoggedModel]:
    for exp_id in experiment_ids:
        exp = session.get(Experiment, exp_id)
        if exp is None:
            raise NotFound(f"experiment {exp_id} not found")
        require(session, actor, exp.project_id, Perm.tracking_read, what=f"experiment {exp_id}")
    q = (
        select(LoggedModel)
        .where(
            LoggedModel.experiment_id.in_(experiment_ids), LoggedModel.lifecycle_stage == "active"
        )
        .order_by(LoggedModel.created_ms.desc())
        .limit(max(1, min(max_results, 1000)))
    )
    return list(session.scalars(q))


def outputs_of_many(session: Session, run_ids: list[str]) -> dict[str, list[str]]:
    """Logged model ids per source run, for many runs at once."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        rows = session.execute(
            select(LoggedModel.source_run_id, LoggedModel.id).where(
                LoggedModel.source_run_id.in_(chunk)
            )
        )
        for run_id, model_id in rows:
            out.setdefault(run_id, []).append(model_id)
    return out


def check_artifact_write(session: Session, actor: User, key: str) -> None:
    """May the actor write this artifact key? (Run artifacts or a pending logged model's.)"""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "runs" and parts[2] == "artifacts":
        run = tracking.get_run(session, actor, parts[1], Perm.tracking_write)
        if run.status not in ("RUNNING", "SCHEDULED"):
            raise Conflict(f"run {run.id} is {run.status}; its artifacts are frozen")
        return
    if len(parts) >= 3 and parts[0] == "logged_models" and parts[2] == "artifacts":
        row = get(session, actor, parts[1], Perm.tracking_write)
        if row.status == "LOGGED_MODEL_READY":
            raise Conflict(f"logged model {row.id} is finalized; its artifacts are frozen")
        return
    raise NotFound(f"artifact path {key} not found")


def check_artifact_read(session: Session, actor: User, key: str) -> None:
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "runs" and parts[2] == "artifacts":
        tracking.get_run(session, actor, parts[1])
        return
    if len(parts) >= 3 and parts[0] == "logged_models" and parts[2] == "artifacts":
        get(session, actor, parts[1])
        return
    raise NotFound(f"artifact path {key} not found")


def to_dict(row: LoggedModel) -> dict[str, Any]:
    return {
        "id": row.id,
        "experiment_id": row.experiment_id,
        "name": row.name,
        "model_type": row.model_type,
        "source_run_id": row.source_run_id,
        "status": row.status,
        "params": row.params,
        "tags": row.tags,
    }
