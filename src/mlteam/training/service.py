"""Training: a job fits a non-ML baseline and model candidates on a dataset version, tunes them,
and says plainly whether the best one beats the baseline.

`start_training` checks everything it can up front (access, the version, the columns, the
baseline rule against the version's schema, the budget, the executor) and queues a job, so a
bad request is a 4xx and nothing is queued. `run_training_job` is the job's body, running in
a worker process as the user who started it, so the same access rules apply there. Problems
only the data can reveal (a constant target, a feature of nulls, too few rows for the split)
fail the job before any run, experiment or model version is created.

Runs (contracts.md): parent run (the job) → one run per candidate with its fitted model under
`model/` → one run per tuning trial under its candidate's run (params + CV score, no model).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from mlteam.core import jobs
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput
from mlteam.core.modelfiles import RuleModel, dump_sklearn
from mlteam.core.models import Job, User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.tracking import service as tracking
from mlteam.training.executors import EXECUTORS

TASKS = ("auto", "classification", "regression")
MAX_TRIALS = 1000
MAX_MINUTES = 24 * 60
MAX_WORKERS = 64


# `recipes` is imported where it is used: it brings scikit-learn and SciPy, ~2 s of every
# server start otherwise, paid now by the first training request of a process instead.


def _check_options(
    *,
    candidates: list[str] | None,
    trials: int | None,
    minutes: float | None,
    cv: int,
    workers: int,
    executor: str,
) -> list[str]:
    """The request's tuning and executor options; returns the candidate families to run."""
    from mlteam.training import recipes

    chosen = list(candidates) if candidates is not None else list(recipes.CANDIDATES)
    unknown = [c for c in chosen if c not in recipes.CANDIDATES]
    if unknown:
        raise InvalidInput(
            f"unknown candidates {unknown}: choose from {list(recipes.CANDIDATES)}",
            {"field": "candidates"},
        )
    if len(set(chosen)) != len(chosen):
        raise InvalidInput("candidates are listed more than once", {"field": "candidates"})
    # Every model is judged against the baseline: it always runs, first.
    chosen = ["baseline"] + [c for c in recipes.CANDIDATES if c in chosen and c != "baseline"]
    if trials is not None and (isinstance(trials, bool) or not 0 <= trials <= MAX_TRIALS):
        raise InvalidInput(f"trials must be between 0 and {MAX_TRIALS}", {"field": "trials"})
    if minutes is not None and (
        not isinstance(minutes, int | float)
        or math.isnan(minutes)
        or not 0 < minutes <= MAX_MINUTES
    ):
        raise InvalidInput(
            f"minutes must be more than 0 and at most {MAX_MINUTES}", {"field": "minutes"}
        )
    if not 2 <= cv <= 20:
        raise InvalidInput("cv (folds) must be between 2 and 20", {"field": "cv"})
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"workers must be between 1 and {MAX_WORKERS}", {"field": "workers"})
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor must be one of {list(EXECUTORS)}", {"field": "executor"})
    return chosen


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
    candidates: list[str] | None = None,
    baseline_rule: str | None = None,
    trials: int | None = None,
    minutes: float | None = None,
    cv: int = 3,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    store: ArtifactStore | None = None,
    default_ray_address: str | None = None,
) -> Job:
    """Queue a training job; returns the job to poll.

    `store` lets the baseline rule be parsed against the version's real column types;
    `default_ray_address` is the server's MLTEAM_RAY_ADDRESS.
    """
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
    if len(set(features)) != len(features):
        raise InvalidInput("features are listed more than once", {"field": "features"})
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {TASKS}", {"field": "task"})
    target_type = next(str(c["type"]) for c in dv.schema if c["name"] == target)
    numeric = ("int", "uint", "float", "double", "halffloat", "decimal")
    if task == "regression" and not target_type.startswith(numeric):
        raise InvalidInput(
            f"task 'regression' needs a numeric target; {target!r} holds {target_type} values",
            {"field": "task"},
        )
    if not 0.05 <= test_fraction <= 0.5:
        raise InvalidInput("test_fraction must be between 0.05 and 0.5", {"field": "test_fraction"})
    if register_as is not None:
        data.check_name(register_as, "register_as")
    chosen = _check_options(
        candidates=candidates,
        trials=trials,
        minutes=minutes,
        cv=cv,
        workers=workers,
        executor=executor,
    )
    if executor == "ray":
        ray_address = ray_address or default_ray_address
        if not ray_address:
            raise InvalidInput(
                "executor 'ray' needs ray_address (or the server's MLTEAM_RAY_ADDRESS)",
                {"field": "ray_address"},
            )
        if importlib.util.find_spec("ray") is None:
            raise InvalidInput(
                "the ray executor needs Ray installed on the server (pip install 'mlteam[ray]')",
                {"field": "executor"},
            )
    elif ray_address:
        raise InvalidInput("ray_address applies to executor 'ray'", {"field": "ray_address"})
    if store is not None:
        _check_data(store, dv, dataset, target, features, test_fraction, cv)
    if baseline_rule is not None:
        _check_rule(store, dv, dataset, baseline_rule, features)
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
            "candidates": chosen,
            "baseline_rule": baseline_rule,
            "trials": trials,
            "minutes": minutes,
            "cv": cv,
            "workers": workers,
            "executor": executor,
            "ray_address": ray_address,
        },
    )


def _check_data(
    store: ArtifactStore,
    dv: Any,
    dv_name: str,
    target: str,
    features: list[str],
    test_fraction: float,
    cv: int,
) -> None:
    """What the data must hold for any model to learn, checked in one DuckDB pass before a job
    is queued: a target with two values or more, no feature without a value, enough rows for
    the split. (The job checks again on the rows it actually splits.)"""
    import math

    import duckdb

    from mlteam.data.profile import q
    from mlteam.data.scan import arrow_dataset
    from mlteam.training import recipes

    what = f"{dv_name} v{dv.n}"
    counts = ", ".join(f"count({q(f)})" for f in features)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("v", arrow_dataset(store, dv))
        row = con.execute(
            f"SELECT count({q(target)}), count(DISTINCT {q(target)}), {counts} FROM v"
        ).fetchone()
    finally:
        con.close()
    labelled, distinct, filled = row[0], row[1], dict(zip(features, row[2:], strict=True))
    if labelled == 0:
        raise InvalidInput(f"target column {target!r} of {what} is empty", {"field": "target"})
    if distinct < 2:
        raise InvalidInput(
            f"target column {target!r} of {what} is constant: there is nothing to predict",
            {"field": "target"},
        )
    empty = [f for f, n in filled.items() if n == 0]
    if empty:
        raise InvalidInput(
            f"feature columns of {what} with only nulls: {empty}", {"field": "features"}
        )
    if dv.split is None:  # the job's seeded split: test and validation each test_fraction
        held_out = math.ceil(labelled * test_fraction)
        train = labelled - 2 * held_out
        need = max(recipes.MIN_TRAIN, 2 * cv)
        if train < need or held_out < 2:
            raise InvalidInput(
                f"too few rows for the split: {labelled} labelled rows give train={max(train, 0)}, "
                f"validation={held_out}, test={held_out} (need train >= {need}, "
                "validation >= 2, test >= 2)",
                {"field": "rows"},
            )


def _check_rule(
    store: ArtifactStore | None, dv: Any, dv_name: str, rule: str, features: list[str]
) -> None:
    """Parse and bind the rule with DuckDB against the version's feature columns only (a rule
    reading the target would be a leak), without reading any rows."""
    import duckdb

    from mlteam.data.profile import q
    from mlteam.data.scan import arrow_dataset

    if not rule.strip():
        raise InvalidInput("baseline_rule is empty", {"field": "baseline_rule"})
    if ";" in rule:
        raise InvalidInput(
            "baseline_rule must be one SQL expression (no ';')", {"field": "baseline_rule"}
        )
    if store is None:  # no store at hand (a direct service call): parse with declared types
        from mlteam.core.modelfiles import check_rule

        kinds = {"int64": "BIGINT", "double": "DOUBLE", "bool": "BOOLEAN"}
        types = {c["name"]: kinds.get(str(c["type"]), "VARCHAR") for c in dv.schema}
        check_rule(rule, {f: types[f] for f in features})
        return
    # An empty table with the version's schema, in a DuckDB that may not touch files or the
    # network: the rule is bound against real column types, and can read nothing else.
    empty = arrow_dataset(store, dv).schema.empty_table()
    cols = ", ".join(q(f) for f in features)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("v", empty)
        con.execute(f"SELECT ({rule}) AS p FROM (SELECT {cols} FROM v) LIMIT 0").fetchall()
    except duckdb.Error as err:
        raise InvalidInput(
            f"baseline_rule does not parse against the features of {dv_name} v{dv.n}: "
            f"{str(err).splitlines()[0]}",
            {"field": "baseline_rule"},
        ) from err
    finally:
        con.close()


# -- the job -----------------------------------------------------------------------------------


def _parts(
    table: Any, df: pd.DataFrame, split: dict[str, Any] | None, p: dict[str, Any], task: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train/validation/test: the version's recorded split if any, else split_frame by seed."""
    from mlteam.training import recipes

    target = p["target"]
    if split:
        import duckdb

        from mlteam.data.splits import part_sql

        con = duckdb.connect()
        try:
            con.execute("SET threads=1")  # rows come back in table order
            con.register("v", table)
            part = con.execute(f"SELECT {part_sql(split)} AS p FROM v").fetchnumpy()["p"]
        finally:
            con.close()
        part = pd.Series(part, index=df.index).astype(str)
        keep = df[target].notna()
        train, validation, test = (df[keep & (part == k)] for k in ("train", "validation", "test"))
        how = {
            "source": "version",
            "method": split["method"],
            "column": split["column"],
            **({"fractions": split["fractions"]} if "fractions" in split else {}),
            **({"cutoffs": split["cutoffs"]} if "cutoffs" in split else {}),
        }
        return train, validation, test, how
    frame = df[df[target].notna()]
    train, validation, test = recipes.split_frame(
        frame, target, task, float(p["test_fraction"]), int(p["seed"])
    )
    how = {
        "source": "split_frame",
        "function": "mlteam.training.recipes.split_frame",
        "test_fraction": float(p["test_fraction"]),
        "seed": int(p["seed"]),
        "rows_without_target_dropped": True,
    }
    return train, validation, test, how


class Recorder:
    """Writes runs for the job; each call its own short transaction."""

    def __init__(self, ctx: jobs.JobContext, experiment_id: str, p: dict[str, Any]) -> None:
        self.ctx, self.experiment_id, self.p = ctx, experiment_id, p

    def create(self, **kwargs: Any) -> str:
        from mlteam.tracking.models import Experiment

        with self.ctx.db.session() as s:
            actor = self.ctx.actor(s)
            exp = s.get(Experiment, self.experiment_id)
            return tracking.create_run(s, actor, exp, **kwargs).id

    def trial(self, parent_id: str, family: str, task: str, rec: dict[str, Any]) -> None:
        from mlteam.training import recipes

        primary, _ = recipes.PRIMARY[task]
        tags = {
            "mlteam.kind": "trial",
            "mlteam.trial.number": str(rec["number"]),
            "mlteam.trial.pruned": str(rec["pruned"]).lower(),
            "mlteam.trial.pid": str(rec["pid"]),
            "mlteam.trial.node": str(rec["node"]),
            "mlteam.executor": rec["executor"],
        }
        if rec.get("ray_task"):
            tags["mlteam.trial.ray_task"] = str(rec["ray_task"])
        with self.ctx.db.session() as s:
            actor = self.ctx.actor(s)
            from mlteam.tracking.models import Experiment

            run = tracking.create_run(
                s,
                actor,
                s.get(Experiment, self.experiment_id),
                name=f"{family} trial {rec['number']}",
                kind="tuning",
                parent_run_id=parent_id,
                inputs=[self.p["dataset_version_id"]],
                params={**rec["params"], "candidate": family, "trial": rec["number"]},
                tags=tags,
            )
            tracking.log_metrics(
                s,
                actor,
                run.id,
                [{"key": f"cv_{primary}", "value": rec["cv_score"]}]
                + [
                    {"key": f"cv_{primary}_fold_mean", "value": v, "step": i}
                    for i, v in enumerate(rec["values"])
                ]
                + [{"key": "trial_seconds", "value": rec["seconds"]}],
            )
            tracking.finish_run(s, actor, run.id, "FINISHED")

    def finish_candidate(
        self, run_id: str, model: Any, meta: dict[str, Any], onnx: bytes | None, metrics: dict
    ) -> None:
        """Artifacts first, then metrics and FINISHED: a crash leaves a RUNNING run, never a
        finished run without its model."""
        with tempfile.TemporaryDirectory(prefix="mlteam-model-") as tmp:
            files: list[tuple[str, str]] = []
            if meta["format"] == "sklearn-skops":
                path = os.path.join(tmp, "model.skops")
                dump_sklearn(model, path)
                files.append(("model/model.skops", path))
            if onnx is not None:
                path = os.path.join(tmp, "model.onnx")
                with open(path, "wb") as fh:
                    fh.write(onnx)
                files.append(("model/model.onnx", path))
            meta_path = os.path.join(tmp, "mlteam-model.json")
            with open(meta_path, "w") as fh:
                json.dump(meta, fh)
            files.append(("model/mlteam-model.json", meta_path))
            with self.ctx.db.session() as s:
                actor = self.ctx.actor(s)
                for dest, path in files:
                    tracking.put_artifact(s, actor, self.ctx.artifacts, run_id, dest, path)
                tracking.log_metrics(
                    s, actor, run_id, [{"key": k, "value": v} for k, v in metrics.items()]
                )
                tracking.finish_run(s, actor, run_id, "FINISHED")


def _fail_runs(ctx: jobs.JobContext, run_ids: list[str]) -> None:
    """Mark the job's unfinished runs FAILED (best effort: the job is failing anyway)."""
    for run_id in run_ids:
        try:
            with ctx.db.session() as s:
                run = tracking.get_run(s, ctx.actor(s), run_id)
                if run.status == "RUNNING":
                    tracking.finish_run(s, ctx.actor(s), run_id, "FAILED")
        except Exception:  # noqa: BLE001, S112 - never hide the job's own error
            continue


def run_training_job(ctx: jobs.JobContext) -> dict[str, Any]:
    from mlteam.training import recipes

    p = ctx.params
    ctx.progress(0.02, f"loading dataset {p['dataset']} v{p['version']}")
    with ctx.db.session() as s:
        dv = data.version_by_id(s, ctx.actor(s), p["dataset_version_id"])
        table = data.read_table(ctx.artifacts, dv)
        version_split = dv.split
    df = table.to_pandas()
    target, features, seed = p["target"], list(p["features"]), int(p["seed"])
    families = list(p.get("candidates") or ["baseline", "linear"])
    cv = int(p.get("cv") or 3)
    trials = p.get("trials")
    minutes = p.get("minutes")
    tune_on = bool(trials) or bool(minutes)
    # Everything the data can make impossible is checked before anything is created.
    recipes.check_training_frame(df, target, features)
    y = df[target].dropna()
    task = recipes.infer_task(y) if p["task"] == "auto" else p["task"]
    recipes.check_task(y, target, task)
    train, validation, test, how = _parts(table, df, version_split, p, task)
    recipes.check_parts(train, validation, test, target, task, cv if tune_on else 2)
    sig = recipes.signature(df[df[target].notna()], features, target, task)
    classes = sig["output"].get("classes")
    primary, higher = recipes.PRIMARY[task]
    ctx.log(
        f"task={task} train={len(train)} validation={len(validation)} test={len(test)} "
        f"features={len(features)} split={how['source']} candidates={families}"
    )

    with ctx.db.session() as s:
        exp = tracking.get_or_create_experiment(s, ctx.actor(s), p["slug"], p["experiment"])
        experiment_id = exp.id
    rec = Recorder(ctx, experiment_id, p)
    parent_id = rec.create(
        name=f"train {p['dataset']}@{p['version']}",
        kind="training",
        inputs=[p["dataset_version_id"]],
        params={
            "task": task,
            "target": target,
            "seed": seed,
            "candidates": json.dumps(families),
            "trials": trials,
            "minutes": minutes,
            "cv": cv,
            "workers": p.get("workers", 1),
            "executor": p.get("executor", "local"),
        },
        tags={"mlteam.job": ctx.job_id},
    )
    created: list[str] = [parent_id]
    pool = None
    try:
        if tune_on and any(f != "baseline" for f in families):
            from mlteam.training import executors

            workers = int(p.get("workers") or 1)
            ctx.progress(
                0.05, f"starting the {p.get('executor', 'local')} executor ({workers} workers)"
            )
            pool = executors.make(
                p.get("executor", "local"),
                train[[*features, target]].reset_index(drop=True),
                workers,
                p.get("ray_address") or ctx.settings.ray_address,
            )
        result = _train_candidates(
            ctx,
            rec,
            p,
            families,
            task,
            train,
            validation,
            test,
            how,
            sig,
            classes,
            parent_id,
            created,
            pool,
        )
        results = result["runs"]
        baseline = results[0]
        best = baseline
        for r in results[1:]:
            if recipes.better(task, r["metrics"], best["metrics"]):
                best = r
        _finish_candidates(ctx, rec, results, best, task, validation, features)
    except BaseException:
        _fail_runs(ctx, created)
        raise
    finally:
        if pool is not None:
            pool.close()
    verdict = (
        f"{best['name']} beats the baseline ({baseline['name']}) on validation {primary}: "
        f"{best['metrics'][primary]:.4f} vs {baseline['metrics'][primary]:.4f}"
        if best is not baseline
        else f"no candidate beats the baseline ({baseline['name']}) on validation {primary} "
        f"({baseline['metrics'][primary]:.4f}): the baseline is the better product"
    )
    ctx.log(verdict)
    with ctx.db.session() as s:
        actor = ctx.actor(s)
        tracking.log_metrics(
            s, actor, parent_id, [{"key": f"best_{primary}", "value": best["metrics"][primary]}]
        )
        tracking.set_tags(
            s,
            actor,
            parent_id,
            {
                "mlteam.best_run": best["run_id"],
                "mlteam.beats_baseline": str(best is not baseline).lower(),
            },
        )
        tracking.finish_run(s, actor, parent_id, "FINISHED")

    out: dict[str, Any] = {
        "task": task,
        "parent_run_id": parent_id,
        "runs": results,
        "best_run_id": best["run_id"],
        "best": best["name"],
        "baseline_run_id": baseline["run_id"],
        "baseline": baseline["name"],
        "primary_metric": primary,
        "higher_is_better": higher,
        "beats_baseline": best is not baseline,
        "verdict": verdict,
        "onnx": best.get("onnx"),
        "split": {
            **how,
            "rows": {"train": len(train), "validation": len(validation), "test": len(test)},
        },
        "tuning": result["tuning"],
    }
    if p.get("register_as"):
        from mlteam.registry import service as registry

        ctx.progress(0.95, f"registering {best['name']} as {p['register_as']}")
        with ctx.db.session() as s:
            mv = registry.register_version(
                s, ctx.actor(s), ctx.artifacts, p["slug"], p["register_as"], best["run_id"]
            )
            out["model_version"] = {"model": p["register_as"], "version": mv.version}
    ctx.progress(1.0, "done")
    return out


def _train_candidates(
    ctx: jobs.JobContext,
    rec: Recorder,
    p: dict[str, Any],
    families: list[str],
    task: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    how: dict[str, Any],
    sig: dict[str, Any],
    classes: list[Any] | None,
    parent_id: str,
    created: list[str],
    pool: Any,
) -> dict[str, Any]:
    from mlteam.training import recipes, tuning

    target, features, seed = p["target"], list(p["features"]), int(p["seed"])
    primary, _ = recipes.PRIMARY[task]
    rule = p.get("baseline_rule")
    trials, minutes, cv = p.get("trials"), p.get("minutes"), int(p.get("cv") or 3)
    workers = int(p.get("workers") or 1)
    common_params = {
        "target": target,
        "seed": seed,
        "test_fraction": p["test_fraction"],
        "task": task,
        "features": json.dumps(features),
        "split": json.dumps(how, sort_keys=True),
    }
    tune_on = pool is not None
    models = [f for f in families if f != "baseline"]
    n_tuned = max(1, len(models))
    results: list[dict[str, Any]] = []
    tuning_summary: dict[str, Any] = {
        "enabled": tune_on,
        "trials_budget": trials,
        "minutes_budget": minutes,
        "cv": cv,
        "workers": workers,
        "executor": p.get("executor", "local"),
        "candidates": {},
    }
    baseline_run = None
    for idx, family in enumerate(families):
        name = recipes.run_name(family, task, rule=bool(rule) and family == "baseline")
        kind = "baseline" if family == "baseline" else "model"
        base_frac = 0.1 + 0.8 * (max(0, idx - 1) / n_tuned)
        ctx.progress(base_frac, f"{name}: starting")
        params = recipes.default_params(family, task)
        run_params: dict[str, Any] = {**common_params, "candidate": name}
        if family == "baseline" and rule:
            run_params["baseline_rule"] = rule
        run_id = rec.create(
            name=name,
            kind="baseline" if kind == "baseline" else "training",
            parent_run_id=parent_id,
            inputs=[p["dataset_version_id"]],
            code_version={"entry_point": "mlteam.training.recipes", "recipe": name},
            params=run_params,
            tags={"mlteam.kind": kind, "mlteam.baseline_run": baseline_run or ""},
        )
        created.append(run_id)
        if family == "baseline":
            baseline_run = run_id
            with ctx.db.session() as s:
                tracking.set_tags(s, ctx.actor(s), run_id, {"mlteam.baseline_run": run_id})
        extra_metrics: dict[str, float] = {}
        if family != "baseline" and tune_on:
            span = 0.8 / n_tuned

            def on_trial(
                r: dict[str, Any],
                family: str = family,
                run_id: str = run_id,
                base: float = base_frac,
                span: float = span,
            ) -> None:
                rec.trial(run_id, family, task, r)
                done = r["number"] + 1
                frac = done / trials if trials else 0.5
                ctx.progress(
                    base + span * 0.9 * min(1.0, frac),
                    f"{family}: trial {done}{f'/{trials}' if trials else ''} "
                    f"cv {primary}={r['cv_score']:.4f}{' (pruned)' if r['pruned'] else ''}",
                )

            tuned = tuning.tune(
                family,
                task,
                train[[*features, target]].reset_index(drop=True),
                features,
                target,
                executor=pool,
                trials=trials or None,
                minutes=minutes,
                cv=cv,
                seed=seed,
                on_trial=on_trial,
            )
            if tuned["best_params"] is not None:
                params = tuned["best_params"]
                extra_metrics[f"cv_{primary}"] = tuned["best_cv"]
            tuning_summary["candidates"][name] = {
                "trials": len(tuned["trials"]),
                "pruned": int(tuned.get("pruned", 0)),
                "best_trial": tuned["best_trial"],
                "best_cv": tuned["best_cv"],
                "best_params": tuned["best_params"],
                "seconds": round(float(tuned.get("seconds", 0.0)), 3),
            }
        ctx.progress(
            base_frac + 0.75 / n_tuned if family != "baseline" else 0.1, f"{name}: fitting"
        )
        if family == "baseline" and rule:
            model: Any = RuleModel(rule, features, task, classes)
        else:
            model = recipes.pipeline(
                family, task, train, features, params, seed, n_jobs=_fit_threads(ctx)
            )
            model.fit(train[features], train[target])
        try:
            metrics = recipes.evaluate(task, model, validation[features], validation[target])
            test_metrics = recipes.evaluate(task, model, test[features], test[target])
        except Exception as err:  # the rule's SQL can fail on values (a cast, say)
            import duckdb

            if isinstance(err, duckdb.Error):
                raise InvalidInput(
                    f"baseline_rule failed on the data: {str(err).splitlines()[0]}",
                    {"field": "baseline_rule"},
                ) from err
            raise
        meta: dict[str, Any] = {
            "format": "sql-rule" if family == "baseline" and rule else "sklearn-skops",
            "signature": sig,
            "target": target,
            "candidate": name,
            "kind": kind,
        }
        if meta["format"] == "sql-rule":
            meta["expression"] = rule
        if family == "baseline":
            meta.update(onnx=None, onnx_note="baselines are not exported to ONNX")
        with ctx.db.session() as s:
            tracking.log_params(s, ctx.actor(s), run_id, {k: _param(v) for k, v in params.items()})
        all_metrics = {
            **metrics,
            **{f"test_{k}": v for k, v in test_metrics.items()},
            **extra_metrics,
        }
        ctx.log(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        results.append(
            {
                "run_id": run_id,
                "name": name,
                "kind": kind,
                "metrics": metrics,
                "test_metrics": test_metrics,
                "params": params,
                # written once the best is known (only the best is exported to ONNX)
                "_family": family,
                "_model": model,
                "_meta": meta,
                "_metrics": all_metrics,
            }
        )
    return {"runs": results, "tuning": tuning_summary}


def _finish_candidates(
    ctx: jobs.JobContext,
    rec: Recorder,
    results: list[dict[str, Any]],
    best: dict[str, Any],
    task: str,
    validation: pd.DataFrame,
    features: list[str],
) -> None:
    """Export the best candidate to ONNX (kept only if it answers like the native model),
    then write every candidate's model files and finish its run."""
    from mlteam.training import export

    for r in results:
        family, model, meta = r.pop("_family"), r.pop("_model"), r.pop("_meta")
        metrics = r.pop("_metrics")
        graph = None
        if family != "baseline":
            if r is best:
                ctx.progress(0.9, f"{r['name']}: ONNX export and check")
                graph, onnx_meta = export.export(model, family, task, validation, features)
                meta.update(onnx_meta)
                ctx.log(
                    f"{r['name']}: ONNX export kept (max abs diff "
                    f"{onnx_meta['onnx']['max_abs_diff']:.2g} on {onnx_meta['onnx']['rows_checked']}"
                    " validation rows)"
                    if graph is not None
                    else f"{r['name']}: {onnx_meta['onnx_note']}"
                )
            else:
                meta.update(onnx=None, onnx_note="not exported: only the best candidate is")
        r["onnx"] = meta.get("onnx") is not None
        r["onnx_note"] = meta.get("onnx_note")
        rec.finish_candidate(r["run_id"], model, meta, graph, metrics)


def _fit_threads(ctx: jobs.JobContext) -> int:
    """Threads for a final fit: this machine's cores shared among the jobs it runs at once.
    (LightGBM's OpenMP threads spin when the machine is oversubscribed: a fit that takes a
    second alone can take ten beside another job using every core.)"""
    return max(1, (os.cpu_count() or 1) // max(1, int(ctx.settings.workers)))


def _param(v: Any) -> str:
    return "None" if v is None else str(v)
