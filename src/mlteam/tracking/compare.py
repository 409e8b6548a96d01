"""Runs side by side: their params, and their metric histories aligned by step."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlteam.core.errors import InvalidInput, PayloadTooLarge
from mlteam.core.models import User
from mlteam.tracking import service
from mlteam.tracking.models import Experiment, Metric

MAX_RUNS = 100
MAX_POINTS = 1_000_000  # metric points loaded for one comparison


def compare_runs(session: Session, actor: User, run_ids: list[str]) -> dict[str, Any]:
    """`{"runs": [{id, name, experiment}], "params": {key: {run_id: value | None}},
    "metrics": {key: {"steps": [...], "values": {run_id: [value | None per step]}}}}`.

    Every run is checked for access (404 for runs the actor may not read). Where a run
    logged a step twice, its latest point (by timestamp) is the one shown; NaN stays NaN.
    """
    if not isinstance(run_ids, list) or not all(isinstance(i, str) for i in run_ids):
        raise InvalidInput("run_ids is a list of run ids", {"field": "run_ids"})
    ids = list(dict.fromkeys(run_ids))
    if not 1 <= len(ids) <= MAX_RUNS:
        raise InvalidInput(f"compare 1..{MAX_RUNS} runs", {"field": "run_ids"})
    runs = [service.get_run(session, actor, run_id) for run_id in ids]
    names = dict(
        session.execute(
            select(Experiment.id, Experiment.name).where(
                Experiment.id.in_({r.experiment_id for r in runs})
            )
        )
        .tuples()
        .all()
    )
    params = service.params_of(session, ids)
    param_keys = sorted({k for p in params.values() for k in p})

    points = session.scalar(select(func.count()).where(Metric.run_id.in_(ids))) or 0
    if points > MAX_POINTS:
        raise PayloadTooLarge(
            f"these runs hold {points} metric points, more than {MAX_POINTS} to compare at once",
            {"field": "run_ids"},
        )
    histories: dict[str, dict[str, dict[int, float]]] = {}
    rows = session.execute(
        select(Metric.key, Metric.run_id, Metric.step, Metric.value, Metric.is_nan)
        .where(Metric.run_id.in_(ids))
        .order_by(Metric.key, Metric.step, Metric.timestamp, Metric.id)
    )
    for key, run_id, step, value, is_nan in rows:
        histories.setdefault(key, {}).setdefault(run_id, {})[step] = math.nan if is_nan else value

    metrics = {}
    for key, by_run in histories.items():
        steps = sorted({s for history in by_run.values() for s in history})
        metrics[key] = {
            "steps": steps,
            "values": {i: [by_run.get(i, {}).get(s) for s in steps] for i in ids},
        }
    return {
        "runs": [
            {"id": r.id, "name": r.name, "experiment": names.get(r.experiment_id, "")} for r in runs
        ],
        "params": {k: {i: params.get(i, {}).get(k) for i in ids} for k in param_keys},
        "metrics": metrics,
    }
