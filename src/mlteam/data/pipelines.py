"""Pipelines: ordered SQL steps in a sealed DuckDB over named inputs, checks, then publish.

A pipeline names its inputs (`{alias: "source:NAME" | "dataset:NAME[@N]"}`), its steps
(`[{name, sql}]`, each a SELECT that may read the inputs and earlier steps by name and
`$param` parameters), its parameters with defaults, the dataset its last step becomes, the
checks that output must pass, and when it runs: on demand, on a cron `schedule`, and/or when an
input dataset gets a new version (`trigger_on_new_version`).

Each run is a job ("data.pipeline") running `run_pipeline_job` in a worker process as the user
who started it (the pipeline's author for scheduled runs). Nothing is published unless every
step and every check passed; publishing is `data.service.publish`, so a crash before it leaves
nothing, and the same output twice is the same version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import datetime
from typing import Any

import duckdb
from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlteam.core import audit, jobs
from mlteam.core.access import Perm
from mlteam.core.db import utcnow
from mlteam.core.errors import Conflict, InvalidInput, NotFound, UserCodeError
from mlteam.core.models import Job, User
from mlteam.data import service as data
from mlteam.data import sources
from mlteam.data.checks import check_definitions, run_checks
from mlteam.data.models import Dataset, DatasetVersion
from mlteam.data.pipeline_models import Pipeline, PipelineRun
from mlteam.data.profile import profile_parquet
from mlteam.data.sandbox import IDENT, PARAM, Sandbox, check_select
from mlteam.data.secrets import SecretBox
from mlteam.projects import service as projects

KIND = "data.pipeline"
STEP_TIMEOUT = 3600.0  # seconds a step may run unless its definition says otherwise
INPUT = re.compile(r"^(?:(source|dataset):)?([A-Za-z0-9][A-Za-z0-9_.-]{0,127}?)(?:@(\d+|latest))?$")
FIELDS = (
    "name",
    "description",
    "inputs",
    "steps",
    "params",
    "output",
    "checks",
    "schedule",
    "trigger_on_new_version",
)


def _bad(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, {"field": field})


def parse_input(alias: str, spec: Any) -> dict[str, Any]:
    """`"source:NAME"`, `"dataset:NAME@3"`, `"NAME"` (a dataset) or the object form."""
    field = f"inputs.{alias}"
    if isinstance(spec, dict):
        kind, name = spec.get("kind", "dataset"), spec.get("name")
        version = spec.get("version", "latest")
    elif isinstance(spec, str) and (m := INPUT.match(spec)):
        kind, name, version = m.group(1) or "dataset", m.group(2), m.group(3) or "latest"
    else:
        raise _bad(f"{field} must be 'source:NAME' or 'dataset:NAME[@VERSION]'", field)
    if kind not in ("source", "dataset") or not isinstance(name, str):
        raise _bad(f"{field} must name a source or a dataset", field)
    data.check_name(name, field)
    if kind == "source":
        if version not in ("latest", None):
            raise _bad(f"{field}: a source has no versions", field)
        return {"kind": "source", "name": name}
    if version != "latest":
        try:
            version = int(version)
        except (TypeError, ValueError):
            raise _bad(f"{field}: version must be a number or 'latest'", field) from None
        if version < 1:
            raise _bad(f"{field}: version must be 1 or more", field)
    return {"kind": "dataset", "name": name, "version": version}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def next_fire(schedule: str, after: datetime) -> datetime:
    return croniter(schedule, after).get_next(datetime)


def check_definition(session: Session, project_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The definition normalised; every fault is an `InvalidInput` naming its field."""
    unknown = set(spec) - set(FIELDS)
    if unknown:
        raise _bad(f"unknown fields {sorted(unknown)}", sorted(unknown)[0])
    name = spec.get("name")
    if not isinstance(name, str):
        raise _bad("name is required", "name")
    data.check_name(name)
    output = spec.get("output") or name
    if not isinstance(output, str):
        raise _bad("output must be a dataset name", "output")
    data.check_name(output, "output")

    raw_inputs = spec.get("inputs")
    if not isinstance(raw_inputs, dict) or not raw_inputs:
        raise _bad("inputs must name at least one source or dataset", "inputs")
    inputs: dict[str, Any] = {}
    for alias, value in raw_inputs.items():
        if not IDENT.match(alias):
            raise _bad(f"input alias {alias!r} must be a SQL identifier", f"inputs.{alias}")
        inputs[alias] = parse_input(alias, value)
        if inputs[alias]["kind"] == "source":
            sources.source_in(session, project_id, inputs[alias]["name"])  # NotFound if absent

    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise _bad("params must be an object of name: default value", "params")
    for key, value in params.items():
        if not IDENT.match(key):
            raise _bad(f"parameter name {key!r} must be an identifier", f"params.{key}")
        if not _scalar(value):
            raise _bad(
                f"parameter {key} must be a number, text, true/false or null", f"params.{key}"
            )

    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise _bad("steps must be a non-empty list of {name, sql}", "steps")
    seen = set(inputs)
    out_steps = []
    for i, step in enumerate(steps):
        field = f"steps[{i}]"
        if not isinstance(step, dict) or set(step) - {"name", "sql", "timeout_seconds"}:
            raise _bad(f"{field} must be an object with name, sql (and timeout_seconds)", field)
        timeout = step.get("timeout_seconds", STEP_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise _bad(
                f"{field}.timeout_seconds must be a positive number", f"{field}.timeout_seconds"
            )
        step_name = step.get("name") or f"step{i + 1}"
        if not isinstance(step_name, str) or not IDENT.match(step_name):
            raise _bad(f"{field}.name must be a SQL identifier", f"{field}.name")
        if step_name in seen:
            raise _bad(f"{field}.name {step_name!r} is already an input or step", f"{field}.name")
        seen.add(step_name)
        sql = step.get("sql")
        check_select(sql, f"{field}.sql")
        for p in PARAM.findall(sql):
            if p not in params:
                raise _bad(f"{field}.sql uses ${p}, which is not among params", f"{field}.sql")
        out_steps.append({"name": step_name, "sql": sql, "timeout_seconds": timeout})

    schedule = spec.get("schedule") or None
    if schedule is not None and (not isinstance(schedule, str) or not croniter.is_valid(schedule)):
        raise _bad("schedule must be a cron expression such as '0 3 * * *' (UTC)", "schedule")
    trigger = spec.get("trigger_on_new_version", False)
    if not isinstance(trigger, bool):
        raise _bad("trigger_on_new_version must be true or false", "trigger_on_new_version")
    if trigger and any(i["kind"] == "dataset" and i["name"] == output for i in inputs.values()):
        raise _bad("a pipeline reading its own output cannot run on new versions of it", "output")
    description = spec.get("description") or ""
    if not isinstance(description, str) or len(description) > 2000:
        raise _bad("description must be text of at most 2000 characters", "description")
    return {
        "name": name,
        "description": description,
        "inputs": inputs,
        "steps": out_steps,
        "params": params,
        "output": output,
        "checks": check_definitions(spec.get("checks")),
        "schedule": schedule,
        "trigger_on_new_version": trigger,
    }


def _latest_ids(session: Session, project_id: str, names: list[str]) -> dict[str, str]:
    """The newest version id of each named dataset of the project that has one."""
    if not names:
        return {}
    latest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.n).label("n"))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    rows = session.execute(
        select(Dataset.name, DatasetVersion.id)
        .join(latest, latest.c.dataset_id == Dataset.id)
        .join(
            DatasetVersion,
            (DatasetVersion.dataset_id == Dataset.id) & (DatasetVersion.n == latest.c.n),
        )
        .where(Dataset.project_id == project_id, Dataset.name.in_(names))
    )
    return dict(rows.tuples().all())


def input_fingerprint(session: Session, pipeline: Pipeline) -> str:
    """A digest of the newest versions of the inputs that follow 'latest'."""
    names = []
    for spec in pipeline.inputs.values():
        if spec["kind"] == "dataset" and spec["version"] == "latest":
            names.append(spec["name"])
        elif spec["kind"] == "source":
            src = session.scalar(
                select(sources.Source).where(
                    sources.Source.project_id == pipeline.project_id,
                    sources.Source.name == spec["name"],
                )
            )
            if src is not None and src.kind == "dataset" and src.config.get("version") == "latest":
                names.append(src.config["dataset"])
    ids = _latest_ids(session, pipeline.project_id, sorted(set(names)))
    if not ids:
        return ""
    return hashlib.sha256(json.dumps(sorted(ids.items())).encode()).hexdigest()


def save_pipeline(
    session: Session, actor: User, slug: str, spec: dict[str, Any], *, replace: bool = False
) -> tuple[Pipeline, bool]:
    """Create a pipeline from its definition, or with `replace` update the one of that name.

    Returns (pipeline, created).
    """
    project = projects.resolve(session, actor, slug, Perm.data_write)
    if not isinstance(spec, dict):
        raise _bad("the pipeline definition must be an object", "definition")
    d = check_definition(session, project.id, spec)
    pipeline = session.scalar(
        select(Pipeline).where(Pipeline.project_id == project.id, Pipeline.name == d["name"])
    )
    created = pipeline is None
    if pipeline is not None and not replace:
        raise Conflict(f"pipeline {d['name']} already exists", {"field": "name"})
    if pipeline is None:
        pipeline = Pipeline(project_id=project.id, created_by=actor.id, **d)
        session.add(pipeline)
    else:
        for key, value in d.items():
            setattr(pipeline, key, value)
        pipeline.updated_at = utcnow()
    pipeline.next_run_at = next_fire(d["schedule"], utcnow()) if d["schedule"] else None
    try:
        session.flush()
    except IntegrityError as err:
        raise Conflict(f"pipeline {d['name']} already exists", {"field": "name"}) from err
    pipeline.seen_inputs = input_fingerprint(session, pipeline)
    audit.record(
        session,
        actor,
        "pipeline.create" if created else "pipeline.update",
        f"pipeline:{d['name']}",
        project_id=project.id,
        detail={"steps": len(d["steps"]), "checks": len(d["checks"]), "output": d["output"]},
    )
    return pipeline, created


def _get(session: Session, project_id: str, name: str) -> Pipeline:
    pipeline = session.scalar(
        select(Pipeline).where(Pipeline.project_id == project_id, Pipeline.name == name)
    )
    if pipeline is None:
        raise NotFound(f"pipeline {name} not found")
    return pipeline


def get_pipeline(session: Session, actor: User, slug: str, name: str) -> Pipeline:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    return _get(session, project.id, name)


def list_pipelines(session: Session, actor: User, slug: str) -> list[Pipeline]:
    project = projects.resolve(session, actor, slug, Perm.data_read)
    q = select(Pipeline).where(Pipeline.project_id == project.id).order_by(Pipeline.name)
    return list(session.scalars(q))


def delete_pipeline(session: Session, actor: User, slug: str, name: str) -> None:
    project = projects.resolve(session, actor, slug, Perm.data_write)
    session.delete(_get(session, project.id, name))
    audit.record(session, actor, "pipeline.delete", f"pipeline:{name}", project_id=project.id)


def describe(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        **{key: getattr(pipeline, key) for key in FIELDS},
        "next_run_at": pipeline.next_run_at,
        "created_at": pipeline.created_at,
        "updated_at": pipeline.updated_at,
    }


def _values(pipeline: Pipeline, params: dict[str, Any] | None) -> dict[str, Any]:
    params = params or {}
    if not isinstance(params, dict):
        raise _bad("params must be an object", "params")
    unknown = set(params) - set(pipeline.params)
    if unknown:
        raise _bad(
            f"unknown parameters {sorted(unknown)}; this pipeline takes {sorted(pipeline.params)}",
            "params",
        )
    for key, value in params.items():
        if not _scalar(value):
            raise _bad(
                f"parameter {key} must be a number, text, true/false or null", f"params.{key}"
            )
    return {**pipeline.params, **params}


def submit_run(
    session: Session,
    actor: User,
    pipeline: Pipeline,
    slug: str,
    params: dict[str, Any],
    trigger: str,
) -> Job:
    """Queue a run (callers have checked access, or are the scheduler acting for the author)."""
    job = jobs.submit(
        session,
        actor,
        pipeline.project_id,
        KIND,
        {"slug": slug, "pipeline_id": pipeline.id, "pipeline": pipeline.name, "params": params,
         "trigger": trigger},
    )  # fmt: skip
    session.add(PipelineRun(pipeline_id=pipeline.id, job_id=job.id, trigger=trigger))
    audit.record(
        session,
        actor if trigger == "manual" else None,
        "pipeline.run",
        f"pipeline:{pipeline.name}",
        project_id=pipeline.project_id,
        detail={"job": job.id, "trigger": trigger},
    )
    return job


def start_run(
    session: Session, actor: User, slug: str, name: str, params: dict[str, Any] | None = None
) -> Job:
    """Queue a run of a pipeline now, with parameters overriding its defaults."""
    project = projects.resolve(session, actor, slug, Perm.data_write)
    pipeline = _get(session, project.id, name)
    return submit_run(session, actor, pipeline, slug, _values(pipeline, params), "manual")


def list_runs(
    session: Session, actor: User, slug: str, name: str, limit: int = 50
) -> list[tuple[PipelineRun, Job]]:
    """Runs of a pipeline, newest first, each with its job."""
    project = projects.resolve(session, actor, slug, Perm.data_read)
    pipeline = _get(session, project.id, name)
    runs = session.scalars(
        select(PipelineRun)
        .where(PipelineRun.pipeline_id == pipeline.id)
        .order_by(PipelineRun.created_at.desc())
        .limit(max(1, min(limit, 500)))
    )
    return [(r, jobs.get(session, actor, r.job_id)) for r in runs]


# -- the job -----------------------------------------------------------------------------------


def _read_inputs(ctx: jobs.JobContext, slug: str, inputs: dict[str, Any]) -> tuple[dict, list]:
    box = SecretBox(ctx.settings)
    tables, parents = {}, []
    for i, (alias, spec) in enumerate(inputs.items()):
        ctx.progress(0.05 + 0.25 * i / len(inputs), f"reading input {alias}")
        with ctx.db.session() as s:
            actor = ctx.actor(s)
            if spec["kind"] == "source":
                src = sources.source_in(s, ctx.project_id, spec["name"])
                table, version_id = sources.read_source(
                    s, actor, box, ctx.settings, ctx.artifacts, src
                )
                what = f"source {spec['name']}"
            else:
                v = data.get_version(s, actor, slug, spec["name"], spec["version"])
                table, version_id = data.read_table(ctx.artifacts, v), v.id
                what = f"dataset {spec['name']} v{v.n}"
        if version_id:
            parents.append(version_id)
        tables[alias] = table
        ctx.log(f"input {alias} ({what}): {table.num_rows} rows, {table.num_columns} columns")
    return tables, parents


def run_pipeline_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """Read the inputs, run the steps, check the output, publish it (the job's body)."""
    p = ctx.params
    slug, values = p["slug"], dict(p.get("params") or {})
    with ctx.db.session() as s:
        projects.resolve(s, ctx.actor(s), slug, Perm.data_write)
        pipeline = s.get(Pipeline, p["pipeline_id"])
        if pipeline is None:
            raise NotFound(f"pipeline {p.get('pipeline')} no longer exists")
        name, inputs, steps = pipeline.name, dict(pipeline.inputs), list(pipeline.steps)
        checks, output = list(pipeline.checks), pipeline.output
    tables, parents = _read_inputs(ctx, slug, inputs)

    limit = ctx.settings.pipeline_memory_limit
    sandbox = Sandbox(tables, memory_limit=limit)
    try:
        result = None
        for i, step in enumerate(steps):
            ctx.progress(0.3 + 0.5 * i / len(steps), f"running step {step['name']}")
            try:
                result = sandbox.query(
                    step["sql"], values, step.get("timeout_seconds", STEP_TIMEOUT)
                )
            except TimeoutError as err:
                raise UserCodeError(f"your SQL step {step['name']} took too long: {err}") from None
            except duckdb.OutOfMemoryException as err:
                raise UserCodeError(
                    f"your SQL step {step['name']} needed more memory than a pipeline may use "
                    f"({limit}; an operator can raise MLTEAM_PIPELINE_MEMORY_LIMIT): {err}"
                ) from None
            except duckdb.Error as err:
                raise UserCodeError(f"your SQL step {step['name']} failed: {err}") from None
            sandbox.add(step["name"], result)
            ctx.log(f"step {step['name']}: {result.num_rows} rows")
    finally:
        sandbox.close()
    assert result is not None  # steps is never empty (checked at definition)

    ctx.progress(0.85, f"profiling and checking the output ({len(checks)} checks)")
    with tempfile.TemporaryDirectory(prefix="mlteam-pipeline-") as tmp:
        path = os.path.join(tmp, "output.parquet")
        data.write_parquet(result, path)
        column_profile = profile_parquet(path)  # the version's, and what proves most checks
        results = run_checks(
            checks, lambda: Sandbox({"output": result}, memory_limit=limit), column_profile
        )
        report: dict[str, Any] = {
            "pipeline": name,
            "output": output,
            "rows": result.num_rows,
            "columns": result.column_names,
            "params": values,
            "parents": parents,
            "checks": results,
        }
        failed = [r for r in results if not r["passed"]]
        for r in results:
            ctx.log(f"check {r['name']}: {'passed' if r['passed'] else 'FAILED: ' + r['message']}")
        if failed:
            report.update(status="checks_failed", version=None)
            summary = "; ".join(f"{r['name']}: {r['message']}" for r in failed)
            raise UserCodeError(f"data checks failed, nothing published: {summary}", report)

        ctx.progress(0.9, f"publishing {output}")
        with ctx.db.session() as s:
            actor = ctx.actor(s)
            project = projects.resolve(s, actor, slug, Perm.data_write)
            version, created = data.publish(
                s,
                actor,
                ctx.artifacts,
                project.id,
                output,
                path,
                source={"kind": "pipeline", "pipeline": name, "run": ctx.job_id, "params": values},
                parents=parents,
                column_profile=column_profile,
            )
            report.update(
                status="published",
                version={"dataset": output, "n": version.n, "id": version.id, "created": created},
            )
    ctx.log(f"{output} v{version.n} " + ("published" if created else "unchanged (same content)"))
    ctx.progress(1.0, "done")
    return report
