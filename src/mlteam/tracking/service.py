"""Experiment tracking: experiments, runs, params, tags, metric histories, run artifacts.

Params are immutable once logged (MLflow's rule): the same value again is fine, another
value is a conflict. Artifacts live under `runs/<run_id>/artifacts/` in the artifact store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.artifacts import ArtifactStore, clean_key
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.tracking.models import Experiment, Metric, Param, Run, Tag

STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(key: str, what: str) -> str:
    if not key or len(key) > MAX_KEY:
        raise InvalidInput(
            f"{what} key must be 1..{MAX_KEY} characters", {"field": what, "key": key[:300]}
        )
    return key


# -- experiments ---------------------------------------------------------------------------


def get_or_create_experiment(session: Session, actor: User, slug: str, name: str) -> Experiment:
    project = projects.resolve(session, actor, slug, Perm.tracking_read)
    exp = session.scalar(
        select(Experiment).where(Experiment.project_id == project.id, Experiment.name == name)
    )
    if exp is not None:
        return exp
    require(session, actor, project.id, Perm.tracking_write)
    if not name or len(name) > 256:
        raise InvalidInput("experiment name must be 1..256 characters", {"field": "name"})
    exp = Experiment(project_id=project.id, name=name, created_by=actor.id)
    session.add(exp)
    session.flush()
    audit.record(session, actor, "experiment.create", f"experiment:{name}", project_id=project.id)
    return exp


def list_experiments(session: Session, actor: User, slug: str) -> list[Experiment]:
    project = projects.resolve(session, actor, slug, Perm.tracking_read)
    return list(
        session.scalars(
            select(Experiment).where(Experiment.project_id == project.id).order_by(Experiment.name)
        )
    )


# -- runs ------------------------------------------------------------------------------------


def create_run(
    session: Session,
    actor: User,
    experiment: Experiment,
    *,
    name: str = "",
    kind: str = "custom",
    parent_run_id: str | None = None,
    inputs: list[str] | None = None,
    code_version: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> Run:
    require(session, actor, experiment.project_id, Perm.tracking_write)
    if parent_run_id:
        parent = session.get(Run, parent_run_id)
        if parent is None or parent.project_id != experiment.project_id:
            raise InvalidInput(f"parent run {parent_run_id} not found", {"field": "parent_run_id"})
    run = Run(
        experiment_id=experiment.id,
        project_id=experiment.project_id,
        name=name,
        kind=kind,
        start_time=now_ms(),
        parent_run_id=parent_run_id,
        user_id=actor.id,
        inputs=list(inputs or []),
        code_version=dict(code_version or {}),
    )
    session.add(run)
    session.flush()
    if params:
        _log_params(session, run, params)
    if tags:
        _set_tags(session, run, tags)
    audit.record(
        session,
        actor,
        "run.create",
        f"run:{run.id}",
        project_id=run.project_id,
        detail={"experiment": experiment.name, "kind": kind},
    )
    return run


def get_run(session: Session, actor: User, run_id: str, perm: Perm = Perm.tracking_read) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    require(session, actor, run.project_id, perm, what="run")
    return run


def _log_params(session: Session, run: Run, params: dict[str, Any]) -> None:
    existing = {
        p.key: p.value for p in session.scalars(select(Param).where(Param.run_id == run.id))
    }
    for key, value in params.items():
        _check_key(key, "param")
        value = str(value)
        if len(value) > MAX_PARAM_VALUE:
            raise InvalidInput(
                f"param {key!r} value longer than {MAX_PARAM_VALUE} characters", {"field": key}
            )
        if key in existing:
            if existing[key] != value:
                raise InvalidInput(
                    f"param {key!r} was already logged as {existing[key]!r}; params are immutable",
                    {"field": key},
                )
            continue
        session.add(Param(run_id=run.id, key=key, value=value))
        existing[key] = value


def _set_tags(session: Session, run: Run, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        _check_key(key, "tag")
        value = str(value)
        if len(value) > MAX_TAG_VALUE:
            raise InvalidInput(f"tag {key!r} value too long", {"field": key})
        session.merge(Tag(run_id=run.id, key=key, value=value))


def log_params(session: Session, actor: User, run_id: str, params: dict[str, Any]) -> None:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    _log_params(session, run, params)


def set_tags(session: Session, actor: User, run_id: str, tags: dict[str, str]) -> None:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    _set_tags(session, run, tags)


def log_metrics(
    session: Session, actor: User, run_id: str, metrics: Iterable[dict[str, Any]]
) -> int:
    """Append metric points `{key, value, step?, timestamp?}`; returns how many."""
    run = get_run(session, actor, run_id, Perm.tracking_write)
    rows = []
    ts = now_ms()
    for i, m in enumerate(metrics):
        key = _check_key(str(m.get("key", "")), "metric")
        try:
            value = float(m["value"])
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(
                f"metric {key!r}: value must be a number", {"field": f"metrics[{i}].value"}
            ) from err
        rows.append(
            {
                "run_id": run.id,
                "key": key,
                "value": value if not math.isnan(value) else float("nan"),
                "step": int(m.get("step") or 0),
                "timestamp": int(m.get("timestamp") or ts),
            }
        )
    if rows:
        session.execute(Metric.__table__.insert(), rows)
    return len(rows)


def finish_run(session: Session, actor: User, run_id: str, status: str = "FINISHED") -> Run:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {STATUSES}", {"field": "status"})
    run.status = status
    if status in ("FINISHED", "FAILED", "KILLED"):
        run.end_time = now_ms()
    audit.record(
        session,
        actor,
        "run.update",
        f"run:{run.id}",
        project_id=run.project_id,
        detail={"status": status},
    )
    return run


def run_params(session: Session, run: Run) -> dict[str, str]:
    return {p.key: p.value for p in session.scalars(select(Param).where(Param.run_id == run.id))}


def run_tags(session: Session, run: Run) -> dict[str, str]:
    return {t.key: t.value for t in session.scalars(select(Tag).where(Tag.run_id == run.id))}


def latest_metrics(session: Session, run: Run) -> dict[str, float]:
    """The value at the highest step (latest timestamp breaking ties) of each metric."""
    out: dict[str, tuple[int, int, float]] = {}
    for key, value, step, ts in session.execute(
        select(Metric.key, Metric.value, Metric.step, Metric.timestamp).where(
            Metric.run_id == run.id
        )
    ):
        if key not in out or (step, ts) >= out[key][:2]:
            out[key] = (step, ts, value)
    return {k: v[2] for k, v in out.items()}


def metric_history(session: Session, actor: User, run_id: str, key: str) -> list[dict[str, Any]]:
    run = get_run(session, actor, run_id)
    rows = session.execute(
        select(Metric.value, Metric.step, Metric.timestamp)
        .where(Metric.run_id == run.id, Metric.key == key)
        .order_by(Metric.step, Metric.timestamp, Metric.id)
    )
    return [{"key": key, "value": v, "step": s, "timestamp": t} for v, s, t in rows]


def describe(session: Session, run: Run) -> dict[str, Any]:
    exp = session.get(Experiment, run.experiment_id)
    return {
        "id": run.id,
        "experiment": exp.name if exp else "",
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "parent_run_id": run.parent_run_id,
        "inputs": run.inputs,
        "code_version": run.code_version,
        "params": run_params(session, run),
        "tags": run_tags(session, run),
        "metrics": latest_metrics(session, run),
    }


def list_runs(
    session: Session, actor: User, slug: str, experiment: str | None = None, limit: int = 100
) -> list[Run]:
    project = projects.resolve(session, actor, slug, Perm.tracking_read)
    q = select(Run).where(Run.project_id == project.id)
    if experiment:
        q = q.join(Experiment, Experiment.id == Run.experiment_id).where(
            Experiment.name == experiment
        )
    return list(session.scalars(q.order_by(Run.start_time.desc()).limit(limit)))


def count_runs(session: Session, project_id: str, kind: str | None = None) -> int:
    q = select(func.count(Run.id)).where(Run.project_id == project_id)
    if kind:
        q = q.where(Run.kind == kind)
    return int(session.scalar(q) or 0)


# -- artifacts ---------------------------------------------------------------------------------


def artifact_key(run: Run, path: str = "") -> str:
    base = f"runs/{run.id}/artifacts"
    return f"{base}/{clean_key(path)}" if path else base


def put_artifact(
    session: Session, actor: User, store: ArtifactStore, run_id: str, path: str, local_file: str
) -> str:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    if run.status not in ("RUNNING", "SCHEDULED"):
        raise Conflict(f"run {run_id} is {run.status}; artifacts go to running runs")
    return store.put_file(local_file, artifact_key(run, path))


def list_artifacts(
    session: Session, actor: User, store: ArtifactStore, run_id: str, path: str = ""
) -> list[dict[str, Any]]:
    run = get_run(session, actor, run_id)
    return store.list(artifact_key(run, path))


def open_artifact(session: Session, actor: User, store: ArtifactStore, run_id: str, path: str):
    run = get_run(session, actor, run_id)
    return store.open(artifact_key(run, path))
