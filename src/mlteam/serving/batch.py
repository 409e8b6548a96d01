"""Batch scoring: a dataset version scored by a model version, as a job, giving a new dataset
version with a `prediction` column (lineage: parent = the input version, source = the model
version).

The input is checked against the model's signature exactly as a request is, chunk by chunk,
so a bad row fails the job with the column and row named.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session

from mlteam.core import jobs
from mlteam.core.access import Perm, require
from mlteam.core.errors import Forbidden, InvalidInput
from mlteam.core.models import Job, User
from mlteam.data import service as data
from mlteam.projects import service as projects
from mlteam.registry import service as registry
from mlteam.serving.runtime import ModelCache, check_columns

CHUNK_ROWS = 50_000
PREDICTION = "prediction"


def start_batch_score(
    session: Session,
    actor: User,
    slug: str,
    *,
    dataset: str,
    version: int | str = "latest",
    model: str,
    model_version: int | str,
    output: str | None = None,
) -> Job:
    """Queue a job scoring `dataset` `version` with `model` `model_version` (number or alias);
    the predictions become the next version of dataset `output` (default `<dataset>-scored`).
    Devops, data engineers and owners may start one."""
    project = projects.resolve(session, actor, slug, Perm.data_read)
    try:
        require(session, actor, project.id, Perm.deploy_write)
    except Forbidden:
        require(session, actor, project.id, Perm.data_write)
    dv = data.get_version(session, actor, slug, dataset, version)
    mv = registry.get_version(session, actor, slug, model, model_version)
    output = data.check_name(output or f"{dataset}-scored", "output")
    columns = {c["name"] for c in dv.schema}
    missing = [c["name"] for c in mv.signature.get("inputs", []) if c["name"] not in columns]
    if missing:
        raise InvalidInput(
            f"dataset {dataset} v{dv.n} lacks columns the model needs: {missing[:10]}",
            {"field": "dataset", "missing": missing},
        )
    if PREDICTION in columns:
        raise InvalidInput(
            f"dataset {dataset} v{dv.n} already has a column {PREDICTION!r}", {"field": "dataset"}
        )
    return jobs.submit(
        session,
        actor,
        project.id,
        "serving.batch_score",
        {
            "dataset_version_id": dv.id,
            "dataset": dataset,
            "version": dv.n,
            "model_version_id": mv.id,
            "model": model,
            "model_version": mv.version,
            "output": output,
        },
    )


def run_batch_score_job(ctx: jobs.JobContext) -> dict[str, Any]:
    p = ctx.params
    with ctx.db.session() as s:
        actor = ctx.actor(s)
        dv = data.version_by_id(s, actor, p["dataset_version_id"])
        mv = registry.version_by_id(s, actor, p["model_version_id"])
        table = data.read_table(ctx.artifacts, dv)
        mv_id, key, fmt, signature = mv.id, mv.artifact_key, mv.format, mv.signature
    loaded = ModelCache(ctx.artifacts).get(
        mv_id, key, fmt, signature, p["model"], p["model_version"]
    )
    ctx.progress(0.1, f"scoring {table.num_rows} rows of {p['dataset']} v{p['version']}")
    outputs: list[Any] = []
    for start in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        chunk = table.slice(start, CHUNK_ROWS).select(loaded.columns)
        if chunk.num_rows == 0:
            break
        try:
            cols = check_columns(chunk.to_pydict(), signature, "rows")
        except InvalidInput as err:
            raise InvalidInput(f"rows from {start}: {err.message}", err.details) from err
        outputs.extend(loaded.predict(cols))
        ctx.progress(0.1 + 0.8 * (start + chunk.num_rows) / table.num_rows)
    scored = table.append_column(PREDICTION, pa.array(outputs))
    fd, path = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        data.write_parquet(scored, path)
        with ctx.db.session() as s:
            actor = ctx.actor(s)
            out, created = data.publish(
                s,
                actor,
                ctx.artifacts,
                ctx.project_id,
                p["output"],
                path,
                source={
                    "kind": "batch_score",
                    "model": p["model"],
                    "model_version": p["model_version"],
                    "model_version_id": p["model_version_id"],
                    "job_id": ctx.job_id,
                },
                parents=[p["dataset_version_id"]],
            )
            result = {"dataset": p["output"], "version": out.n, "id": out.id, "created": created}
    finally:
        with contextlib.suppress(FileNotFoundError):  # publish moved it into the store
            os.unlink(path)
    ctx.log(f"published {p['output']} v{result['version']} ({table.num_rows} rows)")
    return {**result, "rows": table.num_rows}
