"""Experiment tracking: experiments, runs, params, tags, metric histories, run artifacts.

Params are immutable once logged (MLflow's rule): the same value again is fine, another
value is refused. Artifacts live under `runs/<run_id>/artifacts/` in the artifact store.

Every write is set-based (one statement per table, whatever the batch size) and race-free:
params and tags go in with ON CONFLICT, and `log_metrics` keeps `latest_metrics` (each
metric's latest point, what search and listings read) with an upsert in the same transaction.
A batch is validated whole before anything is written, so one bad item stores nothing.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm, require
from mlteam.core.artifacts import ArtifactStore, clean_key
from mlteam.core.db import append_rows, insert_many, upsert
from mlteam.core.errors import Conflict, InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.tracking.models import Experiment, LatestMetric, Metric, Param, Run, Tag

STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_INT64 = 2**63 - 1  # steps and timestamps are BIGINT
CHUNK = 500  # ids per IN (...) when loading many runs: well under every backend's bind limit


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        shown = key[:300] if isinstance(key, str) else repr(key)[:300]
        raise InvalidInput(
            f"{what} key must be 1..{MAX_KEY} characters", {"field": what, "key": shown}
        )
    if "\x00" in key:
        # PostgreSQL refuses NUL in text; refuse it on every backend alike.
        raise InvalidInput(f"{what} key contains a NUL character", {"field": what, "key": key})
    return key


def _check_value(value: Any, limit: int, what: str, key: str) -> str:
    value = str(value)
    if len(value) > limit:
        raise InvalidInput(f"{what} {key!r} value longer than {limit} characters", {"field": key})
    if "\x00" in value:
        raise InvalidInput(f"{what} {key!r} value contains a NUL character", {"field": key})
    return value


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
    for i, dv_id in enumerate(inputs or []):
        from mlteam.data import service as data

        try:
            data.version_by_id(session, actor, dv_id)
        except NotFound as err:
            raise InvalidInput(
                f"inputs[{i}]: dataset version {dv_id} not found", {"field": "inputs", "id": dv_id}
            ) from err
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
    require(session, actor, run.project_id, perm, what=f"run {run_id}")
    return run


def _log_params(session: Session, run: Run, params: dict[str, Any]) -> None:
    rows = [
        {
            "run_id": run.id,
            "key": _check_key(key, "param"),
            "value": _check_value(value, MAX_PARAM_VALUE, "param", key),
        }
        for key, value in params.items()
    ]
    if not rows:
        return
    # Insert what is new, keep what is there (a concurrent writer's row included), then
    # compare: a different stored value is a re-log, refused, and the transaction rolls back.
    # Sorted keys make concurrent batches lock rows in one order (no deadlocks on PostgreSQL).
    rows.sort(key=lambda r: r["key"])
    table = Param.__table__
    session.execute(
        upsert(session, table).on_conflict_do_nothing(index_elements=["run_id", "key"]), rows
    )
    stored = dict(
        session.execute(select(table.c.key, table.c.value).where(table.c.run_id == run.id)).all()
    )
    for r in rows:
        if stored.get(r["key"]) != r["value"]:
            raise InvalidInput(
                f"param {r['key']!r} was already logged as {stored.get(r['key'])!r}; "
                "params are immutable",
                {"field": r["key"]},
            )


def _set_tags(session: Session, run: Run, tags: dict[str, str]) -> None:
    rows = [
        {
            "run_id": run.id,
            "key": _check_key(key, "tag"),
            "value": _check_value(value, MAX_TAG_VALUE, "tag", key),
        }
        for key, value in tags.items()
    ]
    if not rows:
        return
    rows.sort(key=lambda r: r["key"])
    stmt = upsert(session, Tag.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
    )
    session.execute(stmt, rows)


def log_params(session: Session, actor: User, run_id: str, params: dict[str, Any]) -> None:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    _log_params(session, run, params)


def set_tags(session: Session, actor: User, run_id: str, tags: dict[str, str]) -> None:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    _set_tags(session, run, tags)


def _number(value: Any, key: str, i: int) -> float:
    """A metric value: a number, or a string of one ("0.5", "NaN", "Infinity")."""
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise InvalidInput(
        f"metric {key!r}: value {value!r} is not a number"[:300], {"field": f"metrics[{i}].value"}
    )


def _int64(value: Any, default: int, field: str) -> int:
    if value is None:
        return default
    integral = (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
        or (isinstance(value, str) and value.strip().removeprefix("-").isdigit())
    )
    if not integral or abs(int(value)) > MAX_INT64:
        raise InvalidInput(
            f"{field} must be a 64-bit integer, not {value!r}"[:300], {"field": field}
        )
    return int(value)


METRIC_COLUMNS = ("run_id", "key", "value", "is_nan", "step", "timestamp")


def _metric_rows(run_id: str, metrics: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Checked metric points as rows of METRIC_COLUMNS.

    A batch of 1,000 points is checked in ~1 ms: the usual point (a str key seen before in the
    batch, a float value, int step and timestamp) takes the fast lane; anything else goes
    through the careful checks, which name the field.
    """
    now = now_ms()
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for i, m in enumerate(metrics):
        if type(m) is not dict:
            raise InvalidInput(f"metrics[{i}] must be an object", {"field": f"metrics[{i}]"})
        key, value = m.get("key", ""), m.get("value")
        step, ts = m.get("step"), m.get("timestamp")
        if type(key) is not str or key not in seen:
            seen.add(_check_key(key, "metric"))
        if type(value) is not float:
            value = _number(value, key, i)
        if type(step) is not int or not -MAX_INT64 <= step <= MAX_INT64:
            step = _int64(step, 0, f"metrics[{i}].step")
        if type(ts) is not int or not -MAX_INT64 <= ts <= MAX_INT64:
            ts = _int64(ts, now, f"metrics[{i}].timestamp")
        if value != value:  # NaN: SQLite would store it as NULL
            rows.append((run_id, key, 0.0, True, step, ts))
        else:
            rows.append((run_id, key, value, False, step, ts))
    return rows


def _update_latest(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Upsert each key's latest point: the highest (step, timestamp, value) wins (MLflow's rule).

    The batch is reduced in Python first (an upsert may touch a row once per statement on
    PostgreSQL); the WHERE keeps a newer point a concurrent writer stored meanwhile.
    """
    best: dict[str, tuple[Any, ...]] = {}
    for r in rows:  # (run_id, key, value, is_nan, step, timestamp)
        cur = best.get(r[1])
        if cur is None or r[4] > cur[4] or (r[4] == cur[4] and (r[5], r[2]) > (cur[5], cur[2])):
            best[r[1]] = r
    batch = [dict(zip(METRIC_COLUMNS, best[k], strict=True)) for k in sorted(best)]
    if session.get_bind().dialect.name == "sqlite":
        session.execute(_sqlite_latest_upsert(), batch)
        return
    # PostgreSQL's statement carries the batch in its arrays: built each time.
    stmt, params = insert_many(session, LatestMetric.__table__, batch)
    session.execute(_newer_wins(stmt), params)


@functools.cache
def _sqlite_latest_upsert() -> Any:
    """SQLite's upsert is the same statement for every batch (an executemany): built once per
    process, as building it, its `excluded` columns above all, cost a quarter of a one-metric
    request."""
    from sqlalchemy.dialects.sqlite import insert

    return _newer_wins(insert(LatestMetric.__table__))


def _newer_wins(insert: Any) -> Any:
    """ON CONFLICT for latest_metrics: keep the stored point unless the new one is later."""
    table = LatestMetric.__table__
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": new.value,
            "step": new.step,
            "timestamp": new.timestamp,
            "is_nan": new.is_nan,
        },
        where=tuple_(new.step, new.timestamp, new.value)
        > tuple_(table.c.step, table.c.timestamp, table.c.value),
    )


def log_metrics(
    session: Session, actor: User, run_id: str, metrics: Iterable[dict[str, Any]]
) -> int:
    """Append metric points `{key, value, step?, timestamp?}`; returns how many.

    The whole batch is checked before anything is written; the history rows and the latest
    values go in with one statement each, in the caller's transaction.
    """
    run = get_run(session, actor, run_id, Perm.tracking_write)
    return _log_metrics(session, run, metrics)


def _log_metrics(session: Session, run: Run, metrics: Iterable[dict[str, Any]]) -> int:
    rows = _metric_rows(run.id, metrics)
    if rows:
        append_rows(session, Metric.__table__, METRIC_COLUMNS, rows)
        _update_latest(session, rows)
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
    return params_of(session, [run.id]).get(run.id, {})


def run_tags(session: Session, run: Run) -> dict[str, str]:
    return tags_of(session, [run.id]).get(run.id, {})


def latest_metrics(session: Session, run: Run) -> dict[str, float]:
    """The latest value of each metric: highest (step, timestamp, value); NaN as float NaN."""
    return latest_metrics_of(session, [run.id]).get(run.id, {})


def _of_runs(session: Session, column: Any, run_ids: list[str]) -> Iterable[Any]:
    """Conditions `column in run_ids`, as few and as cheap as the backend allows.

    PostgreSQL takes the ids as one array parameter (`= ANY(...)`): 500 separate binds cost
    more to render and plan than the query itself. SQLite gets IN lists of 500.
    """
    if session.get_bind().dialect.name == "postgresql":
        if run_ids:
            yield column == any_(bindparam("run_ids", list(run_ids), type_=ARRAY(String)))
        return
    for i in range(0, len(run_ids), CHUNK):
        yield column.in_(run_ids[i : i + CHUNK])


def _key_values(session: Session, table: Any, run_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for in_runs in _of_runs(session, table.c.run_id, run_ids):
        q = select(table.c.run_id, table.c.key, table.c.value).where(in_runs)
        for run_id, key, value in session.execute(q).all():
            out.setdefault(run_id, {})[key] = value
    return out


def params_of(session: Session, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """The params of many runs in one query per 500 runs: `{run_id: {key: value}}`."""
    return _key_values(session, Param.__table__, run_ids)


def tags_of(session: Session, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """The tags of many runs: `{run_id: {key: value}}`."""
    return _key_values(session, Tag.__table__, run_ids)


def latest_metrics_of(session: Session, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """The latest metric values of many runs: `{run_id: {key: value}}`."""
    t = LatestMetric.__table__
    out: dict[str, dict[str, float]] = {}
    for in_runs in _of_runs(session, t.c.run_id, run_ids):
        q = select(t.c.run_id, t.c.key, t.c.value, t.c.is_nan).where(in_runs)
        for run_id, key, value, is_nan in session.execute(q).all():
            out.setdefault(run_id, {})[key] = math.nan if is_nan else value
    return out


def latest_points_of(session: Session, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's latest metric points with step and timestamp (MLflow's run data shape)."""
    t = LatestMetric.__table__
    out: dict[str, list[dict[str, Any]]] = {}
    for in_runs in _of_runs(session, t.c.run_id, run_ids):
        q = select(t.c.run_id, t.c.key, t.c.value, t.c.step, t.c.timestamp, t.c.is_nan)
        for run_id, key, value, step, ts, is_nan in session.execute(q.where(in_runs)).all():
            value = math.nan if is_nan else value
            point = {"key": key, "value": value, "step": step, "timestamp": ts}
            out.setdefault(run_id, []).append(point)
    return out


def metric_history(session: Session, actor: User, run_id: str, key: str) -> list[dict[str, Any]]:
    """Every point of one metric, by step then time; NaN points have the value float NaN."""
    run = get_run(session, actor, run_id)
    rows = session.execute(
        select(Metric.value, Metric.step, Metric.timestamp, Metric.is_nan)
        .where(Metric.run_id == run.id, Metric.key == key)
        .order_by(Metric.step, Metric.timestamp, Metric.id)
    )
    return [
        {"key": key, "value": math.nan if nan else v, "step": s, "timestamp": t}
        for v, s, t, nan in rows
    ]


def describe(session: Session, run: Run) -> dict[str, Any]:
    return describe_many(session, [run])[0]


def describe_many(session: Session, runs: list[Run]) -> list[dict[str, Any]]:
    """Runs as the API shows them, in a handful of queries however many runs there are."""
    ids = [r.id for r in runs]
    exp_ids = sorted({r.experiment_id for r in runs})
    names = dict(
        session.execute(
            select(Experiment.id, Experiment.name).where(Experiment.id.in_(exp_ids))
        ).all()
    )
    params, tags, metrics = (
        params_of(session, ids),
        tags_of(session, ids),
        latest_metrics_of(session, ids),
    )
    return [
        {
            "id": run.id,
            "experiment": names.get(run.experiment_id, ""),
            "name": run.name,
            "kind": run.kind,
            "status": run.status,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "parent_run_id": run.parent_run_id,
            "inputs": run.inputs,
            "code_version": run.code_version,
            "params": params.get(run.id, {}),
            "tags": tags.get(run.id, {}),
            "metrics": metrics.get(run.id, {}),
        }
        for run in runs
    ]


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


# -- what MLflow clients also do ----------------------------------------------------------------


def update_run(
    session: Session,
    actor: User,
    run_id: str,
    *,
    status: str | None = None,
    end_time: int | None = None,
    name: str | None = None,
) -> Run:
    """Rename a run and/or change its status (end time defaults to now for ended runs)."""
    run = get_run(session, actor, run_id, Perm.tracking_write)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {STATUSES}", {"field": "status"})
        run.status = status
        if status in ("FINISHED", "FAILED", "KILLED"):
            run.end_time = end_time or now_ms()
    elif end_time is not None:
        run.end_time = end_time
    if name:
        if len(name) > 256:
            raise InvalidInput("run name longer than 256 characters", {"field": "run_name"})
        run.name = name
    audit.record(
        session,
        actor,
        "run.update",
        f"run:{run.id}",
        project_id=run.project_id,
        detail={"status": run.status, "name": run.name},
    )
    return run


def delete_tag(session: Session, actor: User, run_id: str, key: str) -> None:
    run = get_run(session, actor, run_id, Perm.tracking_write)
    tag = session.get(Tag, (run.id, key))
    if tag is None:
        raise NotFound(f"run {run_id} has no tag {key!r}")
    session.delete(tag)


def set_run_lifecycle(session: Session, actor: User, run_id: str, stage: str) -> Run:
    """Soft-delete (`deleted`) or restore (`active`) a run."""
    run = get_run(session, actor, run_id, Perm.tracking_write)
    run.lifecycle_stage = stage
    audit.record(
        session,
        actor,
        f"run.{'delete' if stage == 'deleted' else 'restore'}",
        f"run:{run.id}",
        project_id=run.project_id,
    )
    return run


def log_batch(
    session: Session,
    actor: User,
    run_id: str,
    *,
    metrics: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Params, tags and metrics in one transaction: all stored, or none."""
    run = get_run(session, actor, run_id, Perm.tracking_write)
    if params:
        _log_params(session, run, params)
    if tags:
        _set_tags(session, run, tags)
    if metrics:
        _log_metrics(session, run, metrics)


def get_experiment(session: Session, actor: User, experiment_id: str) -> Experiment:
    exp = session.get(Experiment, experiment_id)
    if exp is None:
        raise NotFound(f"experiment {experiment_id} not found")
    require(session, actor, exp.project_id, Perm.tracking_read, what=f"experiment {experiment_id}")
    return exp


def find_experiment(session: Session, actor: User, slug: str, name: str) -> Experiment:
    project = projects.resolve(session, actor, slug, Perm.tracking_read)
    exp = session.scalar(
        select(Experiment).where(Experiment.project_id == project.id, Experiment.name == name)
    )
    if exp is None:
        raise NotFound(f"experiment {name!r} not found in project {slug}")
    return exp


def set_experiment_lifecycle(
    session: Session, actor: User, experiment_id: str, stage: str
) -> Experiment:
    exp = get_experiment(session, actor, experiment_id)
    require(session, actor, exp.project_id, Perm.tracking_write)
    exp.lifecycle_stage = stage
    audit.record(
        session,
        actor,
        f"experiment.{'delete' if stage == 'deleted' else 'restore'}",
        f"experiment:{exp.name}",
        project_id=exp.project_id,
    )
    return exp


def rename_experiment(session: Session, actor: User, experiment_id: str, name: str) -> Experiment:
    exp = get_experiment(session, actor, experiment_id)
    require(session, actor, exp.project_id, Perm.tracking_write)
    if not name or len(name) > 256:
        raise InvalidInput("experiment name must be 1..256 characters", {"field": "new_name"})
    taken = session.scalar(
        select(Experiment.id).where(
            Experiment.project_id == exp.project_id, Experiment.name == name
        )
    )
    if taken and taken != exp.id:
        raise Conflict(f"experiment {name!r} already exists", {"field": "new_name"})
    old, exp.name = exp.name, name
    audit.record(
        session,
        actor,
        "experiment.rename",
        f"experiment:{name}",
        project_id=exp.project_id,
        detail={"from": old},
    )
    return exp


def latest_metric_points(session: Session, run: Run) -> list[dict[str, Any]]:
    """Each metric's latest point (highest step, timestamp, value) with its step and time.

    Read from `latest_metrics`, not the history: NaN comes back as NaN (the history keeps
    it as 0 + is_nan) and a run with a long history costs no more than a short one.
    """
    return latest_points_of(session, [run.id]).get(run.id, [])
