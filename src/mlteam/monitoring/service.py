"""Monitoring: ground truth fed back for predictions, and a drift and performance report.

The report compares what a deployment was asked (the prediction log) with the data its model
was trained on (the model version's lineage), and scores the predictions that got feedback.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import Conflict, InvalidInput
from mlteam.core.models import User
from mlteam.data import service as data
from mlteam.monitoring import drift
from mlteam.monitoring.models import Feedback
from mlteam.registry import service as registry
from mlteam.serving import service as serving
from mlteam.serving.predlog import PredictionLog

MAX_FEEDBACK = 10_000
# A report reads a bounded part of the log, whatever its age: prediction counts and latency
# over all of it (three small columns), drift over the latest DRIFT_PREDICTIONS live
# predictions of each version found among the deployment's latest LOOKBACK, performance over
# the latest SCORED_FEEDBACK feedback items (only the segments holding their predictions).
DRIFT_PREDICTIONS = 10_000
LOOKBACK = 200_000
SCORED_FEEDBACK = 10_000


def submit_feedback(
    session: Session, actor: User, log: PredictionLog, name: str, items: list[dict[str, Any]]
) -> int:
    """Record ground truth for predictions of deployment `name`. Unknown ids are refused."""
    dep = serving.get_deployment(session, actor, name, Perm.feedback_write)
    if not items:
        raise InvalidInput("feedback must hold at least one item", {"field": "items"})
    if len(items) > MAX_FEEDBACK:
        raise InvalidInput(f"at most {MAX_FEEDBACK} items per call", {"field": "items"})
    ids = [str(i.get("prediction_id", "")) for i in items]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a prediction id appears twice", {"field": "items"})
    known = log.find(dep.id, ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise InvalidInput(
            f"unknown prediction ids for deployment {name}: {unknown[:5]}",
            {"field": "prediction_id", "unknown": unknown[:50]},
        )
    taken = set(
        session.scalars(select(Feedback.prediction_id).where(Feedback.prediction_id.in_(ids)))
    )
    if taken:
        raise Conflict(
            f"feedback already recorded for {sorted(taken)[:5]}",
            {"prediction_ids": sorted(taken)[:50]},
        )
    for item in items:
        session.add(
            Feedback(
                project_id=dep.project_id,
                deployment_id=dep.id,
                prediction_id=str(item["prediction_id"]),
                truth={"value": item.get("truth")},
                created_by=actor.id,
            )
        )
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict("feedback for one of these predictions was recorded concurrently") from err
    audit.record(
        session,
        actor,
        "feedback.submit",
        f"deployment:{name}",
        project_id=dep.project_id,
        detail={"count": len(items)},
    )
    return len(items)


def report(
    session: Session, actor: User, store: ArtifactStore, log: PredictionLog, name: str
) -> dict[str, Any]:
    """Drift of logged inputs against the training data, and accuracy on fed-back predictions."""
    dep = serving.get_deployment(session, actor, name, Perm.monitor_read)
    rev = serving.current_revision(session, dep)
    counts = log.counts(dep.id)
    recent = log.latest(dep.id, LOOKBACK)
    scored = session.execute(
        select(Feedback.prediction_id, Feedback.truth)
        .where(Feedback.deployment_id == dep.id)
        .order_by(Feedback.created_at.desc(), Feedback.id)
        .limit(SCORED_FEEDBACK)
    ).all()
    feedback = pd.DataFrame(
        [{"prediction_id": p, "truth": json.dumps(t.get("value"))} for p, t in scored],
        columns=["prediction_id", "truth"],
    )
    con = duckdb.connect()
    con.register("log", recent)
    con.register("scored", log.lookup(dep.id, list(feedback["prediction_id"])))
    con.register("feedback", feedback)
    joined = con.execute(
        """SELECT scored.model_version_id, scored.output, feedback.truth
           FROM scored JOIN feedback USING (prediction_id)"""
    ).fetchall()
    versions: list[dict[str, Any]] = []
    for version_id, (n, mean_latency) in counts.items():
        mv = registry.version_by_id(session, actor, version_id)
        task = mv.signature.get("task", "classification")
        pairs = [(json.loads(o), json.loads(t)) for v, o, t in joined if v == version_id]
        perf: dict[str, Any] = {"feedback_count": len(pairs)}
        if pairs and task == "classification":
            perf["accuracy"] = sum(str(p) == str(t) for p, t in pairs) / len(pairs)
        elif pairs:
            errors = [abs(float(p) - float(t)) for p, t in pairs]
            perf["mae"] = sum(errors) / len(errors)
        inputs = con.execute(
            "SELECT inputs FROM (SELECT inputs, ts FROM log WHERE model_version_id = ? AND "
            "mode = 'live' ORDER BY ts DESC LIMIT ?) ORDER BY ts",
            [version_id, DRIFT_PREDICTIONS],
        ).fetchall()
        current = pd.DataFrame([json.loads(r[0]) for r in inputs])
        drift_out: dict[str, Any] = {}
        reference_info = None
        lineage = mv.lineage.get("dataset_versions") or []
        if lineage and len(current):
            dv = data.version_by_id(session, actor, lineage[0]["id"])
            reference = data.read_table(store, dv).to_pandas()
            features = [c["name"] for c in mv.signature.get("inputs", [])]
            drift_out = drift.feature_drift(reference, current, features)
            reference_info = {"dataset": lineage[0]["dataset"], "n": dv.n, "rows": len(reference)}
        versions.append(
            {
                "model": registry.model_name(session, mv),
                "version": mv.version,
                "predictions": int(n),
                "mean_latency_ms": float(mean_latency or 0.0),
                "performance": perf,
                "reference": reference_info,
                "drift": drift_out,
                "drifted_features": sorted(f for f, d in drift_out.items() if d["drifted"]),
            }
        )
    con.close()
    return {
        "deployment": dep.name,
        "revision": rev.n,
        "predictions": sum(n for n, _ in counts.values()),
        "feedback": session.scalar(
            select(func.count(Feedback.id)).where(Feedback.deployment_id == dep.id)
        ),
        "window": {
            "drift": f"the latest {DRIFT_PREDICTIONS} live predictions of each version, "
            f"among the deployment's latest {LOOKBACK}",
            "performance": f"the latest {SCORED_FEEDBACK} feedback items",
        },
        "versions": versions,
    }


def count_feedback(session: Session, project_id: str) -> int:
    return int(
        session.scalar(select(func.count(Feedback.id)).where(Feedback.project_id == project_id))
        or 0
    )
