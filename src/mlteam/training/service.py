"""Training: a job fits a non-ML baseline and a candidate on a dataset version, each a tracked run.

`start_training` checks what it can up front (access, the version, the columns) and queues a
job; `run_training_job` is the job's body, running in a worker process as the user who
started it, so the same access rules apply there.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from sqlalchemy.orm import Session

from mlteam.core import jobs
from mlteam.core.access import Perm
from mlteam.core.errors import InvalidInput
from mlteam.core.modelfiles import dump_sklearn
from mlteam.core.models import Job, User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.tracking import service as tracking
from mlteam.training import recipes

TASKS = ("auto", "classification", "regression")


def start_training(
    session: Session,
    actor: User,
    slug: str,
    *,
    dataset: str,
    version: int | str = "latest",
    target: str,
    features: list[str] | None = None,
    task: str = "auto",
    experiment: str = "training",
    test_fraction: float = 0.2,
    seed: int = 42,
    register_as: str | None = None,
) -> Job:
    """Queue a training job; returns the job to poll."""
    project = projects.resolve(session, actor, slug, Perm.tracking_write)
    dv = data.get_version(session, actor, slug, dataset, version)
    columns = [c["name"] for c in dv.schema]
    if target not in columns:
        raise InvalidInput(
            f"target column {target!r} not in dataset {dataset} v{dv.n} (columns: {columns})",
            {"field": "target"},
        )
    features = features or [c for c in columns if c != target]
    unknown = [f for f in features if f not in columns]
    if unknown:
        raise InvalidInput(f"feature columns not in the dataset: {unknown}", {"field": "features"})
    if target in features:
        raise InvalidInput("the target cannot also be a feature", {"field": "features"})
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {TASKS}", {"field": "task"})
    if not 0.05 <= test_fraction <= 0.5:
        raise InvalidInput("test_fraction must be between 0.05 and 0.5", {"field": "test_fraction"})
    if register_as is not None:
        data.check_name(register_as, "register_as")
    return jobs.submit(
        session,
        actor,
        project.id,
        "training.train",
        {
            "slug": slug,
            "dataset_version_id": dv.id,
            "dataset": dataset,
            "version": dv.n,
            "target": target,
            "features": features,
            "task": task,
            "experiment": experiment,
            "test_fraction": test_fraction,
            "seed": seed,
            "register_as": register_as,
        },
    )


def _log_candidate(
    ctx: jobs.JobContext,
    parent_id: str,
    experiment_id: str,
    cand: recipes.Candidate,
    metrics: dict[str, float],
    sig: dict[str, Any],
    p: dict[str, Any],
) -> str:
    """Record one fitted candidate as a finished run with its model artifact."""
    from mlteam.tracking.models import Experiment

    with tempfile.TemporaryDirectory(prefix="mlteam-model-") as tmp:
        model_path = os.path.join(tmp, "model.skops")
        dump_sklearn(cand.estimator, model_path)
        meta = {
            "format": "sklearn-skops",
            "signature": sig,
            "target": p["target"],
            "candidate": cand.name,
            "kind": cand.kind,
        }
        meta_path = os.path.join(tmp, "mlteam-model.json")
        with open(meta_path, "w") as fh:
            json.dump(meta, fh)
        with ctx.db.session() as s:
            actor = ctx.actor(s)
            exp = s.get(Experiment, experiment_id)
            run = tracking.create_run(
                s,
                actor,
                exp,
                name=cand.name,
                kind="baseline" if cand.kind == "baseline" else "training",
                parent_run_id=parent_id,
                inputs=[p["dataset_version_id"]],
                code_version={"entry_point": "mlteam.training.recipes", "recipe": cand.name},
                params={
                    **cand.params,
                    "candidate": cand.name,
                    "target": p["target"],
                    "seed": p["seed"],
                    "test_fraction": p["test_fraction"],
                },
                tags={"mlteam.kind": cand.kind},
            )
            run_id = run.id
        # Artifacts first, then metrics and FINISHED: a crash leaves a RUNNING run, never a
        # finished run without its model.
        with ctx.db.session() as s:
            actor = ctx.actor(s)
            tracking.put_artifact(s, actor, ctx.artifacts, run_id, "model/model.skops", model_path)
            tracking.put_artifact(
                s, actor, ctx.artifacts, run_id, "model/mlteam-model.json", meta_path
            )
            tracking.log_metrics(
                s, actor, run_id, [{"key": k, "value": v} for k, v in metrics.items()]
            )
            tracking.finish_run(s, actor, run_id, "FINISHED")
    return run_id


def run_training_job(ctx: jobs.JobContext) -> dict[str, Any]:
    p = ctx.params
    ctx.progress(0.05, f"loading dataset {p['dataset']} v{p['version']}")
    with ctx.db.session() as s:
        dv = data.version_by_id(s, ctx.actor(s), p["dataset_version_id"])
        table = data.read_table(ctx.artifacts, dv)
    df = table.to_pandas()
    target, features, seed = p["target"], list(p["features"]), int(p["seed"])
    recipes.check_training_frame(df, target, features)  # before anything is created
    with ctx.db.session() as s:
        exp = tracking.get_or_create_experiment(s, ctx.actor(s), p["slug"], p["experiment"])
        experiment_id = exp.id
    df = df[df[target].notna()]
    task = recipes.infer_task(df[target]) if p["task"] == "auto" else p["task"]
    train, test = recipes.split(df, target, task, float(p["test_fraction"]), seed)
    sig = recipes.signature(df, features, target, task)
    ctx.log(f"task={task} train_rows={len(train)} test_rows={len(test)} features={len(features)}")

    with ctx.db.session() as s:
        actor = ctx.actor(s)
        parent = tracking.create_run(
            s,
            actor,
            s.merge(exp),
            name=f"train {p['dataset']}@{p['version']}",
            kind="training",
            inputs=[p["dataset_version_id"]],
            params={"task": task, "target": target, "seed": seed},
            tags={"mlteam.job": ctx.job_id},
        )
        parent_id = parent.id

    results: list[dict[str, Any]] = []
    cands = recipes.candidates(task, df, features, seed)
    for i, cand in enumerate(cands):
        ctx.progress(0.1 + 0.7 * i / len(cands), f"fitting {cand.name}")
        cand.estimator.fit(train[features], train[target])
        metrics = recipes.evaluate(task, cand.estimator, test[features], test[target])
        run_id = _log_candidate(ctx, parent_id, experiment_id, cand, metrics, sig, p)
        ctx.log(f"{cand.name}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        results.append({"run_id": run_id, "name": cand.name, "kind": cand.kind, "metrics": metrics})

    baseline = next(r for r in results if r["kind"] == "baseline")
    best = baseline
    for r in results:
        if r["kind"] != "baseline" and recipes.better(task, r["metrics"], best["metrics"]):
            best = r
    primary, _ = recipes.PRIMARY[task]
    verdict = (
        f"{best['name']} beats the baseline on {primary}: "
        f"{best['metrics'][primary]:.4f} vs {baseline['metrics'][primary]:.4f}"
        if best is not baseline
        else f"no candidate beats the baseline on {primary} "
        f"({baseline['metrics'][primary]:.4f}): the baseline is the better product"
    )
    ctx.log(verdict)
    with ctx.db.session() as s:
        actor = ctx.actor(s)
        tracking.log_metrics(
            s, actor, parent_id, [{"key": f"best_{primary}", "value": best["metrics"][primary]}]
        )
        tracking.set_tags(s, actor, parent_id, {"mlteam.best_run": best["run_id"]})
        tracking.finish_run(s, actor, parent_id, "FINISHED")

    result: dict[str, Any] = {
        "task": task,
        "parent_run_id": parent_id,
        "runs": results,
        "best_run_id": best["run_id"],
        "best": best["name"],
        "baseline_run_id": baseline["run_id"],
        "primary_metric": primary,
        "beats_baseline": best is not baseline,
        "verdict": verdict,
    }
    if p.get("register_as"):
        from mlteam.registry import service as registry

        ctx.progress(0.9, f"registering {best['name']} as {p['register_as']}")
        with ctx.db.session() as s:
            mv = registry.register_version(
                s, ctx.actor(s), ctx.artifacts, p["slug"], p["register_as"], best["run_id"]
            )
            result["model_version"] = {"model": p["register_as"], "version": mv.version}
    ctx.progress(1.0, "done")
    return result
