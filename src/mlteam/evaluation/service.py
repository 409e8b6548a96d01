"""Evaluations of model versions: a job runs the suite (suite.py), checks the gates (gates.py),
stores the report as JSON and HTML artifacts and one `Evaluation` row; promotions consult it.

`start_evaluation` checks what it can at submission (access, the version, the dataset, the
gate set, the sensitive and slice columns against the dataset's schema) and queues a job;
`run_evaluation_job` is the job's body, running as the user who asked. The row is written
last, after both report files are in place, so a failed job leaves no half-written evaluation.

Which rows are the test rows: the evaluated dataset version's recorded split (its `test`
part) if it has one; else, for the version the model was trained on, the training recipe's
own split (`mlteam.training.recipes.split_frame` with the run's `target`, `task`,
`test_fraction` and `seed`); else the whole dataset version, with a note in the report.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit, jobs
from mlteam.core.access import Perm
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.db import new_id
from mlteam.core.errors import Conflict, InvalidInput, MlteamError, NotFound
from mlteam.core.models import Job, User
from mlteam.data import service as data
from mlteam.evaluation import gates
from mlteam.evaluation.models import Evaluation
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.tracking import service as tracking

CHAMPION_ALIASES = ("champion", "production")
MAX_BOOTSTRAP = 10_000
MAX_SLICE_COLUMNS = 20


# -- submission ---------------------------------------------------------------------------------


def _training_inputs(mv: Any) -> list[str]:
    return [d["id"] for d in (mv.lineage or {}).get("dataset_versions") or [] if d.get("id")]


def _target_and_features(mv: Any, params: dict[str, str]) -> tuple[str | None, list[str]]:
    sig = mv.signature or {}
    target = params.get("target") or (sig.get("output") or {}).get("name")
    features: list[str] = []
    if params.get("features"):
        try:
            loaded = json.loads(params["features"])
            if isinstance(loaded, list):
                features = [str(f) for f in loaded]
        except ValueError:
            features = []
    if not features:
        features = [
            i["name"] for i in sig.get("inputs") or [] if isinstance(i, dict) and "name" in i
        ]
    return target, features


def _run_params(session: Session, actor: User, mv: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The params and tags of the version's run (the parent's params fill gaps, e.g. `task`)."""
    if not mv.run_id:
        return {}, {}
    try:
        run = tracking.get_run(session, actor, mv.run_id)
    except NotFound:
        return {}, {}
    params = dict(tracking.run_params(session, run))
    tags = dict(tracking.run_tags(session, run))
    if run.parent_run_id:
        try:
            parent = tracking.get_run(session, actor, run.parent_run_id)
            params = {**tracking.run_params(session, parent), **params}
        except NotFound:
            pass
    return params, tags


def start_evaluation(
    session: Session,
    actor: User,
    slug: str,
    model: str,
    version: int | str,
    *,
    dataset: str | None = None,
    dataset_version: int | str = "latest",
    gate_set: str | None = None,
    target: str | None = None,
    slice_columns: list[str] | None = None,
    sensitive: str | None = None,
    bootstrap: int = 200,
    seed: int = 0,
) -> Job:
    """Queue an evaluation of `model` `version`; returns the job to poll.

    `target` is needed only when neither the version's run params nor its signature name
    it (a model logged with the MLflow client, say)."""
    project = projects.resolve(session, actor, slug, Perm.evaluate)
    mv = registry.get_version(session, actor, slug, model, version)
    if isinstance(bootstrap, bool) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise InvalidInput(f"bootstrap must be from 0 to {MAX_BOOTSTRAP}", {"field": "bootstrap"})
    slice_columns = list(slice_columns or [])
    if len(slice_columns) > MAX_SLICE_COLUMNS:
        raise InvalidInput(f"at most {MAX_SLICE_COLUMNS} slice columns", {"field": "slice_columns"})
    # The gate set: the one asked for, else the project's required one (else none).
    name = gate_set or project.required_gate_set
    gs = None
    if name:
        gs = gates.current_for(session, project.id, name)
        if gs is None:
            raise NotFound(f"gate set {name} not found")
    # The dataset: the one asked for, else the one the version was trained on.
    if dataset:
        dv = data.get_version(session, actor, slug, dataset, dataset_version)
    else:
        inputs = _training_inputs(mv)
        if not inputs:
            raise InvalidInput(
                f"{model} v{mv.version} records no training dataset; give dataset (and version)",
                {"field": "dataset"},
            )
        dv = data.version_by_id(session, actor, inputs[0])
    columns = [c["name"] for c in dv.schema or []]
    label = f"{data.dataset_name(session, dv)} v{dv.n}"
    params, _ = _run_params(session, actor, mv)
    recorded, features = _target_and_features(mv, params)
    target = target or recorded
    if not target:
        raise InvalidInput(
            f"{model} v{mv.version} records no target column (no run param, no signature "
            "output): give target",
            {"field": "target"},
        )
    if columns:
        if target not in columns:
            raise InvalidInput(
                f"target column {target!r} is not in {label} (columns: {columns})",
                {"field": "dataset"},
            )
        missing = [f for f in features if f not in columns]
        if missing:
            raise InvalidInput(
                f"feature columns of the model not in {label}: {missing}", {"field": "dataset"}
            )
        if sensitive is not None and sensitive not in columns:
            raise InvalidInput(
                f"sensitive column {sensitive!r} is not in {label} (columns: {columns})",
                {"field": "sensitive"},
            )
        bad = [c for c in slice_columns if c not in columns]
        if bad:
            raise InvalidInput(f"slice columns not in {label}: {bad}", {"field": "slice_columns"})
    return jobs.submit(
        session,
        actor,
        project.id,
        "evaluation.evaluate",
        {
            "slug": slug,
            "model": model,
            "version": mv.version,
            "version_id": mv.id,
            "dataset_version_id": dv.id,
            "dataset": label,
            "gate_set": gs.name if gs else None,
            "gate_set_version": gs.version if gs else None,
            "target": target,
            "slice_columns": slice_columns,
            "sensitive": sensitive,
            "bootstrap": int(bootstrap),
            "seed": int(seed),
        },
    )


# -- the job ------------------------------------------------------------------------------------


def _test_rows(
    df: pd.DataFrame,
    split: dict[str, Any] | None,
    trained_on_this: bool,
    params: dict[str, str],
    target: str,
    task: str,
    notes: list[str],
    label: str,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(test, train) of the evaluated dataset version; see the module docstring."""
    if split:
        import duckdb

        from mlteam.data.splits import part_sql

        con = duckdb.connect(config={"enable_external_access": False})
        try:
            con.execute("SET threads=1")  # rows come back in table order
            con.register("v", df)
            parts = con.execute(f"SELECT {part_sql(split)} AS p FROM v").fetchnumpy()["p"]
        finally:
            con.close()
        parts = pd.Series(parts, index=df.index).astype(str)
        test, train = df[parts == "test"], df[parts != "test"]
        if len(test):
            notes.append(f"test rows: the recorded split of {label} ({len(test)} rows)")
            return test, train if trained_on_this else None
        notes.append(f"the recorded split of {label} has no test rows")
    if trained_on_this and params.get("seed") and params.get("test_fraction"):
        from mlteam.training import recipes

        frame = df[df[target].notna()]
        try:
            tr, val, test = recipes.split_frame(
                frame, target, task, float(params["test_fraction"]), int(params["seed"])
            )
        except (ValueError, TypeError) as err:
            notes.append(f"could not repeat the training split ({err})")
        else:
            notes.append(
                f"test rows: the training recipe's split of {label} (test_fraction="
                f"{params['test_fraction']}, seed={params['seed']}; {len(test)} rows)"
            )
            return test, pd.concat([tr, val])
    notes.append(
        f"test rows: all {len(df)} rows of {label} (which rows the model was tested on is not "
        "known: no recorded split and no training split parameters); if the model was trained "
        "on some of them its figures are optimistic"
    )
    return df, None


def _fallback_baseline(task: str, fit_on: pd.DataFrame, target: str, features: list[str]) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    est = (
        DummyClassifier(strategy="most_frequent") if task == "classification" else DummyRegressor()
    )
    rows = fit_on[fit_on[target].notna()]
    return est.fit(rows[features], rows[target])


def _load(store: ArtifactStore, key: str) -> Any:
    """A version's model: by its mlteam-model.json, else a bare skops file (MLflow's sklearn
    flavor saved with serialization_format="skops"); never a pickle."""
    from mlteam.core.modelfiles import load_model, load_sklearn

    if store.exists(f"{key}/mlteam-model.json"):
        return load_model(store, key)
    if store.exists(f"{key}/model.skops"):
        return load_sklearn(store.read_bytes(f"{key}/model.skops"))
    raise InvalidInput(
        "the version has no model file mlteam loads safely (mlteam-model.json or a skops "
        "model.skops); pickled models are not evaluated",
        {"field": "version"},
    )


def _gates_html(ev: dict[str, Any]) -> str:
    """The gate results as an HTML section (escaped), put at the top of the report page."""
    if not ev.get("gate_set"):
        return ""
    verdict = "PASSED" if ev["passed"] else "FAILED"
    color = "#1e7e34" if ev["passed"] else "#b03a2e"
    rows = "".join(
        f"<tr><td>{escape(g['name'])}</td><td style='color:{'#1e7e34' if g['passed'] else '#b03a2e'}'>"
        f"{'pass' if g['passed'] else 'FAIL'}</td><td>{escape(g['message'])}</td></tr>"
        for g in ev["gates"]
    )
    return (
        f"<section id='gates'><h2>Gates: {escape(ev['gate_set'])} v{ev['gate_set_version']} — "
        f"<span style='color:{color}'>{verdict}</span></h2>"
        f"<table><tr><th>gate</th><th>result</th><th>detail</th></tr>{rows}</table></section>"
    )


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    def values(block: dict | None) -> dict[str, float | None] | None:
        if not block:
            return None
        return {k: (v or {}).get("value") for k, v in (block.get("metrics") or {}).items()}

    bv = report.get("business_value") or {}
    return {
        "task": report.get("task"),
        "rows": report.get("rows"),
        "primary_metric": report.get("primary_metric"),
        "metrics": values(report),
        "baseline": values(report.get("baseline")),
        "champion": values(report.get("champion")),
        "champion_version": (report.get("champion") or {}).get("version"),
        "ship": bv.get("ship"),
        "statement": bv.get("statement"),
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def run_evaluation_job(ctx: jobs.JobContext) -> dict[str, Any]:
    p = ctx.params
    notes: list[str] = []
    ctx.progress(0.02, f"loading {p['model']} v{p['version']}")
    with ctx.db.session() as s:
        actor = ctx.actor(s)
        mv = registry.version_by_id(s, actor, p["version_id"])
        key, version_id = mv.artifact_key, mv.id
        params, tags = _run_params(s, actor, mv)
        recorded, features = _target_and_features(mv, params)
        target = p.get("target") or recorded
        sig_task = (mv.signature or {}).get("task")
        trained_on = _training_inputs(mv)
        dv = data.version_by_id(s, actor, p["dataset_version_id"])
        split = dict(dv.split) if dv.split else None
        table = data.read_table(ctx.artifacts, dv)
        project = projects.by_id(s, ctx.project_id)
        value_matrix = dict(project.value_matrix or {})
        invariances = gates.project_invariances(s, ctx.project_id)
        rules: list[dict[str, Any]] = []
        if p.get("gate_set"):
            rules = list(
                gates.get_gate_set(s, actor, p["slug"], p["gate_set"], p["gate_set_version"]).rules
            )
        champion_key = champion_version = None
        for alias in CHAMPION_ALIASES:
            try:
                champ = registry.get_version(s, actor, p["slug"], p["model"], alias)
            except NotFound:
                continue
            if champ.id != mv.id:
                champion_key, champion_version = champ.artifact_key, champ.version
                notes.append(f"champion: v{champ.version} (alias {alias})")
            break
        baseline_key = None
        baseline_run = tags.get("mlteam.baseline_run")
        if baseline_run:
            try:
                baseline_key = tracking.artifact_key(
                    tracking.get_run(s, actor, baseline_run), "model"
                )
            except NotFound:
                notes.append(f"baseline run {baseline_run} not found")
    if not target:
        raise InvalidInput("the model version records no target column", {"field": "version"})
    df = table.to_pandas()
    if target not in df.columns:
        raise InvalidInput(
            f"target column {target!r} is not in {p['dataset']}", {"field": "dataset"}
        )
    task = params.get("task") or sig_task
    if task not in ("classification", "regression"):
        from mlteam.training import recipes

        task = recipes.infer_task(df[target].dropna())
    test, train = _test_rows(
        df, split, p["dataset_version_id"] in trained_on, params, target, task, notes, p["dataset"]
    )

    model = _load(ctx.artifacts, key)
    if not features:  # no signature (an MLflow-logged model): what the model was fitted on
        names = getattr(model, "feature_names_in_", None)
        features = (
            [str(f) for f in names] if names is not None else [c for c in df.columns if c != target]
        )
        notes.append(f"features: {', '.join(features)} (not recorded with the version)")
    # imported once the model loaded: a version nothing can load fails fast
    from mlteam.evaluation.report import render_html
    from mlteam.evaluation.suite import run_suite

    baseline = None
    if baseline_key:
        try:
            baseline = _load(ctx.artifacts, baseline_key)
            notes.append(f"baseline: the training run's baseline (run {baseline_run})")
        except MlteamError as err:
            notes.append(f"baseline model could not be loaded ({err.message})")
    if baseline is None:
        fit_on = train if train is not None and len(train) else test
        baseline = _fallback_baseline(task, fit_on, target, features)
        what = "majority class" if task == "classification" else "mean"
        where = "the training rows" if fit_on is train else "the evaluated rows"
        notes.append(f"baseline: {what} fitted on {where}")
    champion = None
    if champion_key:
        try:
            champion = _load(ctx.artifacts, champion_key)
        except MlteamError as err:
            notes.append(f"champion v{champion_version} could not be loaded ({err.message})")
            champion_version = None

    report = run_suite(
        task,
        model,
        test,
        target,
        features,
        train=train,
        baseline=baseline,
        champion=champion,
        champion_version=champion_version if champion is not None else None,
        value_matrix=value_matrix or None,
        slice_columns=p.get("slice_columns") or [],
        sensitive=p.get("sensitive"),
        invariances=[i for i in invariances if i["column"] in test.columns],
        bootstrap=int(p.get("bootstrap", 200)),
        seed=int(p.get("seed", 0)),
        progress=lambda f, m: ctx.progress(0.1 + 0.75 * f, m),
    )
    skipped = [i["name"] for i in invariances if i["column"] not in test.columns]
    if skipped:
        notes.append(f"invariance tests skipped (column not in the data): {', '.join(skipped)}")

    ctx.progress(0.9, "checking gates and writing the report")
    results = gates.check_gates(rules, report) if p.get("gate_set") else []
    passed = all(g["passed"] for g in results) if p.get("gate_set") else None
    eval_id = new_id()
    meta = {
        "id": eval_id,
        "model": p["model"],
        "version": p["version"],
        "dataset": p["dataset"],
        "gate_set": p.get("gate_set"),
        "gate_set_version": p.get("gate_set_version"),
        "passed": passed,
        "gates": results,
        "notes": notes,
    }
    report = _json_safe({**report, "evaluation": meta})
    prefix = f"evaluations/{ctx.project_id}/{eval_id}"
    report_key = ctx.artifacts.put_bytes(
        json.dumps(report, indent=1, allow_nan=False).encode(), f"{prefix}/report.json"
    )
    html = render_html(report, f"{p['model']} v{p['version']} on {p['dataset']}")
    section = _gates_html(meta)
    if section:
        at = html.find("</h1>")
        html = html[: at + 5] + section + html[at + 5 :] if at >= 0 else section + html
    html_key = ctx.artifacts.put_bytes(html.encode(), f"{prefix}/report.html")

    summary = _summary(report)
    options = {
        k: p.get(k)
        for k in ("target", "slice_columns", "sensitive", "bootstrap", "seed", "dataset")
    }
    options["target"] = target
    for attempt in range(3):
        try:
            with ctx.db.session() as s:
                number = _store(
                    s,
                    ctx,
                    eval_id,
                    version_id,
                    p,
                    passed,
                    results,
                    summary,
                    options,
                    notes,
                    report_key,
                    html_key,
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
    ctx.progress(1.0, "done")
    failed = [g["name"] for g in results if not g["passed"]]
    if p.get("gate_set"):
        ctx.log(
            f"gate set {p['gate_set']} v{p['gate_set_version']}: "
            + ("passed" if passed else f"FAILED ({', '.join(failed)})")
        )
    return {
        "evaluation": number,
        "id": eval_id,
        "model": p["model"],
        "version": p["version"],
        "gate_set": p.get("gate_set"),
        "passed": passed,
        "failed_gates": failed,
        "gates": results,
        "summary": summary,
        "notes": notes,
    }


def _store(
    s: Session,
    ctx: jobs.JobContext,
    eval_id: str,
    version_id: str,
    p: dict[str, Any],
    passed: bool | None,
    results: list[dict[str, Any]],
    summary: dict[str, Any],
    options: dict[str, Any],
    notes: list[str],
    report_key: str,
    html_key: str,
) -> int:
    """Insert the evaluation row and its audit events in one transaction; its number."""
    actor = ctx.actor(s)
    registry.version_by_id(s, actor, version_id)  # still there, still readable
    number = (
        s.scalar(select(func.max(Evaluation.number)).where(Evaluation.project_id == ctx.project_id))
        or 0
    ) + 1
    ev = Evaluation(
        id=eval_id,
        project_id=ctx.project_id,
        number=number,
        model_version_id=version_id,
        job_id=ctx.job_id,
        dataset_version_id=p["dataset_version_id"],
        gate_set=p.get("gate_set"),
        gate_set_version=p.get("gate_set_version"),
        passed=passed,
        gates=_json_safe(results),
        summary=_json_safe(summary),
        options=options,
        notes=notes,
        report_key=report_key,
        html_key=html_key,
        created_by=actor.id,
    )
    s.add(ev)
    s.flush()
    target = f"evaluation:{number} ({p['model']} v{p['version']})"
    audit.record(
        s,
        actor,
        "evaluation.create",
        target,
        project_id=ctx.project_id,
        detail={
            "model": p["model"],
            "version": p["version"],
            "dataset": p["dataset"],
            "job": ctx.job_id,
        },
    )
    if p.get("gate_set"):
        audit.record(
            s,
            actor,
            "evaluation.gates",
            target,
            project_id=ctx.project_id,
            detail={
                "gate_set": p["gate_set"],
                "gate_set_version": p.get("gate_set_version"),
                "passed": passed,
                "failed": [g["name"] for g in results if not g["passed"]],
            },
        )
    return number


# -- reading ------------------------------------------------------------------------------------


def list_evaluations(
    session: Session,
    actor: User,
    slug: str,
    model: str | None = None,
    version: int | str | None = None,
) -> list[Evaluation]:
    """Evaluations of the project (or of one model, or one version), newest first."""
    project = projects.resolve(session, actor, slug, Perm.model_read)
    q = select(Evaluation).where(Evaluation.project_id == project.id)
    if model is not None and version is not None:
        mv = registry.get_version(session, actor, slug, model, version)
        q = q.where(Evaluation.model_version_id == mv.id)
    elif model is not None:
        ids = [v.id for v in registry.list_versions(session, actor, slug, model)]
        q = q.where(Evaluation.model_version_id.in_(ids))
    return list(session.scalars(q.order_by(Evaluation.number.desc())))


def get_evaluation(session: Session, actor: User, slug: str, number: int) -> Evaluation:
    project = projects.resolve(session, actor, slug, Perm.model_read)
    ev = session.scalar(
        select(Evaluation).where(Evaluation.project_id == project.id, Evaluation.number == number)
    )
    if ev is None:
        raise NotFound(f"evaluation {number} not found in {slug}")
    return ev


def report_bytes(
    session: Session, actor: User, store: ArtifactStore, slug: str, number: int, fmt: str
) -> bytes:
    """The stored report of an evaluation: `json` or `html`."""
    ev = get_evaluation(session, actor, slug, number)
    if fmt not in ("json", "html"):
        raise InvalidInput("format must be json or html", {"field": "format"})
    return store.read_bytes(ev.report_key if fmt == "json" else ev.html_key)


def describe(session: Session, ev: Evaluation, slug: str) -> dict[str, Any]:
    """An evaluation as the API shows it, with the API paths of its two reports."""
    from mlteam.registry.models import ModelVersion

    mv = session.get(ModelVersion, ev.model_version_id)
    reports = f"/api/v1/projects/{slug}/evaluations/{ev.number}"
    return {
        "id": ev.id,
        "number": ev.number,
        "model": registry.model_name(session, mv) if mv else "",
        "version": mv.version if mv else None,
        "dataset": (ev.options or {}).get("dataset"),
        "dataset_version_id": ev.dataset_version_id,
        "gate_set": ev.gate_set,
        "gate_set_version": ev.gate_set_version,
        "passed": ev.passed,
        "gates": ev.gates,
        "failed_gates": [g["name"] for g in ev.gates or [] if not g.get("passed")],
        "summary": ev.summary,
        "options": ev.options,
        "notes": ev.notes,
        "job_id": ev.job_id,
        "report_json": f"{reports}/report.json",
        "report_html": f"{reports}/report.html",
        "created_by": gates._email(session, ev.created_by),
        "created_at": ev.created_at,
    }


def of_version(session: Session, mv: Any) -> list[dict[str, Any]]:
    """The evaluations of a model version in brief, newest first, with links to their reports:
    what the registry shows on the version and its model card (the caller checked access)."""
    slug = projects.by_id(session, mv.project_id).slug
    rows = session.scalars(
        select(Evaluation)
        .where(Evaluation.model_version_id == mv.id)
        .order_by(Evaluation.number.desc())
    )
    out = []
    for ev in rows:
        summary = ev.summary or {}
        primary = summary.get("primary_metric")
        reports = f"/api/v1/projects/{slug}/evaluations/{ev.number}"
        out.append(
            {
                "number": ev.number,
                "gate_set": ev.gate_set,
                "gate_set_version": ev.gate_set_version,
                "passed": ev.passed,
                "failed_gates": [g["name"] for g in ev.gates or [] if not g.get("passed")],
                "primary_metric": primary,
                "value": (summary.get("metrics") or {}).get(primary),
                "ship": summary.get("ship"),
                "statement": summary.get("statement"),
                "report_html": f"{reports}/report.html",
                "report_json": f"{reports}/report.json",
                "created_at": ev.created_at,
            }
        )
    return out


# -- the promotion rule -------------------------------------------------------------------------


def check_promotable(session: Session, project: Any, mv: Any, name: str) -> None:
    """Refuse (Conflict) a promotion of `mv` unless its latest evaluation against the
    project's required gate set — at the set's current version — passed. No required gate
    set: nothing to check. Called by registry.promotions.create_promotion."""
    required = project.required_gate_set
    if not required:
        return
    latest = session.scalar(
        select(Evaluation)
        .where(Evaluation.model_version_id == mv.id, Evaluation.gate_set == required)
        .order_by(Evaluation.number.desc())
        .limit(1)
    )
    how = f"run `mlteam evaluate {name} {mv.version} --project {project.slug}`"
    if latest is None:
        raise Conflict(
            f"promotion refused: {name} v{mv.version} has no evaluation against the required "
            f"gate set {required!r}; {how}",
            {"gate_set": required, "evaluation": None, "failed": []},
        )
    current = gates.current_for(session, project.id, required)
    if current is not None and latest.gate_set_version != current.version:
        raise Conflict(
            f"promotion refused: {name} v{mv.version} was last evaluated against version "
            f"{latest.gate_set_version} of gate set {required!r}, which is now at version "
            f"{current.version}; {how}",
            {"gate_set": required, "evaluation": latest.number, "failed": []},
        )
    if not latest.passed:
        failed = [g for g in latest.gates or [] if not g.get("passed")]
        raise Conflict(
            f"promotion refused: {name} v{mv.version} failed the required gate set "
            f"{required!r} in evaluation #{latest.number}; failed gates: "
            + "; ".join(f"{g['name']} ({g['message']})" for g in failed),
            {
                "gate_set": required,
                "evaluation": latest.number,
                "failed": [{"name": g["name"], "message": g["message"]} for g in failed],
            },
        )


def count_passing(session: Session, project_id: str) -> int:
    """How many evaluations of the project passed their gates (for the project's phase)."""
    return int(
        session.scalar(
            select(func.count(Evaluation.id)).where(
                Evaluation.project_id == project_id, Evaluation.passed.is_(True)
            )
        )
        or 0
    )
